"""The report page in real headless Chromium: an experimenter logs in and reads a computed report.
Screenshot: artifacts/screens/report.png (the README's report picture comes from here)."""

from __future__ import annotations

import pytest

from evalsite.reports.tasks import recompute_report
from tests.browser.axe_audit import audit
from tests.evalsite.studies.experimenter_personas import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["audit"]  # a fixture, used by name


@pytest.fixture
def report_page(browser, live_server, sim_study, alice):
    """A computed report of `sim_study`, open at 1280 px; its context's `java_script_enabled`
    as the test's `javascript` parameter says (on where a test does not say)."""

    contexts: list = []

    def open_page(javascript: bool = True):
        context = browser.new_context(
            locale="en-US", viewport={"width": 1280, "height": 1000}, java_script_enabled=javascript
        )
        contexts.append(context)
        context.set_default_timeout(15000)
        page = context.new_page()
        page.goto(f"{live_server.url}/reports/{sim_study.pk}/")
        assert "/accounts/login/" in page.url  # experimenter pages need a login
        page.fill("input[name=username]", alice.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/reports/{sim_study.pk}/")
        return page

    recompute_report(sim_study.pk)
    yield open_page
    for context in contexts:
        context.close()


def test_it_shows_a_computed_report_with_tables_and_plots(report_page, artifacts_dir):
    page = report_page()
    consent = page.locator('[data-table="consent"]')
    assert consent.count() >= 1
    text = consent.first.inner_text()
    assert "drums" in text and "guitar" in text
    assert page.locator("svg").count() >= 1  # the plots render inline
    # The page's top, as a reader first sees it: before the check below scrolls to a table.
    (artifacts_dir / "screens").mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts_dir / "screens" / "report.png"), full_page=False)
    _check_tables_scroll_in_their_own_box(page)


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
    keyboard can reach (tabindex 0) and which has a name where its table is wider than the box
    (WCAG 2.1 1.4.10 reflow, 2.1.1)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    boxes = page.evaluate(TABLE_BOXES_JS)
    assert len(boxes) >= 10
    for box in boxes:
        assert box["right"] <= box["mainRight"] + 0.5, box
        assert box["overflowX"] == "auto", box
    wide = [b for b in boxes if b["tableWidth"] > b["boxWidth"]]
    assert "noise_ceiling" in {b["name"] for b in wide}  # the table the review saw cut off
    for box in wide:
        assert box["role"] == "region" and box["tabindex"] == 0 and box["label"], box
    ceiling = page.locator('[data-table="noise_ceiling"]').locator("xpath=..")
    ceiling.focus()
    page.keyboard.press("ArrowRight")  # scrolls the focused box towards its last column
    page.wait_for_function(
        "() => document.querySelector('[data-table=noise_ceiling]').parentElement.scrollLeft > 0"
    )


# The table whose box the Tab key focuses now (null for anything else).
FOCUSED_TABLE_JS = """() => {
  const table = document.activeElement?.querySelector(":scope > table[data-table]");
  return table ? table.dataset.table : null;
}"""
# True once every box is a tab stop exactly where its table is wider than it.
STOPS_SETTLED_JS = """() => [...document.querySelectorAll("table[data-table]")].every((t) => {
  const box = t.parentElement;
  return (box.tabIndex === 0) === (t.scrollWidth > box.clientWidth);
})"""


def _tab_stop_tables(page) -> list[str]:
    """The tables whose boxes the Tab key stops at, walking the page from the top once."""
    page.evaluate("document.activeElement?.blur()")
    stops = []
    for _ in range(300):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            return stops  # past the last stop
        name = page.evaluate(FOCUSED_TABLE_JS)
        if name:
            stops.append(name)
    raise AssertionError(f"Tab never left the page; stops so far: {stops}")


def test_it_makes_only_the_table_boxes_that_scroll_tab_stops(report_page, audit):
    # A box whose table fits needs no stop of its own (nothing to scroll); one whose table is
    # wider must take focus so that the keyboard can scroll it (WCAG 2.1.1), named by its heading.
    page = report_page()
    page.wait_for_function(STOPS_SETTLED_JS)
    boxes = {b["name"]: b for b in page.evaluate(TABLE_BOXES_JS)}
    wide = {n for n, b in boxes.items() if b["tableWidth"] > b["boxWidth"]}
    narrow = set(boxes) - wide
    assert "noise_ceiling" in wide and "consent" in narrow, boxes
    for name in narrow:
        assert boxes[name]["tabindex"] == -1 and boxes[name]["role"] is None, boxes[name]
        assert boxes[name]["label"] is None, boxes[name]  # no name without a role to carry it
    for name in wide:
        assert boxes[name]["role"] == "region" and boxes[name]["label"], boxes[name]
    assert sorted(_tab_stop_tables(page)) == sorted(wide)
    audit(page, "report at 1280 px")
    page.set_viewport_size({"width": 320, "height": 640})  # 1280 px at 400 % zoom
    page.wait_for_function(STOPS_SETTLED_JS)
    wide_now = {b["name"] for b in page.evaluate(TABLE_BOXES_JS) if b["tableWidth"] > b["boxWidth"]}
    assert "consent" in wide_now  # too wide for 320 px: now it scrolls, so it is a stop
    assert sorted(_tab_stop_tables(page)) == sorted(wide_now)
    audit(page, "report at 320 px")
    audit.assert_clean()


def test_it_keeps_every_table_box_a_tab_stop_without_javascript(report_page):
    page = report_page(javascript=False)
    boxes = page.locator("table[data-table]").evaluate_all(
        "ts => ts.map(t => [t.parentElement.getAttribute('tabindex'),"
        " t.parentElement.getAttribute('role'), t.parentElement.getAttribute('aria-labelledby')])"
    )
    assert len(boxes) >= 10
    assert all(b[0] == "0" and b[1] == "region" and b[2] for b in boxes), boxes


def test_it_shows_its_first_plot_on_the_first_screen_and_its_notes_when_asked(report_page, audit):
    """The notes (the demo's report held 18, two screens of them) are one line above the results;
    opened, they list each note with links to the tables it concerns."""
    page = report_page()
    notes = page.locator("details.report-notes")
    assert notes.count() == 1 and notes.get_attribute("open") is None
    summary = notes.locator("summary").inner_text()
    assert " notes on these results: " in summary, summary
    top = page.evaluate(
        "document.querySelector('.report-plots figure').getBoundingClientRect().top"
    )
    assert top < 1000, top  # the first plot starts within the first screen (1000 px high)
    assert not notes.locator("li.notes-group").first.is_visible()
    notes.locator("summary").click()
    assert notes.locator("li.notes-group").first.is_visible()
    links = notes.locator("a[href^='#table-']")
    assert links.count() >= 1
    target = links.first.get_attribute("href")
    links.first.click()
    page.wait_for_function("t => location.hash === t", arg=target)
    assert page.locator(target).is_visible()
    audit(page, "report with its notes open")
    audit.assert_clean()
