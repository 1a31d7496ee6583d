"""Every interval the report gives for a proportion lies within [0, 1]. The intervals built as
estimate +- q * se (the `crossed` and `position_bias` tables, and the participant-level t
interval) are built on the logit scale by the delta method, se_logit = se / (p (1 - p)), and
mapped back; their z and t tests stay on the proportion scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from evalsite.reports.analysis import ReportConfig, build_report
from evalsite.reports.analysis.consent import participant_consent_table
from evalsite.reports.analysis.crossed import crossed_row
from evalsite.reports.analysis.diagnostics import position_bias
from evalsite.reports.analysis.proportions import logit_interval
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers

Q95 = float(stats.norm.ppf(0.975))
# 17 of 18 agreeing, 3 x 6: both random components truncated at 0, so t on N - 1 = 17 df.
NEAR_ONE = (0.6455, 0.9937)


def _grid(n_p: int, n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """Every participant answers every trial once: (participant, trial) codes."""
    return np.repeat(np.arange(n_p), n_t), np.tile(np.arange(n_t), n_p)


def test_it_keeps_the_crossed_interval_near_one_with_few_answers_within_zero_and_one():
    # The newcomer review's case: 3 participants x 6 trials, 17 of 18 agree. The Wald interval
    # was [0.836, 1.053]; for comparison, the Wilson interval of 17/18 treated as independent
    # answers is [0.742, 0.990] (statsmodels proportion_confint(17, 18, method="wilson")).
    p, t = _grid(3, 6)
    y = np.ones(18)
    y[0] = 0
    row, reason = crossed_row("drums", p, t, y, 0.95)
    assert reason is None
    assert 0.0 < row["ci_low"] < row["estimate"] < row["ci_high"] < 1.0
    se_logit = row["se"] / (row["estimate"] * (1 - row["estimate"]))
    q = stats.t.ppf(0.975, row["df"])  # the crossed table's t reference (test_crossed.py)
    expected = special.expit(special.logit(17 / 18) + np.array([-1, 1]) * q * se_logit)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(expected), rel=1e-12)
    # With the normal quantile (before the t reference) it was [0.6809, 0.9927].
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(NEAR_ONE, abs=5e-5)
    # The z test stays on the proportion scale: (0.944 - 0.5) / se.
    assert row["stat"] == pytest.approx((17 / 18 - 0.5) / row["se"], rel=1e-12)


def test_it_mirrors_the_interval_near_zero():
    # Relabelling agree/disagree maps the estimate p to 1 - p and the interval [l, h] to
    # [1 - h, 1 - l]: the logit interval treats both ends of [0, 1] alike.
    p, t = _grid(3, 6)
    y = np.ones(18)
    y[0] = 0
    high, _ = crossed_row("drums", p, t, y, 0.95)
    low, _ = crossed_row("drums", p, t, 1 - y, 0.95)
    assert 0.0 < low["ci_low"] < low["estimate"] < low["ci_high"] < 1.0
    assert (low["ci_low"], low["ci_high"]) == pytest.approx(
        (1 - high["ci_high"], 1 - high["ci_low"]), rel=1e-12
    )
    assert low["se"] == pytest.approx(high["se"], rel=1e-12)
    assert low["stat"] == pytest.approx(-high["stat"], rel=1e-12)
    assert low["p_val"] == pytest.approx(high["p_val"], rel=1e-12)


def test_it_moves_an_interior_interval_by_the_second_order_term_only():
    # Well inside (0, 1) the logit interval is the Wald one to first order: each end moves by
    # about (q se)^2 (1 - 2p) / (2 p (1 - p)) towards 0.5 (a Taylor expansion of expit), under
    # 0.01 here where q se = 0.06.
    rng = np.random.default_rng(5)
    p, t = _grid(20, 30)
    y = (rng.random(600) < 0.8).astype(float)
    row, reason = crossed_row("drums", p, t, y, 0.95)
    assert reason is None
    est, d = row["estimate"], stats.t.ppf(0.975, row["df"]) * row["se"]
    shift = d * d * (1 - 2 * est) / (2 * est * (1 - est))
    assert row["ci_low"] == pytest.approx(est - d + shift, abs=5e-4)
    assert row["ci_high"] == pytest.approx(est + d + shift, abs=5e-4)
    assert abs(row["ci_low"] - (est - d)) < 0.01 and abs(row["ci_high"] - (est + d)) < 0.01
    assert row["p_val"] == pytest.approx(2 * stats.t.sf(abs(est - 0.5) / row["se"], row["df"]))


def test_it_leaves_the_interval_empty_where_the_logit_is_undefined():
    # The defined fallback: p in {0, 1} or se 0 (or NaN) gives no interval, never a point.
    for p, se in ((1.0, 0.1), (0.0, 0.1), (0.5, 0.0), (0.5, np.nan), (np.nan, 0.1)):
        low, high = logit_interval(p, se, Q95)
        assert np.isnan(low) and np.isnan(high)
    assert logit_interval(0.5, 0.1, Q95) == pytest.approx(
        (special.expit(-Q95 * 0.4), special.expit(Q95 * 0.4))
    )


def test_it_keeps_the_position_bias_interval_within_zero_and_one():
    p, t = _grid(3, 6)
    rows = pd.DataFrame(
        {
            "participant": p.astype(str),
            "trial": t.astype(str),
            "instrument": "drums",
            "is_catch": False,
            "chosen_position": ["B"] + ["A"] * 17,
        }
    )
    table, notes = position_bias(rows, 0.95)
    assert not notes
    for _, row in table.iterrows():
        assert 0.0 < row["ci_low"] < row["estimate"] < row["ci_high"] < 1.0


def test_it_keeps_the_participant_level_t_interval_within_zero_and_one():
    # Rates 1, 1, 0.8: mean 0.933, se 0.0667, t(2) 4.30, so the t interval was [0.65, 1.22].
    rows = pd.DataFrame(
        {
            "participant": np.repeat(["p1", "p2", "p3"], 5),
            "trial": np.tile([f"t{j}" for j in range(5)], 3),
            "instrument": "drums",
            "is_catch": False,
            "agree": [1.0] * 10 + [1.0, 1.0, 1.0, 1.0, 0.0],
        }
    )
    table = participant_consent_table(rows, 0.95).set_index("term")
    row = table.loc["drums"]
    assert 0.0 < row["ci_low"] < row["estimate"] < row["ci_high"] < 1.0
    q = stats.t.ppf(0.975, 2)
    se_logit = row["se"] / (row["estimate"] * (1 - row["estimate"]))
    expected = special.expit(special.logit(row["estimate"]) + np.array([-1, 1]) * q * se_logit)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(expected), rel=1e-12)
    assert row["stat"] == pytest.approx((row["estimate"] - 0.5) / row["se"], rel=1e-12)


def test_it_keeps_every_proportion_interval_of_a_small_report_within_zero_and_one():
    # A small, lopsided study (consent near 1, few participants), every table that gives an
    # interval for a proportion; log-odds tables (mixed, gee, contrasts), the kappa/alpha
    # reliability and the noise ceiling's ratio `relative` are not proportions.
    spec = SimulationSpec(
        n_participants=4,
        trials_per_instrument=5,
        careless_share=0.0,
        position_lapse=0.0,
        consent={"drums": 0.95, "bass": 0.9, "piano": 0.9, "guitar": 0.9, "others": 0.9},
        seed=0,
    )
    report = build_report(
        simulate_answers(spec)[0], ReportConfig(n_boot=50, seed=1, mixed_model=False)
    )
    names = [
        "consent",
        "crossed",
        "participant_consent",
        "bootstrap",
        "mixed_probability",
        "position_bias",
        "fatigue",
        "psychometric",
        "psychometric_fit",
        "catch",
        "test_retest",
    ]
    checked = 0
    for name in names:
        table = report.tables.get(name)
        if table is None or table.empty:
            continue
        for low, high in (("ci_low", "ci_high"), ("cp_low", "cp_high")):
            if low in table:
                ends = table[[low, high]].to_numpy(float)
                ends = ends[~np.isnan(ends)]
                assert ((ends >= 0) & (ends <= 1)).all(), name
                checked += len(ends)
    noise = report.tables["noise_ceiling"]
    for col in ("ci_low", "ci_high", "model_ceiling_ci_low", "model_ceiling_ci_high"):
        ends = noise[col].to_numpy(float)
        assert ((ends[~np.isnan(ends)] >= 0) & (ends[~np.isnan(ends)] <= 1)).all(), col
    assert checked > 0
