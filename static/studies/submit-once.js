// Forms marked data-submit-once (the Trials page's add forms, the settings form): the first
// submit disables the form's buttons, so a double click sends one request, not two. The server
// refuses a trial the study already has (trial_identity), and saves a settings page sent again
// as it saved the first (edit_conflicts: nothing changed but that page's own Save), with or
// without this script; it only spares the second request and its response. Buttons come back
// if the page is shown again from the browser's history (back button), where the form may be
// sent anew.
(function () {
  "use strict";

  function buttons(form) {
    return form.querySelectorAll("button[type=submit], input[type=submit]");
  }

  document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent === "yes") {
        event.preventDefault(); // a second submit (Enter pressed again) before the page leaves
        return;
      }
      form.dataset.sent = "yes";
      // After this event: a button disabled now would be left out of the submission.
      window.setTimeout(function () {
        buttons(form).forEach(function (b) { b.disabled = true; b.setAttribute("aria-busy", "true"); });
      }, 0);
    });
  });

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      delete form.dataset.sent;
      buttons(form).forEach(function (b) { b.disabled = false; b.removeAttribute("aria-busy"); });
    });
  });
})();
