"""A simulated study with known truth: careless participants are excluded by the catch rules,
each instrument's consent is recovered within its crossed random-effects interval, and the mixed
models recover the direction and rough size of the effects."""

from __future__ import annotations

import numpy as np
import pytest

from evalsite.reports.analysis import ReportConfig, build_report
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers

SPEC = SimulationSpec(
    consent={"drums": 0.8, "bass": 0.6, "piano": 0.65, "guitar": 0.75, "others": 0.5},
    n_participants=36,
    trials_per_instrument=16,
    n_identical_catch=8,
    n_repeat_catch=4,
    careless_share=1 / 6,
    seed=11,
)


@pytest.fixture(scope="module")
def simulated():
    answers, truth = simulate_answers(SPEC)
    report = build_report(answers, ReportConfig(n_boot=400, seed=5, bayes_max_answers=4000))
    return answers, truth, report


def test_it_runs_every_part_without_an_error(simulated):
    _, _, report = simulated
    assert report.ok, report.messages
    for name in (
        "consent",
        "participant_consent",
        "bootstrap",
        "crossed",
        "mixed",
        "mixed_laplace",
        "gee",
        "reliability",
        "noise_ceiling",
        "position_bias",
        "fatigue",
        "psychometric",
        "catch",
        "test_retest",
        "power_plan",
    ):
        assert not report.tables[name].empty, name


def test_it_excludes_every_careless_participant_and_few_others(simulated):
    _, truth, report = simulated
    excluded = set(report.tables["exclusions"]["participant"])
    assert set(truth["careless"]) <= excluded
    assert len(excluded - set(truth["careless"])) <= 2  # chance failures among 30 attentive


def test_it_never_uses_agreement_with_the_model_to_exclude(simulated):
    answers, _, report = simulated
    flipped = answers.assign(model_choice=answers["model_choice"].map({"a": "b", "b": "a"}))
    other = build_report(flipped, ReportConfig(n_boot=10, mixed_model=False))
    assert other.tables["exclusions"].equals(report.tables["exclusions"])


def test_it_recovers_each_instruments_consent_within_its_interval(simulated):
    _, truth, report = simulated
    crossed = report.tables["crossed"].set_index("term")
    consent = report.tables["consent"].set_index("term")
    for instrument, p in truth["consent"].items():
        low, high = crossed.loc[instrument, ["ci_low", "ci_high"]]
        assert low <= p <= high, instrument
        assert consent.loc[instrument, "estimate"] == pytest.approx(p, abs=0.08), instrument


def test_it_recovers_the_mixed_model_effects(simulated):
    _, truth, report = simulated
    a = truth["intercepts"]
    for name in ("mixed", "mixed_laplace"):
        fixed = report.tables[name].set_index("term")["estimate"]
        # Differences between instruments are free of the position term: compare those. The
        # simulated position lapse mixes in answers that ignore the sound, which attenuates
        # log-odds differences (about x0.8 here): "rough size" allows for that.
        for inst in ("drums", "bass", "piano", "guitar"):
            true_diff, diff = a[inst] - a["others"], fixed[inst] - fixed["others"]
            assert 0.6 * true_diff - 0.3 <= diff <= 1.3 * true_diff + 0.3, (name, inst, diff)
        order = fixed[list(a)].sort_values().index
        assert order[0] == "others" and order[-1] == "drums", name
        assert 0.3 < fixed["model_margin"] < 2.5, name  # true slope 1.0
        assert fixed["model_shown_first"] > 0, name  # the position lapse favours position A
        sds = report.tables[name].set_index("term")["estimate"]
        assert 0.1 < sds["sd(trial)"] < 1.0, name  # true 0.5


def test_it_agrees_between_the_bayesian_and_laplace_fits(simulated):
    _, _, report = simulated
    bayes = report.tables["mixed"].set_index("term")["estimate"]
    laplace = report.tables["mixed_laplace"].set_index("term")["estimate"]
    common = [t for t in bayes.index if not t.startswith("sd(")]
    assert np.abs(bayes[common] - laplace[common]).max() < 0.15


def test_it_detects_the_position_bias(simulated):
    _, _, report = simulated
    overall = report.tables["position_bias"].set_index("term").loc["overall"]
    assert overall["estimate"] > 0.5 and overall["ci_low"] > 0.5
