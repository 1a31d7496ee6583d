"""Bad input gives a clear message in the report (naming the field and what was expected), never
a traceback, and is never silently skipped."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from evalsite.reports.analysis import ReportConfig, build_report, power
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers

FAST = ReportConfig(n_boot=50, mixed_model=False)


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    spec = SimulationSpec(n_participants=6, trials_per_instrument=4, careless_share=0, seed=2)
    return simulate_answers(spec)[0]


def _errors(report) -> list[str]:
    return [m["text"] for m in report.messages if m["level"] == "error"]


def test_it_names_missing_columns(answers):
    report = build_report(answers.drop(columns=["chosen", "trial"]), FAST, source="x.csv")
    (text,) = _errors(report)
    assert "x.csv" in text and "chosen" in text and "trial" in text and "expected" in text
    assert report.tables == {}


def test_it_names_unknown_instruments(answers):
    bad = answers.copy()
    bad.loc[3, "instrument"] = "kazoo"
    (text,) = _errors(build_report(bad, FAST))
    assert "'instrument'" in text and "kazoo" in text and "drums" in text


def test_it_names_malformed_values(answers):
    bad = answers.copy()
    bad["chosen"] = bad["chosen"].astype(object)
    bad.loc[0, "chosen"] = "left"
    (text,) = _errors(build_report(bad, FAST))
    assert "'chosen'" in text and "left" in text and "['a', 'b']" in text


def test_it_says_a_study_without_answers_has_nothing_to_analyse(answers):
    (text,) = _errors(build_report(answers.iloc[:0], FAST))
    assert "no answers" in text
    (text,) = _errors(build_report(pd.DataFrame(), FAST))
    assert "missing column" in text


def test_it_reports_a_single_participant_with_a_warning(answers):
    one = answers[answers["participant"] == answers["participant"].iloc[0]]
    report = build_report(one, ReportConfig(n_boot=50))
    assert report.ok
    assert not report.tables["consent"].empty
    warnings = " ".join(m["text"] for m in report.messages if m["level"] == "warning")
    assert "only one participant" in warnings
    assert "mixed" in warnings  # the mixed model says why it was not fitted


def test_it_reports_identical_answers_without_fitting_models(answers):
    same = answers.assign(chosen=answers["model_choice"].fillna("a"))
    same = same.assign(chosen_position=None, agree=None)
    report = build_report(same, ReportConfig(n_boot=50))
    assert report.ok
    consent = report.tables["consent"].set_index("term")
    assert (consent["estimate"] == 1.0).all()
    texts = " ".join(m["text"] for m in report.messages)
    assert "every analysed answer has agree = 1" in texts
    assert "same agreement value" in texts


def _plan_note(message: dict) -> bool:
    """A power note other than the one saying the minutes leave out the listening."""
    return message["part"] == "power" and "not the listening" not in message["text"]


def test_it_plans_an_instrument_whose_pilot_answers_all_agree_and_says_how(answers):
    drums = (answers["instrument"] == "drums") & answers["agree"].notna()
    same = answers.copy()
    same.loc[drums, "chosen"] = same.loc[drums, "model_choice"]
    same.loc[drums, ["chosen_position", "agree"]] = None  # derived again, row by row
    report = build_report(same, ReportConfig(n_boot=50, mixed_model=False, confidence=0.9))
    consent = report.tables["consent"].set_index("term").loc["drums"]
    assert consent["estimate"] == 1.0
    plan = report.tables["power_plan"].set_index("term").loc["drums"]
    assert (plan["answers_for_width"] > 0).all() and (plan["participants_for_width"] > 0).all()
    assert (plan["planning_p"] == consent["ci_low"]).all()  # the Wilson interval's far end
    # Answers that all agree leave the ICC unknown too: planned as independent answers, and said.
    assert (plan["planning_icc"] == 0).all() and (plan["design_effect"] == 1).all()
    # (the listening note, apart: these answers give no listen_seconds_per_trial; test_pinned.py)
    wilson, icc = [m["text"] for m in report.messages if _plan_note(m)]
    assert "drums" in wilson and "90% Wilson" in wilson and f"{consent['ci_low']:.3f}" in wilson
    assert "drums" in icc and "agree = 1" in icc and "ICC 0" in icc and "independent" in icc
    assert "power_assumed_icc" in icc and "empty" not in icc


def test_it_says_when_every_participant_is_excluded(answers):
    fast = answers.assign(response_ms=100.0)
    (text,) = _errors(build_report(fast, FAST))
    assert "all 6 participants were excluded" in text


def test_it_leaves_practice_answers_of_the_full_export_out(answers):
    practice = answers.iloc[:5].assign(trial="practice", instrument="drums")
    full = pd.concat([answers.assign(is_practice=False), practice.assign(is_practice=True)])
    full = full.astype({"is_practice": str})  # as read back from the CSV download
    full = full.assign(agree=None, chosen_position=None)  # derived again, row by row
    report = build_report(full, FAST)
    plain = build_report(answers, FAST)
    assert report.tables["consent"].equals(plain.tables["consent"])
    assert any("5 practice answers" in m["text"] for m in report.messages)


def test_it_reports_agreement_among_people_before_the_model_has_chosen(answers):
    no_model = answers.assign(model_choice=None, agree=None, model_margin=None)
    report = build_report(no_model, FAST)
    assert report.ok
    assert "consent" not in report.tables and not report.tables["reliability"].empty
    assert any("no answer can be scored against the model" in m["text"] for m in report.messages)


def test_it_matches_a_repeat_whose_candidates_come_back_swapped(answers):
    from evalsite.reports.analysis.diagnostics import test_retest
    from evalsite.reports.analysis.inputs import normalise_answers

    first = answers[~answers["is_catch"]].iloc[[0]]
    again = first.assign(
        trial="again", trial_index=999.0, candidate_a=first["candidate_b"].iloc[0],
        candidate_b=first["candidate_a"].iloc[0],
        chosen={"a": "b", "b": "a"}[first["chosen"].iloc[0]],  # the same clip, other label
        chosen_position=None, agree=None, model_choice=None,
    )  # fmt: skip
    table = test_retest(normalise_answers(pd.concat([first, again]).assign(agree=None)))
    overall = table.set_index("term").loc["overall"]
    assert (overall["n"], overall["estimate"]) == (1, 1.0)


def _minimal_csv(n_participants: int = 4, n_trials: int = 24) -> pd.DataFrame:
    """The documented minimal columns (and the model's choice, always candidate a), no screen
    position: p0 always agrees with the model, the others answer at random."""
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        [
            {
                "participant": f"p{p}",
                "trial": f"t{t}",
                "instrument": "drums",
                "chosen": "a" if p == 0 else rng.choice(["a", "b"]),
                "model_choice": "a",
            }
            for p in range(n_participants)
            for t in range(n_trials)
        ]
    )


def test_it_judges_no_screen_position_where_the_answers_record_none():
    report = build_report(_minimal_csv(), FAST)
    assert report.ok
    assert report.tables["exclusions"].empty  # p0 prefers candidate a, not screen position A
    assert report.tables["position_bias"].empty
    (text,) = [m["text"] for m in report.messages if m["part"] == "input"]
    assert "displayed_first" in text and "same_position_responding" in text
    assert "position_bias" in text and "model_shown_first" in text


def test_it_judges_screen_position_only_on_the_answers_that_record_it():
    from evalsite.reports.analysis.inputs import normalise_answers
    from evalsite.reports.analysis.mixed import design

    answers = _minimal_csv()
    answers["chosen"] = answers["chosen"].where(answers["participant"] != "p1", "a")
    answers["displayed_first"] = "a"  # p0 and p1 always choose screen position A ...
    answers.loc[answers["participant"].isin(["p2", "p3"]), "displayed_first"] = "b"
    unknown = (answers["participant"] == "p1") & (answers.index % 24 >= 4)
    answers.loc[unknown, "displayed_first"] = ""  # ... but p1's is known on 4 answers only
    report = build_report(answers, FAST)
    assert list(report.tables["exclusions"]["participant"]) == ["p0"]
    assert report.tables["position_bias"].set_index("term").loc["overall", "n"] == 4 + 48  # p0 out
    assert any("20 answers" in m["text"] for m in report.messages if m["part"] == "input")
    _, _, X, notes = design(normalise_answers(answers))
    assert "covariate model_shown_first: 20 missing values set to their instrument's mean" in notes
    assert (X.loc[unknown, "model_shown_first"] == 0).all()


def test_it_reads_a_blank_screening_cell_as_not_screened_out():
    # The export writes no value where no screening was run (NULL: not screened out).
    answers = _minimal_csv(n_trials=2)
    passed = {"p0": "", "p1": None, "p2": "false", "p3": "true"}
    answers["screening_passed"] = answers["participant"].map(passed)
    as_read = pd.read_csv(io.StringIO(answers.to_csv(index=False)))  # blank cells come back NaN
    for table in (answers, as_read):
        report = build_report(table, FAST)
        assert list(report.tables["exclusions"]["participant"]) == ["p2"]


def _agreeing(agrees: dict[str, list[int]]) -> pd.DataFrame:
    """Four answers per participant and instrument, the first agrees[instrument][p] of them
    agreeing with the model (which always chooses a)."""
    return pd.DataFrame(
        [
            {
                "participant": f"p{p}",
                "trial": f"{inst}{t}",
                "instrument": inst,
                "chosen": "a" if t < k else "b",
                "model_choice": "a",
            }
            for inst, ks in agrees.items()
            for p, k in enumerate(ks)
            for t in range(4)
        ]
    )


def test_it_leaves_the_participant_t_test_undefined_where_rates_do_not_vary():
    # Every participant agrees on 3 of 4 drums answers: no spread, so no t (not inf, p = 0).
    agrees = {"drums": [3, 3, 3], "guitar": [1, 2, 4]}
    answers = _agreeing(agrees)
    report = build_report(answers, FAST)
    table = report.tables["participant_consent"].set_index("term")
    assert table.loc["drums", "estimate"] == 0.75
    assert table.loc["drums", ["stat", "p_val", "p_adj", "ci_low", "ci_high"]].isna().all()
    guitar = table.loc["guitar"]  # drums' undefined p counts in guitar's Holm family as p = 1
    assert np.isfinite(guitar["stat"])
    assert guitar["p_adj"] == pytest.approx(min(1.0, 2 * guitar["p_val"]), rel=1e-12)
    (text,) = [m["text"] for m in report.messages if m["part"] == "consent"]
    assert "drums" in text and "undefined" in text and "guitar" not in text


def test_it_says_why_the_participant_t_test_of_a_one_participant_instrument_is_undefined():
    # Drums answered by one participant: no t test. Its undefined p counts in guitar's Holm
    # family as p = 1 and the report says why it is empty.
    report = build_report(_agreeing({"drums": [2], "guitar": [1, 2, 4]}), FAST)
    table = report.tables["participant_consent"].set_index("term")
    assert table.loc["drums", ["stat", "p_val", "p_adj"]].isna().all()
    guitar = table.loc["guitar"]
    assert guitar["p_adj"] == pytest.approx(min(1.0, 2 * guitar["p_val"]), rel=1e-12)
    (text,) = [m["text"] for m in report.messages if m["part"] == "consent"]
    assert "drums" in text and "undefined" in text and "1 participant" in text


def test_it_plans_an_icc_it_cannot_estimate_as_0_unless_the_config_assumes_one():
    # Drums has one pilot participant, so its ICC is unknown: ICC 0 (design effect 1), said so.
    agrees = {"drums": [2], "guitar": [1, 2, 4]}
    answers = _agreeing(agrees)
    report = build_report(answers, FAST)
    plan = report.tables["power_plan"].set_index("term")
    drums = plan.loc["drums"]
    assert (drums["planning_icc"] == 0).all() and (drums["design_effect"] == 1).all()
    assert drums["answers_for_width"].to_numpy() == pytest.approx(
        [power.n_for_half_width(0.5, 0.05)] * 4
    )
    assert list(drums["participants_for_width"]) == [77, 39, 20, 10]  # ceil(384.15 / m)
    assert plan.loc["guitar", "answers_for_width"].notna().all()
    (text,) = [m["text"] for m in report.messages if _plan_note(m)]
    assert "drums" in text and "one pilot participant" in text and "ICC 0" in text
    assert "understates the participants needed" in text and "power_assumed_icc" in text

    assumed = build_report(
        answers, ReportConfig(n_boot=50, mixed_model=False, power_assumed_icc=0.1)
    )
    plan = assumed.tables["power_plan"].set_index("term").loc["drums"]
    trials = plan["trials_per_participant"].to_numpy()
    assert (plan["planning_icc"] == 0.1).all()
    assert plan["design_effect"].to_numpy() == pytest.approx(1 + (trials - 1) * 0.1)
    (text,) = [m["text"] for m in assumed.messages if _plan_note(m)]
    assert "drums" in text and "power_assumed_icc = 0.1" in text and "ICC 0" not in text


@pytest.mark.parametrize(
    "n, n_participants, estimate, why",
    [(4, 1, 0.5, "one pilot participant"), (3, 3, 0.5, "answered it once"),
     (24, 6, 1.0, "agree = 1"), (24, 6, 0.0, "agree = 0")],
)  # fmt: skip
def test_it_says_why_an_instruments_icc_cannot_be_estimated(n, n_participants, estimate, why):
    inputs = pd.DataFrame(
        [{"term": "drums", "estimate": estimate, "icc": np.nan, "trials_per_participant": 1.0,
          "seconds_per_trial": 3.0, "n": n, "n_participants": n_participants}]
    )  # fmt: skip
    (text,) = [t for t in power.planning_notes(inputs) if "ICC" in t]
    assert "drums" in text and why in text and "ICC 0" in text


def _split_votes(votes: dict[str, list[int]], n_raters: int = 8) -> pd.DataFrame:
    """One trial per entry of votes[instrument], rated by n_raters participants of whom that many
    choose candidate a, the model's choice."""
    return pd.DataFrame(
        [
            {
                "participant": f"p{p}",
                "trial": f"{inst}{t}",
                "instrument": inst,
                "chosen": "a" if p < k else "b",
                "model_choice": "a",
            }
            for inst, ks in votes.items()
            for t, k in enumerate(ks)
            for p in range(n_raters)
        ]
    )


def test_it_warns_where_the_model_scores_above_the_noise_ceiling():
    # A 4-4 split scores 0 against the leave-one-out majority, so the drums ceiling (0.31) is
    # below the model's agreement (0.56); guitar's 6-2 splits give a ceiling equal to the model's.
    report = build_report(_split_votes({"drums": [5, 4] * 4, "guitar": [6, 2] * 4}), FAST)
    ceiling = report.tables["noise_ceiling"].set_index("term")
    assert ceiling.loc["drums", "relative"] > 1 >= ceiling.loc["guitar", "relative"]
    texts = [m["text"] for m in report.messages if m["part"] == "agreement"]
    (text,) = [t for t in texts if "relative" in t and "lower bound" in t]
    assert "drums" in text and "guitar" not in text
    assert "does not mean the model beats people" in text


def test_it_names_an_instrument_without_scored_answers():
    answers = _agreeing({"drums": [3, 1, 2], "guitar": [1, 2, 4], "bass": [2, 2, 3]})
    plain = build_report(answers, FAST)
    assert not any("no scored answers" in m["text"] for m in plain.messages)
    answers.loc[answers["instrument"] == "guitar", "model_choice"] = None
    report = build_report(answers, FAST)
    assert set(report.tables["consent"]["term"]) == {"drums", "bass", "overall"}
    (text,) = [m["text"] for m in report.messages if "no scored answers" in m["text"]]
    assert text.startswith("guitar ") and "model_choice" in text
    assert "drums" not in text and "bass" not in text


def test_it_names_a_study_instrument_without_answers():
    answers = _agreeing({"drums": [3, 1, 2], "bass": [2, 2, 3]})
    plain = build_report(answers, FAST)
    planned = ReportConfig(
        n_boot=50, mixed_model=False, planned_instruments=("drums", "bass", "piano")
    )
    report = build_report(answers, planned)
    (new,) = [m for m in report.messages if m not in plain.messages]
    assert new["level"] == "warning" and new["text"].startswith("piano has no answers")
    assert "drums" not in new["text"] and "bass" not in new["text"]
    assert report.meta["instruments_without_answers"] == ["piano"]
    assert set(report.tables["consent"]["term"]) == {"drums", "bass", "overall"}  # no estimate
    # Practice answers alone are no answers to analyse: piano is still named.
    practice = answers.assign(is_practice="false")
    practice = pd.concat(
        [practice, practice.iloc[:2].assign(instrument="piano", is_practice="true")]
    )
    report = build_report(practice, planned)
    assert report.meta["instruments_without_answers"] == ["piano"]


def test_it_refuses_a_planned_instrument_it_does_not_know():
    with pytest.raises(ValueError, match=r"planned_instruments.*kazoo.*expected.*drums"):
        ReportConfig.from_dict({"planned_instruments": ["drums", "kazoo"]})
    config = ReportConfig.from_dict({"planned_instruments": ["drums", "piano"]})
    assert config.planned_instruments == ("drums", "piano")


def test_it_says_how_many_answers_the_fatigue_table_leaves_out():
    answers = _minimal_csv()
    answers["trial_index"] = answers["trial"].str[1:].astype(float)
    answers.loc[answers["participant"].isin(["p2", "p3"]), "trial_index"] = np.nan
    report = build_report(answers, FAST)
    assert report.tables["fatigue"]["n"].sum() == 48
    (text,) = [m["text"] for m in report.messages if "fatigue" in m["text"]]
    assert "48 answers" in text and "trial_index" in text
