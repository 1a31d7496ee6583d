// Model-work page: while a job is queued or running, fetch the job table and the count of clips
// without an embedding every 3 s and put both in place. They come in one fragment, so the
// warning that describes the Embed clips button is never older than the table beside it.
// A job whose status changed (queued, running, done, failed) is announced in the page's polite
// live region, #jobs-status, as the Progress page announces changed figures; a poll that changed
// no status (a running job's counts only) says nothing, so the page is not read out every 3 s.
// Without this script the page shows what it had when loaded; a reload updates it.
(function () {
  "use strict";

  var INTERVAL_MS = 3000;
  var box = document.getElementById("study-jobs");
  var status = document.getElementById("jobs-status");
  if (!box || !status) return;
  var url = box.dataset.fragmentUrl;

  function active(root) {
    return root.querySelector(".job-queued, .job-running") !== null;
  }

  // Each job row, in the table's order: its id, status and what an announcement says of it
  // (its kind and its status cell, e.g. "design from the model: failed: worker lost").
  function jobs(root) {
    return Array.prototype.map.call(root.querySelectorAll("tr.job[data-job]"), function (row) {
      var words = row.cells[0].textContent + ": " + row.cells[1].textContent;
      words = words.replace(/\s+/g, " ").trim();
      return { id: row.dataset.job, status: row.dataset.status, words: words };
    });
  }

  // What changed between two tables: the jobs whose status differs, and new jobs.
  function changed(before, after) {
    var was = {};
    before.forEach(function (job) { was[job.id] = job.status; });
    return after.filter(function (job) { return was[job.id] !== job.status; })
      .map(function (job) { return job.words; });
  }

  // Text already in the live region is not written again (it would not be news), unless it is
  // news (again: the same words for a new change), which is then written afresh.
  var saying = null;
  function say(text, again) {
    window.clearTimeout(saying);
    if (status.textContent !== text) {
      status.textContent = text;
    } else if (again) {
      status.textContent = "";
      saying = window.setTimeout(function () { status.textContent = text; }, 100);
    }
  }

  // The warning of clips without an embedding as the fragment has it (or none), and the Embed
  // clips button described by it only while it is there.
  function putWarning(doc) {
    var fresh = doc.getElementById("unembedded");
    var shown = document.getElementById("unembedded");
    if (shown && fresh) shown.replaceWith(fresh);
    else if (shown) shown.remove();
    else if (fresh) document.getElementById("queue").after(fresh);
    var button = document.getElementById("embed-clips");
    if (!button || button.getAttribute("aria-describedby") === "no-checkpoint") return;
    if (fresh) button.setAttribute("aria-describedby", "unembedded");
    else button.removeAttribute("aria-describedby");
  }

  // The fragment as a document, or an Error whose message says why not, for the live region.
  async function fetchFragment() {
    var response;
    try {
      // redirect: "manual": an expired session redirects to the login page, whose HTML must
      // never take the table's place.
      response = await fetch(url, {
        credentials: "same-origin", redirect: "manual", cache: "no-store",
        headers: { Accept: "text/html" },
      });
    } catch (e) {
      throw new Error("no connection to the server");
    }
    if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
      var expired = new Error("you are no longer logged in (reload the page to log in again)");
      expired.final = true;
      throw expired;
    }
    if (!response.ok) throw new Error("the server answered " + response.status);
    var doc = new DOMParser().parseFromString(await response.text(), "text/html");
    if (!doc.getElementById("study-jobs")) throw new Error("the server's answer holds no jobs");
    return doc;
  }

  var failing = false; // the live region says an update failed: the next success says so too

  async function update() {
    var doc;
    try {
      doc = await fetchFragment();
    } catch (e) {
      failing = true;
      say("Could not update the jobs: " + e.message + ". The table shown is older.");
      if (!e.final) schedule(); // an expired session would refuse every poll
      return;
    }
    var before = jobs(box);
    var fresh = doc.getElementById("study-jobs");
    box.replaceWith(fresh); // nothing in the table takes focus, so focus stays where it was
    box = fresh;
    putWarning(doc);
    var news = changed(before, jobs(box));
    if (news.length) say(news.join("; "), true);
    else if (failing) say("The jobs are up to date again.");
    failing = false;
    if (active(box)) schedule();
  }

  function schedule() {
    window.setTimeout(update, INTERVAL_MS);
  }

  if (active(box)) schedule();
})();
