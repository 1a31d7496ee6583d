"""The summaries: p-values below double precision shown as a bound, not "0", while the files keep
the number; the descriptive consent tests carry a note saying what they ignore."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from django.urls import reverse

from evalsite.reports.analysis.consent import COLUMNS
from evalsite.reports.analysis.proportions import proportion_row
from evalsite.reports.analysis.report import Report
from evalsite.reports.rendering.files import write_report
from evalsite.reports.rendering.summary import format_value, html_summary, markdown_summary
from evalsite.reports.tasks import recompute_report


@pytest.fixture(scope="module")
def underflowing() -> Report:
    # 14000 of 20000: the exact binomial p is about 4e-717, below the smallest double (0.0).
    row = proportion_row("drums", 14000, 20000)
    assert row["p_val"] == 0.0
    consent = pd.DataFrame([{**row, "p_adj": 0.0}], columns=COLUMNS)
    return Report(tables={"consent": consent}, meta={"config": {"confidence": 0.95}})


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.0, "< 1e-300"), (5e-324, "< 1e-300"), (9.9e-301, "< 1e-300"), (2e-300, "2e-300")],
)
def test_it_shows_a_p_value_below_double_precision_as_a_bound(value, shown):
    assert format_value(value, "p_val") == shown
    assert format_value(value, "p_adj") == shown


def test_it_never_shows_an_underflowed_p_value_as_zero(underflowing):
    md = markdown_summary(underflowing)
    (row,) = [line for line in md.splitlines() if line.startswith("| drums |")]
    cells = row.strip("| ").split(" | ")
    p_val, p_adj = (cells[COLUMNS.index(c)] for c in ("p_val", "p_adj"))
    assert p_val == p_adj == "< 1e-300"
    assert "<td>&lt; 1e-300</td>" in html_summary(underflowing, {})


def test_it_keeps_an_underflowed_p_value_a_number_in_the_files(underflowing, tmp_path):
    write_report(underflowing, tmp_path)
    assert pd.read_csv(tmp_path / "tables" / "consent.csv")["p_val"][0] == 0.0
    (stored,) = json.loads((tmp_path / "tables" / "consent.json").read_text())
    assert stored["p_val"] == 0.0 and isinstance(stored["p_val"], float)


def _note_after(text: str, heading: str) -> str:
    """The line after a table's heading (and its blank line) in the Markdown summary."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"## {heading}"))
    return lines[at + 2]


def test_it_says_the_answer_and_participant_level_tests_are_descriptive():
    empty = pd.DataFrame({"term": ["drums"], "p_val": [0.5]})
    report = Report(tables={"consent": empty, "participant_consent": empty})
    md = markdown_summary(report)
    answers = _note_after(md, "Consent per instrument")
    participants = _note_after(md, "Consent on participant-level")
    for note in (answers, participants):
        assert note.startswith("_") and "descriptive" in note.lower() and "mixed" in note, note
    assert "independent" in answers and "trial" in participants
    page = html_summary(report, {})
    assert page.count("class='table-note'") == 2
    assert "mixed_laplace" in page


def test_it_says_how_position_bias_is_tested_and_that_answer_level_intervals_are_descriptive():
    empty = pd.DataFrame({"term": ["drums"], "p_val": [0.5]})
    report = Report(tables={"position_bias": empty, "fatigue": empty, "catch": empty})
    md = markdown_summary(report)
    assert "participants and trials crossed" in _note_after(md, "Position bias")
    for heading in ("Fatigue", "Catch-trial"):
        note = _note_after(md, heading)
        assert "Descriptive" in note and "independent" in note, heading


@pytest.mark.django_db
def test_it_notes_the_descriptive_tests_on_the_report_page(client, sim_study, alice):
    recompute_report(sim_study.pk)
    client.force_login(alice)
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    for table in ("consent", "participant_consent"):
        heading = page.index(f'<h2 id="table-{table}">')
        following = page[heading : page.index("<table", heading)]
        assert 'class="table-note"' in following and "Descriptive" in following, table


def test_it_scrolls_each_table_of_the_html_summary_in_its_own_named_box():
    # A wide table (the noise ceiling has 17 columns) scrolls inside its box instead of widening
    # the page; the box takes keyboard focus and is named by the table's heading (every box, as
    # read without JavaScript; the script then keeps that where the table scrolls).
    wide = pd.DataFrame({f"column_{i}": [0.5] for i in range(20)})
    report = Report(tables={"noise_ceiling": wide, "consent": wide})
    page = html_summary(report, {})
    assert ".report-table{overflow-x:auto}" in page
    for name in ("noise_ceiling", "consent"):
        assert f"<h2 id='table-{name}'>" in page
        box = (
            f"<div class='report-table' role='region' tabindex='0' aria-labelledby='table-{name}'>"
            "<table>"
        )
        assert box in page
    assert page.count("<table>") == page.count("class='report-table'") == 2


@pytest.mark.browser
def test_it_makes_only_the_html_summarys_table_boxes_that_scroll_tab_stops(browser):
    # As on the report page (test_report_browser.py): the file carries the page's script.
    wide = pd.DataFrame({f"column_{i}": [0.5] for i in range(20)})
    narrow = pd.DataFrame({"term": ["drums"], "p_val": [0.5]})
    page_html = html_summary(Report(tables={"noise_ceiling": wide, "consent": narrow}), {})
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_content(page_html)
        boxes = page.locator(".report-table").evaluate_all(
            "bs => bs.map(b => [b.querySelector('th').textContent, b.tabIndex,"
            " b.getAttribute('role'), b.getAttribute('aria-labelledby')])"
        )
    finally:
        context.close()
    assert boxes == [  # in the summary's order: consent first
        ["term", -1, None, None],
        ["column_0", 0, "region", "table-noise_ceiling"],
    ]


@pytest.mark.browser
def test_the_html_summary_reflows_at_320_px_with_its_plots(browser):
    # WCAG 2.1 1.4.10: at 320 CSS px the page must not scroll sideways; matplotlib's SVGs carry
    # a fixed width (here 460.8 pt, about 614 px) and are scaled to the column instead.
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    wide = pd.DataFrame({f"column_{i}": [0.5] for i in range(20)})
    page_html = html_summary(Report(tables={"noise_ceiling": wide}), {"consent": buf.getvalue()})
    context = browser.new_context(viewport={"width": 320, "height": 640})
    try:
        page = context.new_page()
        page.set_content(page_html)
        width = page.evaluate("document.documentElement.scrollWidth")
        svg_width = page.evaluate("document.querySelector('svg').getBoundingClientRect().width")
    finally:
        context.close()
    assert width <= 320, f"the page is {width} px wide at 320 px"
    assert 0 < svg_width <= 320
