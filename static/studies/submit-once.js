// Forms marked data-submit-once (the Trials page's add forms, the settings form): the first
// submit disables the form's buttons, so a double click sends one request, not two. The server
// refuses a trial the study already has (trial_identity), and saves a settings page sent again
// as it saved the first (edit_conflicts: nothing changed but that page's own Save), with or
// without this script; it only spares the second request and its response.
//
// While the form is sent, its status line (a polite live region the script adds after the
// buttons) says "Sending…", and takes focus if a button had it: a disabled button cannot keep
// focus, which would otherwise drop to the page's body. A submission that brings no page (the
// load stopped with Esc or the Stop button, or a server that has not answered yet) must not
// leave the form dead until a reload, which would lose the values and the file chosen: the
// buttons come back at Esc, or after the form's wait (its data-submit-once value in ms, else
// RETRY_MS), with focus back on the button and the status line saying the form can be sent
// again. They also come back if the page is shown again from the browser's history (back
// button), where the form may be sent anew.
(function () {
  "use strict";

  // [choice] A few seconds: longer than a double click or an impatient second Enter, short
  // enough that a stopped submission is not a dead form for long.
  var RETRY_MS = 5000;
  var SENDING = "Sending…";
  var AGAIN = "No answer yet. If you stopped the page, send the form again.";

  function buttons(form) {
    return Array.prototype.slice.call(
      form.querySelectorAll("button[type=submit], input[type=submit]")
    );
  }

  function statusLine(form) {
    var line = document.createElement("span");
    line.className = "muted submit-status";
    line.setAttribute("role", "status"); // polite
    line.tabIndex = -1; // takes focus from a button while it is disabled; not a Tab stop
    var all = buttons(form);
    (all.length ? all[all.length - 1] : form.lastChild).after(line);
    return line;
  }

  // Sendable again. again: the submission brought no page, which the status line says (focus,
  // if the status line holds it, goes back to the button that had it).
  function release(form, again) {
    window.clearTimeout(form.submitOnceTimer);
    if (form.dataset.sent !== "yes") return;
    delete form.dataset.sent;
    buttons(form).forEach(function (b) { b.disabled = false; b.removeAttribute("aria-busy"); });
    var line = form.submitOnceStatus;
    if (again && document.activeElement === line && form.submitOnceFocus) {
      form.submitOnceFocus.focus();
    }
    line.textContent = again ? AGAIN : "";
  }

  document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
    form.submitOnceStatus = statusLine(form);
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent === "yes") {
        event.preventDefault(); // a second submit (Enter pressed again) before the page leaves
        return;
      }
      form.dataset.sent = "yes";
      var focused = buttons(form).indexOf(document.activeElement) >= 0;
      form.submitOnceFocus = focused ? document.activeElement : null;
      // After this event: a button disabled now would be left out of the submission.
      window.setTimeout(function () {
        var line = form.submitOnceStatus;
        if (focused) line.focus(); // before the button is disabled: focus never drops
        buttons(form).forEach(function (b) {
          b.disabled = true;
          b.setAttribute("aria-busy", "true");
        });
        line.textContent = SENDING; // after the focus move: announced once, by the live region
      }, 0);
      var wait = Number(form.dataset.submitOnce) || RETRY_MS;
      form.submitOnceTimer = window.setTimeout(function () { release(form, true); }, wait);
    });
  });

  // Esc stops the page's loading: what was being sent may never arrive.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      release(form, true);
    });
  });

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      release(form, false);
    });
  });
})();
