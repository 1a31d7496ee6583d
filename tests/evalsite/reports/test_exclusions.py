"""`find_exclusions`: which participant each pre-registered rule excludes, with the value and
threshold it read, and the per-participant summary, for a table built to make each rule fire."""

from __future__ import annotations

import pandas as pd
import pytest

from evalsite.reports.analysis.exclusions import ExclusionRules, find_exclusions
from evalsite.reports.analysis.inputs import normalise_answers
from evalsite.studies.models import Study


def _answer(p: int, t: int) -> dict:
    """p0 passes every rule; p1 failed screening; p2 missed both catch trials; p3 always chose
    screen position A; p4 answered fast; p5 both failed screening and answered fast; p6 has no
    response times and a third, missed, catch trial; p7 missed its only catch trial and chose A
    on its 10 answers (too few for either rule)."""
    catch = t < 2 if p != 7 else t < 1
    return {
        "participant": f"p{p}", "trial": f"t{t}", "instrument": "drums", "chosen": "a",
        "displayed_first": "a" if p in (3, 7) or t % 2 else "b",
        "is_catch": catch or (p == 6 and t == 2),
        "catch_kind": "identical" if catch else ("attention" if p == 6 and t == 2 else ""),
        "catch_correct": (0.0 if p in (2, 7) else 1.0) if catch else (0.0 if p == 6 and t == 2
                                                                      else None),
        "response_ms": None if p == 6 else (100.0 if p in (4, 5) and t < 15 else 2000.0 + t),
        "screening_passed": p not in (1, 5),
    }  # fmt: skip


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    rows = [_answer(p, t) for p in range(8) for t in range(10 if p == 7 else 20)]
    return normalise_answers(pd.DataFrame(rows))


def _plain(df: pd.DataFrame) -> dict[str, list]:
    """The table as lists, every missing value None (NaN never equals itself)."""
    return df.astype(object).where(df.notna(), None).to_dict(orient="list")


SUMMARY = {
    "participant": ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"],
    "n": [20, 20, 20, 20, 20, 20, 20, 10],
    "screening_passed": [True, False, True, True, True, False, True, True],
    "catch_accuracy": [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 2 / 3, 0.0],
    "catch_n": [2, 2, 2, 2, 2, 2, 3, 1],
    "position_n": [20, 20, 20, 20, 20, 20, 20, 10],
    "share_A": [0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 1.0],
    "fast_share": [0.0, 0.0, 0.0, 0.0, 0.75, 0.75, None, 0.0],
    "median_response_ms": [2009.5, 2009.5, 2009.5, 2009.5, 100.0, 100.0, None, 2004.5],
    "same_position_share": [0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 1.0],
}
EXCLUSION_COLUMNS = ["participant", "rule", "value", "threshold", "n"]


def test_it_lists_each_rule_that_fired_in_rule_order(answers):
    exclusions, summary = find_exclusions(answers, ExclusionRules())
    assert list(exclusions.columns) == EXCLUSION_COLUMNS
    assert exclusions.to_dict(orient="list") == {
        "participant": ["p1", "p5", "p2", "p6", "p3", "p4", "p5"],
        "rule": ["failed_screening", "failed_screening", "catch_accuracy_below_threshold",
                 "catch_accuracy_below_threshold", "same_position_responding",
                 "implausibly_fast_answers", "implausibly_fast_answers"],
        "value": [0.0, 0.0, 0.0, 2 / 3, 1.0, 0.75, 0.75],
        "threshold": [1.0, 1.0, 0.75, 0.75, 0.9, 0.5, 0.5],
        "n": [20] * 7,
    }  # fmt: skip
    assert [str(t) for t in exclusions.dtypes] == ["str", "str", "float64", "float64", "int64"]
    assert _plain(summary) == SUMMARY | {
        "excluded": [False, True, True, True, True, True, True, False],
        "rules": ["", "failed_screening", "catch_accuracy_below_threshold",
                  "same_position_responding", "implausibly_fast_answers",
                  "failed_screening, implausibly_fast_answers", "catch_accuracy_below_threshold",
                  ""],
    }  # fmt: skip


def test_it_lists_a_rule_that_fired_through_both_its_checks_once(answers):
    # Screening not required; the median rule on: p4 and p5 fire it through the median response
    # time and the share of fast answers, and are listed once, with the median (checked first).
    rules = ExclusionRules(require_screening=False, min_median_rt_ms=1000.0)
    exclusions, summary = find_exclusions(answers, rules)
    assert exclusions.to_dict(orient="list") == {
        "participant": ["p2", "p6", "p3", "p4", "p5"],
        "rule": ["catch_accuracy_below_threshold", "catch_accuracy_below_threshold",
                 "same_position_responding", "implausibly_fast_answers",
                 "implausibly_fast_answers"],
        "value": [0.0, 2 / 3, 1.0, 100.0, 100.0],
        "threshold": [0.75, 0.75, 0.9, 1000.0, 1000.0],
        "n": [20] * 5,
    }  # fmt: skip
    assert list(summary["excluded"]) == [False, False, True, True, True, True, True, False]
    assert list(summary["rules"])[4:6] == ["implausibly_fast_answers"] * 2


def test_it_returns_an_empty_table_with_its_columns_when_no_rule_fires(answers):
    rules = ExclusionRules(
        require_screening=False, min_catch_accuracy=0.0, max_same_position_share=1.0,
        max_fast_share=1.0,
    )  # fmt: skip
    exclusions, summary = find_exclusions(answers, rules)
    assert exclusions.empty and list(exclusions.columns) == EXCLUSION_COLUMNS
    assert _plain(summary) == SUMMARY | {"excluded": [False] * 8, "rules": [""] * 8}


def _catch_answers(**catch_columns) -> pd.DataFrame:
    """6 participants x 10 main + 4 catch answers; p0 gets every catch trial wrong. The catch
    rows carry only the columns given (the CSV command's input may leave any out)."""
    rows = []
    for p in range(6):
        rows += [
            {"participant": f"p{p}", "trial": f"t{i}", "instrument": "drums",
             "chosen": "ab"[(i + p) % 2], "model_choice": "a", "is_catch": False}
            for i in range(10)
        ]  # fmt: skip
        for i in range(4):
            row = {"participant": f"p{p}", "trial": f"c{i}", "instrument": "drums", "chosen": "a",
                   "model_choice": None, "is_catch": True}  # fmt: skip
            for column, value in catch_columns.items():
                row[column] = value(p) if callable(value) else value
            rows.append(row)
    return pd.DataFrame(rows)


def _catch_warnings(report) -> list[str]:
    return [m["text"] for m in report.messages if m["part"] == "exclusions"]


def test_it_warns_that_the_catch_rule_was_not_applied_when_catch_trials_have_no_kind():
    from evalsite.reports.analysis import ReportConfig, build_report

    answers = _catch_answers(catch_correct=lambda p: 0.0 if p == 0 else 1.0)
    report = build_report(answers, ReportConfig(n_boot=20, mixed_model=False))
    assert report.tables["exclusions"].empty  # the rule cannot tell repeats from the others
    (text,) = _catch_warnings(report)
    assert "catch_accuracy_below_threshold" in text and "24 catch answers" in text
    assert "catch_kind" in text and "identical, attention" in text


def test_it_warns_that_the_catch_rule_was_not_applied_when_catch_answers_are_unscored():
    from evalsite.reports.analysis import ReportConfig, build_report

    answers = _catch_answers(catch_kind="identical")
    report = build_report(answers, ReportConfig(n_boot=20, mixed_model=False))
    (text,) = _catch_warnings(report)
    assert "catch_accuracy_below_threshold" in text and "24 catch answers" in text
    assert "catch_correct" in text


@pytest.mark.parametrize("kind", ["Identical", "attention_check", "catch"])
def test_it_warns_naming_a_catch_kind_the_rule_does_not_know_instead_of_passing_silently(kind):
    from evalsite.reports.analysis import ReportConfig, build_report

    # A CSV typo: p0 fails every catch trial, but no kind the rule scores says so; the rule
    # does not guess which known kind was meant (not even by case), so it names the kind.
    answers = _catch_answers(catch_kind=kind, catch_correct=lambda p: 0.0 if p == 0 else 1.0)
    report = build_report(answers, ReportConfig(n_boot=20, mixed_model=False))
    assert report.tables["exclusions"].empty
    (text,) = _catch_warnings(report)
    assert "catch_accuracy_below_threshold" in text and "24 catch answers" in text
    assert f"'{kind}' (24)" in text and "identical, attention" in text and "repeat" in text


def test_it_does_not_warn_about_a_catch_kind_the_rules_were_given():
    from evalsite.reports.analysis.exclusions import unscored_catch_notes

    answers = normalise_answers(
        _catch_answers(catch_kind="catch", catch_correct=lambda p: 0.0 if p == 0 else 1.0)
    )
    assert unscored_catch_notes(answers, ExclusionRules(catch_kinds=("catch",))) == []


def test_it_applies_the_catch_rule_without_a_warning_when_kinds_and_scores_are_given():
    from evalsite.reports.analysis import ReportConfig, build_report

    answers = _catch_answers(catch_kind="identical", catch_correct=lambda p: 0.0 if p == 0 else 1.0)
    report = build_report(answers, ReportConfig(n_boot=20, mixed_model=False))
    assert list(report.tables["exclusions"]["participant"]) == ["p0"]
    assert _catch_warnings(report) == []


def test_it_does_not_warn_about_repeat_catch_trials_the_rule_leaves_out_by_design(answers):
    from evalsite.reports.analysis.exclusions import unscored_catch_notes

    repeats = answers.assign(catch_kind=answers["catch_kind"].replace("identical", "repeat"))
    assert unscored_catch_notes(repeats, ExclusionRules()) == []
    assert unscored_catch_notes(answers, ExclusionRules()) == []


def _timed_answers(low_ms: float, high_ms: float) -> pd.DataFrame:
    """One attentive participant's 20 answers (screening passed, catch trials right, positions
    balanced), each `low_ms` to `high_ms` after the answer buttons unlocked."""
    rows = [
        {
            "participant": "p0",
            "trial": f"t{t}",
            "instrument": "drums",
            "chosen": "a",
            "displayed_first": "a" if t % 2 else "b",
            "is_catch": t < 2,
            "catch_kind": "identical" if t < 2 else "",
            "catch_correct": 1.0 if t < 2 else None,
            "response_ms": low_ms + (high_ms - low_ms) * t / 19,
            "screening_passed": True,
        }
        for t in range(20)
    ]
    return normalise_answers(pd.DataFrame(rows))


def _site_default_rules() -> ExclusionRules:
    """The rules a study with no exclusion settings of its own pre-registers (read through its
    defaults, as the report reads them)."""
    return ExclusionRules.from_dict(Study().setting("exclusion"))


def test_it_keeps_a_participant_who_clicks_within_a_second_of_the_unlock_by_default():
    # response_ms counts from the unlock, after all three clips played to the end: a listener
    # who decided while the clips played answers in well under the old 1500 ms median.
    exclusions, _ = find_exclusions(_timed_answers(600.0, 1200.0), _site_default_rules())
    assert exclusions.empty


def test_it_excludes_a_participant_who_clicks_faster_than_a_human_reacts_by_default():
    exclusions, _ = find_exclusions(_timed_answers(50.0, 150.0), _site_default_rules())
    assert list(exclusions["rule"]) == ["implausibly_fast_answers"]
