"""Every statistic pinned to an independent source, named in a comment next to each value."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from csn_model.multiple_testing import holm
from evalsite.reports.analysis.agreement import (
    counts_from_ratings,
    fleiss_kappa,
    krippendorff_alpha_nominal,
)
from evalsite.reports.analysis.consent import one_sample_t
from evalsite.reports.analysis.power import (
    design_effect,
    icc_oneway,
    listening_notes,
    n_for_half_width,
    n_for_power,
    plan,
)
from evalsite.reports.analysis.proportions import (
    binomial_test,
    clopper_pearson_interval,
    wilson_interval,
)

# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven
# methods", Stat. Med. 17:857-872, Table II: (k, n) -> Wilson (method 3), Clopper-Pearson (5).
NEWCOMBE = [
    ((81, 263), (0.2553, 0.3662), (0.2527, 0.3676)),
    ((15, 148), (0.0624, 0.1605), (0.0578, 0.1617)),
    ((0, 20), (0.0, 0.1611), (0.0, 0.1684)),
    ((1, 29), (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize(("kn", "wilson", "exact"), NEWCOMBE)
def test_it_matches_newcombes_published_intervals(kn, wilson, exact):
    assert wilson_interval(*kn) == pytest.approx(wilson, abs=1e-4)
    assert clopper_pearson_interval(*kn) == pytest.approx(exact, abs=1e-4)


@pytest.mark.parametrize(("k", "n"), [(7, 10), (535, 700), (0, 13), (13, 13), (1, 2)])
def test_it_matches_statsmodels_proportion_confint(k, n):
    # statsmodels.stats.proportion.proportion_confint: an independent implementation.
    assert wilson_interval(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"))
    assert clopper_pearson_interval(k, n) == pytest.approx(
        proportion_confint(k, n, method="beta"), abs=1e-12
    )


@pytest.mark.parametrize("n", [3, 4, 6, 7, 10, 12, 24])
@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.95])
def test_it_keeps_the_estimate_inside_the_wilson_interval_when_all_answers_agree(n, confidence):
    # In exact arithmetic the bound at k = n is 1 and at k = 0 is 0; in floating point it can
    # land a hair inside (0.9999999999999999 for 4 of 4 at 50%), below the estimate itself.
    for k in (0, n):
        low, high = wilson_interval(k, n, confidence)
        assert low <= k / n <= high
        assert (low, high) == pytest.approx(proportion_confint(k, n, 1 - confidence, "wilson"))


@pytest.mark.parametrize(("k", "n"), [(7, 10), (2, 10), (10, 10), (31, 50), (50, 100)])
def test_it_computes_the_exact_binomial_test_from_first_principles(k, n):
    # Two-sided exact test against 0.5: the sum of C(n, i) / 2^n over all outcomes i no likelier
    # than the observed k (the binomial is symmetric at 0.5).
    pk = math.comb(n, k)
    total = sum(math.comb(n, i) for i in range(n + 1) if math.comb(n, i) <= pk * (1 + 1e-12))
    assert binomial_test(k, n) == pytest.approx(min(1.0, total / 2**n), rel=1e-12)


def test_it_gives_the_textbook_value_for_7_of_10():
    # P = 2 * (C(10,7) + C(10,8) + C(10,9) + C(10,10)) / 1024 = 2 * 176 / 1024 = 0.34375.
    assert binomial_test(7, 10) == pytest.approx(0.34375, rel=1e-12)


def test_it_adjusts_p_values_by_holm():
    # Worked example: sorted p 0.005, 0.01, 0.03, 0.04 (m = 4) -> 4*0.005 = 0.02, 3*0.01 = 0.03,
    # 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06 (step-down monotonicity), in the input order.
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 0.2, 7)
    assert holm(q) == pytest.approx(multipletests(q, method="holm")[1])  # statsmodels


# R's p.adjust(p, "holm", n = length(p)) on vectors with NA (R's stats/R/p.adjust.R: the NA
# entries are dropped, the lp others sorted and multiplied by n, n - 1, ..., n - lp + 1, then
# cummax and pmin(1, .); the NA entries stay NA). Computed by hand from that code:
R_HOLM_WITH_NA = [
    # c(0.01, NA, 0.02): 3 * 0.01, 2 * 0.02
    ([0.01, np.nan, 0.02], [0.03, np.nan, 0.04]),
    # c(NA, 0.04, NA, 0.001, 0.03): 5 * 0.001, 4 * 0.03, max(0.12, 3 * 0.04)
    ([np.nan, 0.04, np.nan, 0.001, 0.03], [np.nan, 0.12, np.nan, 0.005, 0.12]),
    # c(0.3, NA, 0.5, 0.2): 4 * 0.2, 3 * 0.3, min(1, 2 * 0.5)
    ([0.3, np.nan, 0.5, 0.2], [0.9, np.nan, 1.0, 0.8]),
    # The review's crossed case, drums unanimous: c(NA, 0.015, 0.003): 3 * 0.003, 2 * 0.015
    ([np.nan, 0.015, 0.003], [np.nan, 0.03, 0.009]),
    ([np.nan, np.nan], [np.nan, np.nan]),
]


@pytest.mark.parametrize(("p", "expected"), R_HOLM_WITH_NA)
def test_it_counts_an_undefined_p_in_the_holm_family_as_r_does_with_n_all_tests(p, expected):
    got = holm(p)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert got[~np.isnan(got)] == pytest.approx(np.asarray(expected)[~np.isnan(got)], rel=1e-12)
    # statsmodels' multipletests with each undefined p replaced by 1 agrees on the defined ones.
    defined = ~np.isnan(p)
    if defined.any():
        reference = multipletests(np.where(defined, p, 1.0), method="holm")[1]
        assert got[defined] == pytest.approx(reference[defined], rel=1e-12)


def test_it_adjusts_the_report_and_the_benchmark_by_one_holm():
    # One rule for an undefined p across the project: the site's reports call the benchmark's
    # function, not a copy of it.
    from csn_model import evaluation
    from evalsite.reports.analysis import consent, crossed, diagnostics, mixed

    for module in (consent, crossed, diagnostics, mixed):
        assert module.holm is evaluation.holm, module.__name__


def test_it_computes_the_one_sample_t_test_in_closed_form():
    # Rates 0.6, 0.7, 0.8: mean 0.7, sd 0.1, se 0.1/sqrt(3), t = 0.2/se = 3.4641 on 2 df. The t
    # distribution with 2 df has F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t/sqrt(2 + t^2).
    row = one_sample_t(np.array([0.6, 0.7, 0.8]), "x", 0.5, 0.95)
    t = 0.2 / (0.1 / math.sqrt(3))
    assert row["stat"] == pytest.approx(t)
    assert row["df"] == 2
    assert row["p_val"] == pytest.approx(1 - t / math.sqrt(2 + t * t))
    # 95% t quantile on 2 df is 4.302653 (any t table); the interval is built on the logit scale
    # (delta method: se / (p (1 - p)), p = 0.7) and mapped back, so it stays within (0, 1).
    half = 4.302653 * (0.1 / math.sqrt(3)) / (0.7 * 0.3)
    logit = math.log(0.7 / 0.3)
    ends = (1 / (1 + math.exp(-(logit - half))), 1 / (1 + math.exp(-(logit + half))))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(ends, rel=1e-6)


# Fleiss (1971), "Measuring nominal scale agreement among many raters", Psychol. Bull. 76(5):
# 30 patients, 6 psychiatrists, 5 diagnoses; as R irr's `diagnoses` data (also copied in
# statsmodels' test_inter_rater.py). kappam.fleiss(diagnoses) = 0.4302445; Fleiss reports 0.430.
DIAGNOSES = np.array(
    [
        [4, 4, 4, 4, 4, 4],
        [2, 2, 2, 5, 5, 5],
        [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4],
        [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5],
        [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5],
        [1, 4, 4, 4, 4, 4],
        [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3],
        [1, 4, 4, 4, 4, 4],
        [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5],
        [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4],
        [2, 2, 4, 5, 5, 5],
        [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5],
        [2, 2, 2, 2, 2, 4],
        [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3],
        [5, 5, 5, 5, 5, 5],
    ]
)


def test_it_reproduces_fleiss_1971_kappa():
    assert fleiss_kappa(counts_from_ratings(DIAGNOSES)) == pytest.approx(0.4302445, abs=1e-7)
    assert round(float(fleiss_kappa(counts_from_ratings(DIAGNOSES))), 3) == 0.430


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the canonical example: 4
# coders x 12 units with missing values; nominal alpha = 0.743.
NAN = np.nan
RELIABILITY = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


def test_it_reproduces_krippendorffs_canonical_example():
    alpha = krippendorff_alpha_nominal(counts_from_ratings(RELIABILITY.T))
    assert round(float(alpha), 3) == 0.743
    import krippendorff  # the PyPI package by Castro: an independent implementation

    assert alpha == pytest.approx(
        krippendorff.alpha(reliability_data=RELIABILITY, level_of_measurement="nominal")
    )


def test_it_computes_icc1_as_shrout_and_fleiss():
    # Shrout & Fleiss (1979), "Intraclass correlations: uses in assessing rater reliability",
    # Table 2: 6 targets x 4 judges; ICC(1,1) = 0.17.
    ratings = np.array(
        [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    )
    groups = np.repeat(np.arange(6), 4)
    assert round(icc_oneway(ratings.ravel(), groups), 2) == 0.17


def test_it_plans_sample_sizes_from_textbook_formulas():
    # Cochran (1977): p = 0.5, half-width 0.05, 95% -> n = 1.959964^2 * 0.25 / 0.0025 = 384.15.
    assert n_for_half_width(0.5, 0.05) == pytest.approx(384.146, abs=1e-3)
    # Kish (1965) design effect 1 + (m - 1) * rho: m = 10, rho = 0.1 -> 1.9.
    assert design_effect(10, 0.1) == pytest.approx(1.9)
    # One-sample proportion test, p0 = 0.5 vs p = 0.6, alpha 0.05 two-sided, power 0.8:
    # n = ((1.959964 * 0.5 + 0.841621 * sqrt(0.24)) / 0.1)^2 = 193.8 (normal approximation).
    expected = ((1.959964 * 0.5 + 0.841621 * math.sqrt(0.24)) / 0.1) ** 2
    assert n_for_power(0.6) == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(193.85, abs=0.01)


def test_it_plans_a_pilot_where_every_answer_agrees_from_its_wilson_interval():
    # 24 of 24 drums answers agree (0 of 24 guitar): p(1 - p) = 0 would plan no answers. The plan
    # uses the end of the pilot's Wilson interval nearest 0.5: for k = n that is n / (n + z^2)
    # = 24 / 27.8415 = 0.862024 (statsmodels proportion_confint, method "wilson").
    low = proportion_confint(24, 24, alpha=0.05, method="wilson")[0]
    assert low == pytest.approx(24 / (24 + 1.959964**2), rel=1e-6)
    # Such a pilot (6 participants, 4 answers each, all alike) leaves the ICC unknown: planned
    # with ICC 0, design effect 1, as independent answers.
    icc = icc_oneway(np.ones(24), np.repeat(np.arange(6), 4))
    assert np.isnan(icc)
    pilot = {"icc": icc, "trials_per_participant": 4.0, "seconds_per_trial": 3.0, "n": 24,
             "n_participants": 6}  # fmt: skip
    inputs = pd.DataFrame(
        [
            {"term": "drums", "estimate": 1.0, **pilot},
            {"term": "guitar", "estimate": 0.0, **pilot},
            {"term": "piano", "estimate": 0.75, **pilot},
        ]
    )
    grid = (5, 10, 20, 40)
    table = plan(inputs, trials_grid=grid, half_width=0.05).set_index("term")
    # Cochran's n at that proportion: 1.959964^2 * 0.862024 * 0.137976 / 0.05^2 = 182.76.
    expected = 1.959964**2 * low * (1 - low) / 0.05**2
    assert expected == pytest.approx(182.76, abs=0.01)
    for term in ("drums", "guitar"):
        rows = table.loc[term]
        assert list(rows["planning_icc"]) == [0.0] * 4 and list(rows["design_effect"]) == [1] * 4
        assert rows["answers_for_width"].to_numpy() == pytest.approx([expected] * 4, rel=1e-6)
        assert list(rows["participants_for_width"]) == [37, 19, 10, 5]  # ceil(182.76 / m)
        # Power at alpha / 3: three instruments planned (Bonferroni for the Holm-adjusted tests).
        power_n = n_for_power(low, alpha=0.05 / 3)
        assert rows["answers_for_power"].to_numpy() == pytest.approx([power_n] * 4)
    assert table.loc["drums", "planning_p"].to_numpy() == pytest.approx([low] * 4, rel=1e-9)
    assert table.loc["guitar", "planning_p"].to_numpy() == pytest.approx([1 - low] * 4, rel=1e-9)
    # A pilot estimate strictly between 0 and 1 is planned with as it is.
    assert (table.loc["piano", "planning_p"] == 0.75).all()
    assert table.loc["piano", "answers_for_width"].to_numpy() == pytest.approx(
        [n_for_half_width(0.75, 0.05)] * 4
    )


def test_it_plans_power_at_the_bonferroni_level_of_the_instruments_holm_tests():
    # The report's tests are Holm-adjusted across instruments; Bonferroni's alpha / m is the
    # level Holm's first (smallest-p) step uses, so powering each test at it is the conservative
    # plan. 5 instruments at alpha 0.05: each at 0.01, where
    # n = ((2.575829 * 0.5 + 0.841621 * sqrt(0.24)) / 0.1)^2 = 289.08 for p = 0.6 (193.8 at 0.05).
    expected = ((2.575829 * 0.5 + 0.841621 * math.sqrt(0.24)) / 0.1) ** 2
    assert expected == pytest.approx(289.08, abs=0.01)
    pilot = {"estimate": 0.6, "icc": 0.0, "trials_per_participant": 10.0,
             "seconds_per_trial": 1.0, "n": 100, "n_participants": 10}  # fmt: skip
    inputs = pd.DataFrame([{"term": t, **pilot} for t in ("a", "b", "c", "d", "e")])
    table = plan(inputs, trials_grid=(10,), power=0.8, alpha=0.05)
    assert table["answers_for_power"].to_numpy() == pytest.approx([expected] * 5, rel=1e-5)
    assert (table["alpha_per_instrument"] == 0.01).all() and (table["alpha"] == 0.05).all()
    one = plan(inputs.iloc[:1], trials_grid=(10,), power=0.8, alpha=0.05)
    assert one["answers_for_power"].to_numpy() == pytest.approx([n_for_power(0.6)], rel=1e-9)


def test_it_counts_the_required_listening_in_the_minutes_per_participant():
    # The review's repro_minutes.py: answers about 1 s after the unlock, 3 instruments, 40 trials
    # each, 12 s of required listening per trial: 40 x 3 x (1 + 12) / 60 = 26 minutes (1.94
    # before, the listening left out).
    pilot = {"estimate": 0.6, "icc": 0.0, "trials_per_participant": 10.0,
             "seconds_per_trial": 1.0, "n": 100, "n_participants": 10}  # fmt: skip
    inputs = pd.DataFrame([{"term": t, **pilot} for t in ("drums", "bass", "piano")])
    listen = {"drums": 12.0, "bass": 12.0, "piano": 12.0}
    table = plan(inputs, trials_grid=(40,), listen_seconds=listen)
    assert table["minutes_per_participant"].to_numpy() == pytest.approx([26.0] * 3)
    assert (table["listen_seconds_per_trial"] == 12.0).all()
    # Unknown (the CSV command without the key): the time after the unlock only, said so.
    bare = plan(inputs, trials_grid=(40,))
    assert bare["minutes_per_participant"].to_numpy() == pytest.approx([2.0] * 3)
    assert bare["listen_seconds_per_trial"].isna().all()
    (note,) = listening_notes(inputs, {})
    assert "listening" in note and "response_ms" in note
    assert listening_notes(inputs, listen) == []
