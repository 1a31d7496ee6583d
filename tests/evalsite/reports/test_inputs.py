"""`normalise_answers`: the whole typed table it makes from a raw one (derived columns filled in
row by row), and each malformed input's message, checked in a fixed order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalsite.reports.analysis.inputs import ReportInputError, normalise_answers

BASE = pd.DataFrame(
    {"participant": ["p1", "p2"], "trial": ["t1", "t2"], "instrument": ["drums", "bass"],
     "chosen": ["a", "b"]}
)  # fmt: skip


def _plain(df: pd.DataFrame) -> dict[str, list]:
    """The table as lists, every missing value None (NaN never equals itself)."""
    return df.astype(object).where(df.notna(), None).to_dict(orient="list")


def test_it_types_the_table_and_derives_what_the_export_left_out():
    raw = pd.DataFrame(
        {
            "participant": ["p1", "p1", "p2", 7],
            "trial": ["t1", "t2", "t1", "t3"],
            "instrument": [" drums", "bass", "piano ", "others"],
            "chosen": ["a", " b", "b", "a"],
            "candidate_a": ["c1", None, "", np.nan],
            "candidate_b": ["c2", "c3", "c4", "c5"],
            "displayed_first": ["a", "b", None, ""],
            "chosen_position": [None, "B", "", np.nan],
            "model_choice": ["a", "a", None, "b"],
            "agree": [None, "", "1", np.nan],
            "is_catch": ["true", "0", "", "yes"],
            "catch_kind": ["identical", None, np.nan, "repeat"],
            "screening_passed": ["", "false", None, "1"],
            "response_ms": ["300", 1500, "", None],
        }
    )
    out = normalise_answers(raw, source="x.csv")
    nothing = [None] * 4
    assert _plain(out) == {
        "study": [""] * 4,
        "participant": ["p1", "p1", "p2", "7"],
        "session": [""] * 4,
        "trial": ["t1", "t2", "t1", "t3"],
        "trial_index": [0.0, 1.0, 0.0, 0.0],  # none given: counted per participant
        "instrument": ["drums", "bass", "piano", "others"],
        "reference": [""] * 4,
        "candidate_a": ["c1", "", "", ""],
        "candidate_b": ["c2", "c3", "c4", "c5"],
        "displayed_first": ["a", "b", None, None],
        "chosen": ["a", "b", "b", "a"],
        "chosen_position": ["A", "B", None, None],
        "model_choice": ["a", "a", None, "b"],
        "model_margin": nothing,
        "agree": [1.0, 0.0, 1.0, 0.0],
        "is_catch": [True, False, False, True],
        "catch_kind": ["identical", "", "", "repeat"],
        "catch_correct": nothing,
        "response_ms": [300.0, 1500.0, None, None],
        "plays_reference": nothing,
        "plays_a": nothing,
        "plays_b": nothing,
        "screening_passed": [True, False, True, True],
        "created_at": [""] * 4,
        "chosen_clip": ["c1", "c3", "c4", "t3:a"],
    }
    dtypes = {c: str(t) for c, t in out.dtypes.items()}
    assert {c for c, t in dtypes.items() if t == "float64"} == {
        "trial_index", "model_margin", "agree", "catch_correct", "response_ms",
        "plays_reference", "plays_a", "plays_b",
    }  # fmt: skip
    assert {c for c, t in dtypes.items() if t == "bool"} == {"is_catch", "screening_passed"}
    # The choices hold None where empty (object); the text columns are pandas strings.
    assert {c for c, t in dtypes.items() if t == "object"} == {
        "displayed_first", "chosen", "chosen_position", "model_choice"
    }  # fmt: skip
    assert {t for t in dtypes.values()} == {"float64", "bool", "object", "str"}


def test_it_keeps_the_given_trial_index_and_fills_the_minimal_columns_defaults():
    out = normalise_answers(BASE.assign(trial_index=[3, None]))
    assert list(out.columns[-1:]) == ["chosen_clip"]
    plain = _plain(out)
    assert plain["trial_index"] == [3.0, None]
    assert plain["chosen_clip"] == ["t1:a", "t2:b"]
    assert plain["chosen_position"] == plain["agree"] == plain["model_choice"] == [None, None]
    assert plain["is_catch"] == [False, False] and plain["screening_passed"] == [True, True]


def test_it_leaves_the_raw_table_unchanged():
    raw = BASE.copy()
    normalise_answers(raw)
    assert raw.equals(BASE)


def test_it_rejects_what_is_not_a_table():
    with pytest.raises(ReportInputError) as error:
        normalise_answers([1, 2], "x.csv")  # type: ignore[arg-type]
    assert str(error.value) == "x.csv: expected a table of answers, got list"


def test_it_names_the_missing_columns_and_the_expected_ones():
    with pytest.raises(ReportInputError) as error:
        normalise_answers(BASE.drop(columns=["chosen", "trial"]), "x.csv")
    assert str(error.value) == (
        "x.csv: missing column(s) trial, chosen; expected at least participant, trial, "
        "instrument, chosen (the export's columns: study, participant, session, trial, "
        "trial_index, instrument, reference, candidate_a, candidate_b, displayed_first, chosen, "
        "chosen_position, model_choice, model_margin, agree, is_catch, catch_kind, "
        "catch_correct, response_ms, plays_reference, plays_a, plays_b, screening_passed, "
        "created_at)"
    )


# Each fault with its message; a table with all of them reports the first, then the next once
# the first is mended, and so on: the order in which the checks run.
FAULTS = [
    ({"participant": ["p1", None]}, "fields 'participant' and 'trial' must not be empty"),
    ({"trial": ["", "t2"]}, "fields 'participant' and 'trial' must not be empty"),
    (
        {"instrument": ["kazoo", "banjo"]},
        "field 'instrument' holds unknown instrument(s) ['banjo', 'kazoo']; "
        "expected one of ['drums', 'bass', 'piano', 'guitar', 'others']",
    ),
    ({"chosen": ["a", "left"]}, "field 'chosen' holds 'left'; expected one of ['a', 'b']"),
    (
        {"displayed_first": ["a", "c"]},
        "field 'displayed_first' holds 'c'; expected one of ['a', 'b']",
    ),
    ({"model_choice": ["x", "a"]}, "field 'model_choice' holds 'x'; expected one of ['a', 'b']"),
    (
        {"chosen_position": ["a", "B"]},
        "field 'chosen_position' holds 'a'; expected one of ['A', 'B']",
    ),
    ({"trial_index": ["first", 1]}, "field 'trial_index' holds 'first'; expected a number"),
    ({"plays_b": [1, "twice"]}, "field 'plays_b' holds 'twice'; expected a number"),
    ({"agree": ["yes", 1]}, "field 'agree' holds 'yes'; expected a number"),
    (
        {"is_catch": ["maybe", "true"]},
        "field 'is_catch' holds 'maybe'; expected true/false (or 1/0)",
    ),
    (
        {"screening_passed": ["true", "ok"]},
        "field 'screening_passed' holds 'ok'; expected true/false (or 1/0)",
    ),
]


def test_it_checks_the_fields_in_a_fixed_order_and_names_each_fault():
    for first in range(len(FAULTS)):
        raw = BASE.copy()
        for change, _ in FAULTS[first:]:
            raw = raw.assign(**change)
        with pytest.raises(ReportInputError) as error:
            normalise_answers(raw, "x.csv")
        assert str(error.value) == f"x.csv: {FAULTS[first][1]}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (BASE.iloc[:0], "the study has no answers yet; nothing to analyse"),
        (
            BASE.assign(chosen=["a", ""]),
            "field 'chosen' holds '(empty)'; expected one of ['a', 'b']",
        ),
        (BASE.assign(agree=[2, 1]), "field 'agree' must be 1, 0 or empty"),
    ],
)
def test_it_names_each_other_fault(raw, message):
    with pytest.raises(ReportInputError) as error:
        normalise_answers(raw, "x.csv")
    assert str(error.value) == f"x.csv: {message}"
