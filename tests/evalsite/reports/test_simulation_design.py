"""The simulation and the power plan take the main trials per participant the study's design
gives: a participant gets at most one main trial per instrument and reference
(evalsite/studies/design.py `most_main_trials`), fewer than the pool where references recur. The
caller computes the count (the analysis never imports Django) and the output says which it used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalsite.reports import services
from evalsite.reports.analysis import ReportConfig, build_report, power
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers
from evalsite.studies import design
from evalsite.studies.models import Trial

CONSENT = {"drums": 0.8, "guitar": 0.6}


def _main_per_participant(answers: pd.DataFrame) -> pd.Series:
    main = answers[~answers["is_catch"]]
    return main.groupby(["participant", "instrument"]).size()


def test_it_gives_each_participant_the_designs_main_trials_per_instrument():
    design = {"drums": 3, "guitar": 5}
    spec = SimulationSpec(consent=CONSENT, n_participants=6, trials_per_instrument=8,
                          main_trials_per_participant=design, seed=3)  # fmt: skip
    answers, truth = simulate_answers(spec)
    per = _main_per_participant(answers)
    for instrument, count in design.items():
        assert (per.xs(instrument, level="instrument") == count).all(), instrument
    assert truth["main_trials_per_participant"] == design


def test_it_says_it_used_the_whole_pool_without_a_design_count():
    spec = SimulationSpec(consent=CONSENT, n_participants=3, trials_per_instrument=4, seed=1)
    answers, truth = simulate_answers(spec)
    assert (_main_per_participant(answers) == 4).all()
    assert truth["main_trials_per_participant"] == {"drums": 4, "guitar": 4}


def test_it_keeps_the_total_within_trials_per_participant_as_well():
    spec = SimulationSpec(consent=CONSENT, n_participants=5, trials_per_instrument=8,
                          trials_per_participant=6, main_trials_per_participant={"drums": 2},
                          seed=2)  # fmt: skip
    answers, truth = simulate_answers(spec)
    per = _main_per_participant(answers)
    assert (per.groupby(level="participant").sum() == 6).all()
    assert (per.xs("drums", level="instrument") <= 2).all()
    assert truth["main_trials_per_participant"] == {"drums": 2, "guitar": 8}


@pytest.mark.parametrize(
    ("design", "expected"),
    [({"bass": 2}, "'bass'"), ({"drums": 0}, "drums: 0"), ({"drums": 2.5}, "drums: 2.5")],
)
def test_it_refuses_a_design_count_it_cannot_use(design, expected):
    spec = SimulationSpec(consent=CONSENT, main_trials_per_participant=design)
    with pytest.raises(ValueError, match="main_trials_per_participant") as err:
        simulate_answers(spec)
    assert expected in str(err.value)


def _inputs() -> pd.DataFrame:
    return pd.DataFrame(
        [{"term": t, "estimate": 0.7, "icc": 0.1, "trials_per_participant": 4.0,
          "seconds_per_trial": 5.0, "n": 40, "n_participants": 10} for t in CONSENT]
    )  # fmt: skip


def test_it_plans_at_the_designs_count_and_marks_what_the_design_cannot_give():
    plan = power.plan(_inputs(), (5, 10), design_trials={"drums": 6})
    drums = plan[plan["term"] == "drums"].set_index("trials_per_participant")
    assert list(drums.index) == [5, 6, 10]  # the design's count joins the grid
    assert list(drums["within_design"]) == [True, True, False]
    assert (drums["design_trials_per_participant"] == 6).all()
    # Kish: 1 + (6 - 1) * 0.1 = 1.5
    assert drums.loc[6, "design_effect"] == pytest.approx(1.5)
    guitar = plan[plan["term"] == "guitar"]
    assert list(guitar["trials_per_participant"]) == [5, 10]
    assert guitar["within_design"].all() and guitar["design_trials_per_participant"].isna().all()


def test_it_says_which_design_count_the_plan_used():
    notes = power.design_notes(_inputs(), {"drums": 6})
    (text,) = notes
    assert "drums" in text and "each participant 6 main trials" in text
    assert power.design_notes(_inputs(), {}) == []


def test_it_plans_as_before_without_a_design_count():
    plan = power.plan(_inputs(), (5, 10))
    assert list(plan["trials_per_participant"]) == [5, 10, 5, 10]
    assert plan["within_design"].all()
    assert np.isnan(plan["design_trials_per_participant"].astype(float)).all()


@pytest.mark.parametrize("raw", [{"drums": 0}, {"drums": "6"}, [6]])
def test_it_refuses_a_design_count_in_the_report_config(raw):
    with pytest.raises(ValueError, match="report config: design_main_trials"):
        ReportConfig.from_dict({"design_main_trials": raw})


def test_it_plans_the_report_at_the_design_count_it_is_given():
    spec = SimulationSpec(consent=CONSENT, n_participants=8, trials_per_instrument=6,
                          main_trials_per_participant={"drums": 4}, seed=5)  # fmt: skip
    config = ReportConfig(n_boot=50, mixed_model=False, design_main_trials={"drums": 4})
    report = build_report(simulate_answers(spec)[0], config)
    plan = report.tables["power_plan"]
    drums = plan[plan["term"] == "drums"]
    assert 4 in set(drums["trials_per_participant"])
    assert not drums[drums["trials_per_participant"] > 4]["within_design"].any()
    texts = [m["text"] for m in report.messages if m["part"] == "power"]
    assert any("drums" in t and "each participant 4 main trials" in t for t in texts), texts


@pytest.mark.django_db
def test_it_gives_the_report_the_studys_design_count(sim_study):
    # a second drums trial on one reference: a participant still gets 5 drums trials, not 6
    first = sim_study.trials.filter(instrument="drums", is_catch=False).first()
    Trial.objects.create(study=sim_study, instrument="drums", reference=first.reference,
                         candidate_a=first.candidate_b, candidate_b=first.candidate_a)  # fmt: skip
    assert design.most_main_trials(sim_study) == {"drums": 5, "guitar": 5}
    config, _ = services.report_config_for(sim_study)
    assert config.design_main_trials == {"drums": 5, "guitar": 5}
    report = services.compute(sim_study, services.answers_csv(sim_study))
    texts = [m["text"] for m in report.messages if m["part"] == "power"]
    assert any("drums" in t and "each participant 5 main trials" in t for t in texts), texts
