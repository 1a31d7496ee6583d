"""The report page puts its results first: its notes (warnings and infos on the results, often
many: the demo's report held 18, two screens before its first plot) are counted in one line at
the top and listed, each grouped with the tables it concerns, in a disclosure the reader opens;
an error stays in view above the results. Every note is still on the page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from evalsite.reports.models import ReportSnapshot
from evalsite.reports.tasks import recompute_report

pytestmark = pytest.mark.django_db

NOTES = [
    {"level": "info", "part": "input", "text": "4 practice answers in answers left out"},
    {"level": "warning", "part": "agreement", "text": "reliability interval for drums rests on 6"},
    {"level": "info", "part": "power", "text": "pilot with 8 participants: a rough planner"},
    {"level": "warning", "part": "agreement", "text": "noise ceiling for bass above 1"},
    {"level": "warning", "part": "mixed", "text": "mixed_laplace not computed: singular"},
]


@pytest.fixture
def page(client, sim_study, alice):
    """The report page of `sim_study` with the snapshot's notes replaced by `notes`."""

    def get(notes: list[dict]) -> str:
        snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
        ReportSnapshot.objects.filter(pk=snap.pk).update(messages=notes)
        client.force_login(alice)
        return client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()

    return get


def _notes_box(html: str) -> str:
    (box,) = re.findall(r'<details class="report-notes"[^>]*>.*?</details>', html, re.S)
    return box


def test_it_counts_its_notes_at_the_top_and_shows_the_results_before_them(page):
    html = page(NOTES)
    box = _notes_box(html)
    summary = re.search(r"<summary>(.*?)</summary>", box, re.S)[1]
    assert " ".join(summary.split()) == "5 notes on these results: 3 warnings, 2 infos"
    assert "<details open" not in html[: html.index("report-notes")]  # closed: one line
    first_result = html.index("<figure")
    assert html.index("report-notes") < first_result
    # no note's text sits in the page outside the closed box, above the results
    above = html[:first_result].replace(box, "")
    assert not any(note["text"] in above for note in NOTES), above


def test_it_keeps_every_note_grouped_with_the_tables_it_concerns(page):
    box = _notes_box(page(NOTES))
    assert all(note["text"] in box for note in NOTES)  # kept, each once
    assert sum(box.count(note["text"]) for note in NOTES) == len(NOTES)
    groups = re.findall(r'<li class="notes-group">(.*?)</ul>\s*</li>', box, re.S)
    assert len(groups) == 4, box  # input, agreement, mixed, power
    agreement = next(g for g in groups if "reliability interval" in g)
    assert "noise ceiling for bass" in agreement  # both agreement notes together
    assert 'href="#table-reliability"' in agreement and 'href="#table-noise_ceiling"' in agreement
    power = next(g for g in groups if "pilot with 8" in g)
    assert 'href="#table-power_plan"' in power
    mixed = next(g for g in groups if "mixed_laplace" in g)
    assert 'href="#table-mixed"' in mixed  # a table the page shows
    assert "href" not in next(g for g in groups if "practice answers" in g)  # the answers


def test_it_shows_an_error_above_the_results_outside_the_closed_notes(page):
    error = {"level": "error", "part": "input", "text": "answers.csv has no column trial"}
    html = page([error, *NOTES])
    assert error["text"] not in _notes_box(html)
    assert html.index(error["text"]) < html.index("<figure")
    summary = re.search(r"<summary>(.*?)</summary>", _notes_box(html), re.S)[1]
    assert " ".join(summary.split()) == "5 notes on these results: 3 warnings, 2 infos"


def test_it_counts_one_note_in_the_singular(page):
    summary = re.search(r"<summary>(.*?)</summary>", _notes_box(page(NOTES[:1])), re.S)[1]
    assert " ".join(summary.split()) == "1 note on these results: 1 info"


def test_it_shows_no_notes_box_for_a_report_without_notes(page):
    assert "report-notes" not in page([])


def test_its_standalone_summary_lays_its_notes_out_as_the_page_does():
    """The bundle's summary.html: results first, its notes counted above them, in a disclosure."""
    from evalsite.reports.analysis.result import Report
    from evalsite.reports.rendering.summary import html_summary

    report = Report(messages=[*NOTES, {"level": "error", "part": "input", "text": "no trial"}])
    html = html_summary(report, {"consent": "<svg></svg>"})
    box = _notes_box(html)
    summary = re.search(r"<summary>(.*?)</summary>", box, re.S)[1]
    assert " ".join(summary.split()) == "5 notes on these results: 3 warnings, 2 infos"
    assert all(box.count(note["text"]) == 1 for note in NOTES)
    assert html.index("no trial") < html.index("<figure") and "no trial" not in box
    assert html.index("report-notes") < html.index("<figure")


SEPARATION = {
    "level": "warning",
    "part": "mixed",
    "text": "drums: every answer agrees: its log-odds is not estimable",
}


def _in_view(html: str) -> str:
    """The page without its closed notes box: what a reader sees without opening it."""
    return html.replace(_notes_box(html), "")


def test_a_warning_stays_in_view_under_the_first_table_its_part_made(page):
    """A warning says how far to trust a figure (a row left out, an interval left empty): the
    reader must meet it where the figure is, not only inside the closed box (review rdemo2, F1)."""
    html = page([SEPARATION, *NOTES])
    seen = _in_view(html)
    assert SEPARATION["text"] in seen
    mixed_heading = seen.index('id="table-mixed"')
    at = seen.index(SEPARATION["text"])
    assert at > mixed_heading  # under its table's heading...
    assert at < seen.index("<table", mixed_heading)  # ...before the table
    assert seen.count(SEPARATION["text"]) == 1  # once, though the part made several tables
    # infos stay folded: only in the box
    assert not any(n["text"] in seen for n in NOTES if n["level"] == "info")


def test_a_warning_of_a_part_without_a_table_on_the_page_stays_in_view_above_the_results(page):
    lost = {"level": "warning", "part": "input", "text": "12 answers name no trial: left out"}
    html = page([lost, *NOTES])
    seen = _in_view(html)
    assert lost["text"] in seen
    assert seen.index(lost["text"]) < seen.index("<figure")


def test_a_consent_note_links_to_the_participant_level_tables_too(page):
    note = {"level": "warning", "part": "consent", "text": "participant-level t test left empty"}
    box = _notes_box(page([note]))
    assert 'href="#table-participant_consent"' in box


def test_its_standalone_summary_keeps_warnings_in_view_as_the_page_does():
    import pandas as pd

    from evalsite.reports.analysis.result import Report
    from evalsite.reports.rendering.summary import html_summary

    report = Report(messages=[SEPARATION, *NOTES])
    report.tables["mixed"] = pd.DataFrame({"term": ["bass"], "estimate": [0.1]})
    html = html_summary(report, {"consent": "<svg></svg>"})
    seen = _in_view(html)
    at = seen.index(SEPARATION["text"])
    assert seen.index("id='table-mixed'") < at < seen.index("<table")
    assert "reliability interval for drums" in seen  # agreement: no table here, so at the top
    assert seen.index("reliability interval for drums") < seen.index("<figure")
