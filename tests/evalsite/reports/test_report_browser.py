"""The report page in real headless Chromium: an experimenter logs in and reads a computed report.
Screenshot: artifacts/screens/report.png (the README's report picture comes from here)."""

from __future__ import annotations

import pytest

from evalsite.reports.tasks import recompute_report
from tests.evalsite.studies.experimenter_personas import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_a_computed_report_with_tables_and_plots(browser, live_server, sim_study, alice,
                                                          artifacts_dir):  # fmt: skip
    recompute_report(sim_study.pk)
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15000)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/reports/{sim_study.pk}/")
        assert "/accounts/login/" in page.url  # experimenter pages need a login
        page.fill("input[name=username]", alice.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/reports/{sim_study.pk}/")
        consent = page.locator('[data-table="consent"]')
        assert consent.count() >= 1
        text = consent.first.inner_text()
        assert "drums" in text and "guitar" in text
        assert page.locator("svg").count() >= 1  # the plots render inline
        _check_tables_scroll_in_their_own_box(page)
        (artifacts_dir / "screens").mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts_dir / "screens" / "report.png"), full_page=False)
    finally:
        context.close()


# Per table: its box (the wrapper that scrolls), the box's accessible name, and the widths.
TABLE_BOXES_JS = """() => {
  const main = document.querySelector("main").getBoundingClientRect();
  return [...document.querySelectorAll("table[data-table]")].map((t) => {
    const box = t.parentElement, r = box.getBoundingClientRect();
    const named = box.getAttribute("aria-labelledby");
    return {
      name: t.dataset.table, role: box.getAttribute("role"), tabindex: box.tabIndex,
      label: named ? document.getElementById(named)?.textContent : box.getAttribute("aria-label"),
      overflowX: getComputedStyle(box).overflowX, right: r.right, mainRight: main.right,
      tableWidth: t.scrollWidth, boxWidth: box.clientWidth,
    };
  });
}"""


def _check_tables_scroll_in_their_own_box(page) -> None:
    """At 1280 px no table widens the page: each scrolls horizontally in its own box, which the
    keyboard can reach (tabindex 0) and which has a name (WCAG 2.1 1.4.10 reflow, 2.1.1)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    boxes = page.evaluate(TABLE_BOXES_JS)
    assert len(boxes) >= 10
    for box in boxes:
        assert box["right"] <= box["mainRight"] + 0.5, box
        assert box["overflowX"] == "auto" and box["role"] == "region", box
        assert box["tabindex"] == 0 and box["label"], box
    wide = [b for b in boxes if b["tableWidth"] > b["boxWidth"]]
    assert "noise_ceiling" in {b["name"] for b in wide}  # the table the review saw cut off
    ceiling = page.locator('[data-table="noise_ceiling"]').locator("xpath=..")
    ceiling.focus()
    page.keyboard.press("ArrowRight")  # scrolls the focused box towards its last column
    page.wait_for_function(
        "() => document.querySelector('[data-table=noise_ceiling]').parentElement.scrollLeft > 0"
    )
