// Report tables (the page and the standalone summary.html): a table wider than its box scrolls in
// the box, and such a box must take keyboard focus so that the keys can scroll it (WCAG 2.1.1),
// named by its heading. A box whose table fits has nothing to scroll and is no tab stop. The
// server marks every box focusable, so without this script each stays reachable; with it, only a
// box whose table overflows keeps tabindex 0, role region and its name, checked again whenever the
// box or its table changes size (window width, zoom, text size).
(function () {
  "use strict";

  var boxes = Array.prototype.slice.call(document.querySelectorAll(".report-table"));
  var names = boxes.map(function (box) { return box.getAttribute("aria-labelledby"); });

  function update(box, i) {
    var scrolls = box.scrollWidth > box.clientWidth;
    // A focused box keeps its stop until focus leaves it (then checked again): dropping it would
    // send the keyboard's position back to the top of the page.
    if (!scrolls && document.activeElement === box) return;
    if (scrolls) {
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      if (names[i]) box.setAttribute("aria-labelledby", names[i]);
    } else {
      // No name either: a plain box may not carry one (ARIA 1.2, role generic).
      box.removeAttribute("tabindex");
      box.removeAttribute("role");
      box.removeAttribute("aria-labelledby");
    }
  }

  function updateAll() { boxes.forEach(update); }

  boxes.forEach(function (box, i) {
    box.addEventListener("blur", function () { update(box, i); });
  });
  if ("ResizeObserver" in window) {
    var observer = new ResizeObserver(updateAll);
    boxes.forEach(function (box) {
      observer.observe(box);
      if (box.firstElementChild) observer.observe(box.firstElementChild); // the table
    });
  } else {
    window.addEventListener("resize", updateAll);
  }
  updateAll();
})();
