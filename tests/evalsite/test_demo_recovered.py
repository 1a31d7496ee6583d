"""The demo's "recovered" lines: the report's crossed interval (participants and trials), the one
docs/statistics.md recommends, not the answer-level one the report calls descriptive. (That they
count the simulated participants only: tests/test_demo_stages.py.)"""

from __future__ import annotations

from evalsite.demo_stages import recovered_lines, recovered_rows

# The piano rows the review saw (answer-level Wilson vs crossed), and a guitar row whose crossed
# interval the report left empty (null in the stored table).
CONSENT = [
    {"term": "piano", "estimate": 0.68, "ci_low": 0.547, "ci_high": 0.801, "n": 50},
    {"term": "guitar", "estimate": 0.7, "ci_low": 0.6, "ci_high": 0.8, "n": 40},
]
CROSSED = [
    {"term": "piano", "estimate": 0.68, "ci_low": 0.480, "ci_high": 0.895, "n": 50},
    {"term": "guitar", "estimate": 0.7, "ci_low": None, "ci_high": None, "n": 40},
]
TABLES = {"consent": CONSENT, "crossed": CROSSED}  # as a report's to_dict() stores them


def test_it_recovers_the_crossed_interval_and_keeps_the_answer_level_one_labelled():
    piano = recovered_rows(TABLES)["piano"]
    assert (piano["ci_low"], piano["ci_high"]) == (0.480, 0.895)
    assert (piano["answer_ci_low"], piano["answer_ci_high"]) == (0.547, 0.801)
    (line,) = [x for x in recovered_lines(recovered_rows(TABLES), {"piano": 0.6}) if "piano" in x]
    assert "crossed interval [0.480, 0.895]" in line
    assert "answer-level, descriptive [0.547, 0.801]" in line


def test_it_says_when_the_report_left_the_crossed_interval_empty():
    lines = recovered_lines(recovered_rows(TABLES), {"guitar": 0.7})
    (line,) = [x for x in lines if "guitar" in x]
    assert "crossed interval left empty (see the report)" in line
