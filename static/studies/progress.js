// Progress page: update the figures in place instead of reloading the page, which would send a
// screen reader's or keyboard user's position back to the top every time (WCAG 2.2.1, 2.2.2).
// Without this script the page has a Refresh link and no automatic updates.
(function () {
  "use strict";

  var STORAGE_KEY = "csn.progress.autoUpdate"; // "off" once unticked; on by default
  var region = document.getElementById("progress-figures");
  if (!region) return;
  var control = document.getElementById("auto-update-control");
  var toggle = document.getElementById("auto-update");
  var status = document.getElementById("progress-status");
  var interval = Number(region.dataset.refreshMs) || 30000;
  var timer = null;
  var pending = null; // the AbortController of the fetch under way

  function remembered() {
    try { return window.localStorage.getItem(STORAGE_KEY) !== "off"; } catch (e) { return true; }
  }

  function remember(on) {
    try {
      window.localStorage.setItem(STORAGE_KEY, on ? "on" : "off");
    } catch (e) { /* storage refused (private mode): the choice lasts for this page only */ }
  }

  // The status is a polite live region: only this short line is announced, never the tables.
  // Unchanged text is not written again, so an unchanged message is not announced twice; unless
  // the reader asked (Refresh), who is then told again, by emptying the line first.
  var saying = null;
  function say(text, again) {
    window.clearTimeout(saying);
    if (!again) {
      if (status.textContent !== text) status.textContent = text;
      return;
    }
    status.textContent = "";
    saying = window.setTimeout(function () { status.textContent = text; }, 100);
  }

  function polling() {
    return toggle.checked && document.visibilityState !== "hidden";
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = polling() ? window.setTimeout(update, interval) : null;
  }

  function stop() {
    window.clearTimeout(timer);
    timer = null;
    if (pending) pending.abort(); // its answer would land after the reader asked for none
  }

  // The figures' HTML, or an Error whose message says why not, in words for the status line.
  async function fetchFigures(signal) {
    var response;
    try {
      // redirect: "manual": an expired session redirects to the login page, whose HTML must
      // never take the figures' place.
      response = await fetch(region.dataset.fragmentUrl, {
        credentials: "same-origin", redirect: "manual", cache: "no-store", signal: signal,
        headers: { Accept: "text/html" },
      });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new Error("no connection to the server");
    }
    if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
      throw new Error("you are no longer logged in (reload the page to log in again)");
    }
    if (!response.ok) throw new Error("the server answered " + response.status);
    var doc = new DOMParser().parseFromString(await response.text(), "text/html");
    var asOf = doc.querySelector("[data-figures-as-of]");
    if (!asOf) throw new Error("the server's answer holds no figures");
    var nodes = Array.prototype.slice.call(doc.body.childNodes);
    return { nodes: nodes, asOf: asOf.dataset.figuresAsOf, key: figuresKey(doc.body) };
  }

  // What the figures say, without their "as of" time, which changes on every update: equal keys
  // mean nothing a reader needs to hear about. Whitespace is collapsed because the page and the
  // fragment wrap the same include differently.
  function figuresKey(root) {
    var copy = root.cloneNode(true);
    var asOf = copy.querySelector("#figures-as-of");
    if (asOf) asOf.remove();
    return copy.innerHTML.replace(/\s+/g, " ").trim();
  }

  // Whether the status says an update failed: the next success is announced, so a reader who
  // heard of the failure hears that it is over, even when the figures did not change.
  var failing = false;

  // asked: the reader asked for this update (Refresh, or ticking the checkbox) and is told its
  // outcome whatever it is. An automatic update speaks only when the figures changed or when it
  // ends a run of failures; otherwise only the "Figures as of" line in the figures (not a live
  // region) changes, silently, so an open page is not announced every interval for nothing.
  async function update(asked) {
    stop();
    var controller = new AbortController();
    pending = controller;
    try {
      var figures = await fetchFigures(controller.signal);
      var changed = figures.key !== figuresKey(region);
      // Focus is outside the region (the checkbox, the link) or on nothing in it that can take
      // focus, so replacing the children moves neither focus nor the scroll position.
      region.replaceChildren.apply(region, figures.nodes);
      if (asked === true || changed || failing) {
        // Changed figures are news even when the minute in the text is the one already shown
        // (two changes within a minute): written afresh, so the live region speaks again.
        say("Figures updated at " + figures.asOf, asked === true || changed);
      }
      failing = false;
    } catch (e) {
      if (e.name === "AbortError") return; // paused or hidden meanwhile: nothing to say
      failing = true;
      say("Could not update: " + e.message + ". The figures shown are older.", asked === true);
    } finally {
      if (pending === controller) pending = null;
    }
    schedule(); // after a failure too: the next tick tries again
  }

  toggle.checked = remembered();
  control.hidden = false;

  toggle.addEventListener("change", function () {
    remember(toggle.checked);
    if (toggle.checked) {
      update(true); // says so, in place of "Automatic updates paused."
    } else {
      stop();
      say("Automatic updates paused.");
    }
  });

  // The Refresh link fetches in place too, so it keeps the focus where it is.
  document.getElementById("progress-refresh").addEventListener("click", function (event) {
    event.preventDefault();
    update(true);
  });

  // No polling while the tab is hidden; one update as soon as it is seen again.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") stop();
    else if (toggle.checked) update();
  });

  schedule();
})();
