"""Rendering: the summaries' headings and the plots' labels name the interval level the report
was computed at, not a fixed 95%."""

from __future__ import annotations

import re

import pytest

from evalsite.reports.analysis import ReportConfig, build_report
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers
from evalsite.reports.rendering.plots import all_plots
from evalsite.reports.rendering.summary import format_value, html_summary, markdown_summary


@pytest.fixture(scope="module")
def report_at_80():
    spec = SimulationSpec(n_participants=8, trials_per_instrument=4, seed=1)
    answers = simulate_answers(spec)[0]
    return build_report(answers, ReportConfig(n_boot=50, mixed_model=False, confidence=0.8))


def test_it_names_the_reports_confidence_in_the_summary_headings(report_at_80):
    plots = all_plots(report_at_80)
    md = [line for line in markdown_summary(report_at_80).splitlines() if line.startswith("## ")]
    page = re.findall(r"<h2[^>]*>(.*?)</h2>", html_summary(report_at_80, plots))
    for headings in (md, page):
        levels = [h for h in headings if "%" in h]
        assert any(h.startswith(("## Consent per", "Consent per")) for h in levels), headings
        assert any(h.startswith(("## Consent with participants", "Consent with")) for h in levels)
        assert any(h.startswith(("## Position bias", "Position bias")) for h in levels)
        assert len(levels) == 4 and all("80%" in h and "95%" not in h for h in levels), levels


def test_it_names_the_reports_confidence_in_the_plot_labels(report_at_80):
    plots = all_plots(report_at_80)
    # matplotlib writes each text drawn as paths after a comment holding the text.
    labels = {n: re.findall(r"<!-- ([^>]*%[^>]*) -->", svg) for n, svg in plots.items()}
    assert "consent (Wilson 80%)" in labels["consent"]
    assert "crossed random effects 80%" in labels["consent"]
    assert "binned consent (Wilson 80%)" in labels["psychometric"]
    assert "crossed random effects 80%" in labels["position_bias"]
    assert "Wilson 80% (answer level)" in labels["fatigue"]
    assert not [label for found in labels.values() for label in found if "95%" in label]


def test_it_draws_the_plots_when_every_answer_to_an_instrument_agrees():
    # At 50% the Wilson bound of 4 of 4 computed as 0.9999999999999999, a hair below the
    # estimate 1.0: a negative error-bar length, which matplotlib refuses.
    spec = SimulationSpec(n_participants=4, trials_per_instrument=4, seed=5)
    report = build_report(
        simulate_answers(spec)[0], ReportConfig(n_boot=50, mixed_model=False, confidence=0.5)
    )
    consent = report.tables["consent"]
    assert (consent["estimate"] == 1.0).any()
    assert {"consent", "psychometric"} <= set(all_plots(report))


@pytest.mark.parametrize(
    ("value", "column", "shown"),
    [
        (0.12345, "estimate", "0.123"),
        (5.8591016025996005e203, "ci_high", "5.86e+203"),  # not 204 digits and ".000"
        (-2.5e7, "estimate", "-2.5e+07"),
        (1234.0, "n", "1234"),
        (0.0004, "p_val", "0.0004"),
        (0.04, "p_adj", "0.040"),
    ],
)
def test_it_shows_huge_values_in_scientific_notation(value, column, shown):
    assert format_value(value, column) == shown
