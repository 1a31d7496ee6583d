"""The `crossed` table: mean agreement with a standard error from moment estimates of crossed
(participant x trial) random-effects variance components, a t test against 0.5 (Satterthwaite
df) and Holm across instruments. Pinned against independent computations (textbook ANOVA mean
squares, brute-force pairwise differences), checked by simulation,
and never a zero-width interval."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from evalsite.reports.analysis import ReportConfig, build_report
from evalsite.reports.analysis.agreement import agreement_tables
from evalsite.reports.analysis.crossed import crossed_row, crossed_table
from evalsite.reports.analysis.proportions import binomial_test


def _answers(participant, trial, agree, instrument="drums") -> pd.DataFrame:
    """The scored answers crossed_table reads (non-catch, with a model choice)."""
    n = len(agree)
    return pd.DataFrame(
        {
            "participant": list(participant),
            "trial": list(trial),
            "instrument": [instrument] * n if isinstance(instrument, str) else list(instrument),
            "agree": np.asarray(agree, dtype=float),
            "is_catch": [False] * n,
        }
    )


def test_it_equals_the_two_way_anova_estimators_on_a_balanced_complete_design():
    # Searle, Casella & McCulloch (1992), "Variance Components", sec. 4.7 (two-way crossed
    # classification, no interaction, one observation per cell): E[MS_A] = s_e^2 + J s_a^2,
    # E[MS_B] = s_e^2 + I s_b^2, E[MS_E] = s_e^2, so the ANOVA estimators are
    # s_a^2 = (MS_A - MS_E) / J, s_b^2 = (MS_B - MS_E) / I, s_e^2 = MS_E. Computed here from the
    # mean squares, independently of the U statistics of the module.
    rng = np.random.default_rng(3)
    n_p, n_t = 7, 9
    y = 0.5 + rng.normal(0, 0.3, (n_p, 1)) + rng.normal(0, 0.2, (1, n_t))
    y = y + rng.normal(0, 0.25, (n_p, n_t))  # (I, J)
    grand = y.mean()
    ms_a = n_t * ((y.mean(axis=1) - grand) ** 2).sum() / (n_p - 1)
    ms_b = n_p * ((y.mean(axis=0) - grand) ** 2).sum() / (n_t - 1)
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
    ms_e = (resid**2).sum() / ((n_p - 1) * (n_t - 1))
    s_a, s_b, s_e = (ms_a - ms_e) / n_t, (ms_b - ms_e) / n_p, ms_e
    assert min(s_a, s_b, s_e) > 0  # nothing truncated: the raw estimators are compared

    p, t = np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij")
    row, reason = crossed_row("drums", p.ravel(), t.ravel(), y.ravel(), 0.95)
    assert reason is None
    assert row["var_participant"] == pytest.approx(s_a, rel=1e-10)
    assert row["var_trial"] == pytest.approx(s_b, rel=1e-10)
    assert row["var_answer"] == pytest.approx(s_e, rel=1e-10)
    # Balanced: Var(mean) = s_a^2 / I + s_b^2 / J + s_e^2 / (I J).
    se = np.sqrt(s_a / n_p + s_b / n_t + s_e / (n_p * n_t))
    assert row["se"] == pytest.approx(se, rel=1e-10)
    z = (grand - 0.5) / se
    df = _satterthwaite(row)
    assert row["df"] == pytest.approx(df, rel=1e-10)
    assert row["stat"] == pytest.approx(z, rel=1e-10)
    assert row["p_val"] == pytest.approx(2 * stats.t.sf(abs(z), df), rel=1e-9)
    # The interval is built on the logit scale (test_bounded_intervals.py): delta-method se.
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(_logit_ends(grand, se, 0.975, df))


def _logit_ends(mean: float, se: float, quantile: float, df: float) -> tuple[float, float]:
    """expit(logit(mean) -+ q se / (mean (1 - mean))), q the t(df) quantile given."""
    half = stats.t.ppf(quantile, df) * se / (mean * (1 - mean))
    return (special.expit(special.logit(mean) - half), special.expit(special.logit(mean) + half))


def _brute_force_moments(p, t, y):
    """O(N^2) over ordered pairs of distinct answers: U_a sums (Y - Y')^2 / 2 over pairs of the
    same participant, U_b over pairs of the same trial, U_e over all pairs; each pair's expected
    (Y - Y')^2 / 2 under Y = mu + a_i + b_j + e is s_a^2 [i != i'] + s_b^2 [j != j'] + s_e^2."""
    u = np.zeros(3)
    coef = np.zeros((3, 3))  # rows U_a, U_b, U_e; columns s_a^2, s_b^2, s_e^2
    for x, z in itertools.permutations(range(len(y)), 2):
        half_sq = (y[x] - y[z]) ** 2 / 2
        expect = np.array([p[x] != p[z], t[x] != t[z], 1.0], dtype=float)
        for k, shares in enumerate((p[x] == p[z], t[x] == t[z], True)):
            if shares:
                u[k] += half_sq
                coef[k] += expect
    return u, coef


def test_it_matches_a_brute_force_pairwise_computation_on_an_unbalanced_design():
    rng = np.random.default_rng(8)
    n_p, n_t = 6, 8
    a, b = rng.normal(0, 0.4, n_p), rng.normal(0, 0.3, n_t)
    cells = [(i, j) for i in range(n_p) for j in range(n_t) if rng.random() < 0.6]
    cells.append(cells[0])  # one participant answered one trial twice
    p = np.array([c[0] for c in cells])
    t = np.array([c[1] for c in cells])
    y = 0.5 + a[p] + b[t] + rng.normal(0, 0.3, len(cells))
    u, coef = _brute_force_moments(p, t, y)
    s_a, s_b, s_e = np.linalg.solve(coef, u)
    assert min(s_a, s_b, s_e) > 0  # nothing truncated
    n = len(y)
    n_i, m_j = np.bincount(p), np.bincount(t)
    # Var(sum Y) = s_a^2 sum_i n_i^2 + s_b^2 sum_j m_j^2 + s_e^2 N (covariances of pairs).
    se = np.sqrt(s_a * (n_i**2).sum() + s_b * (m_j**2).sum() + s_e * n) / n

    row, reason = crossed_row("drums", [f"p{i}" for i in p], [f"t{j}" for j in t], y, 0.9)
    assert reason is None
    got = (row["var_participant"], row["var_trial"], row["var_answer"])
    assert got == pytest.approx((s_a, s_b, s_e), rel=1e-9)
    assert row["se"] == pytest.approx(se, rel=1e-9)
    assert row["n"] == n and row["n_participants"] == n_p and row["n_trials"] == n_t
    assert 1 <= row["df"] < n  # mean_square_df's approximation on unbalanced data
    ends = _logit_ends(y.mean(), se, 0.95, row["df"])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(ends)


def test_it_truncates_a_negative_component_at_zero():
    # Every participant answers like every other (no participant effect) and trials differ: the
    # raw participant-variance estimate is negative here, and is reported as 0.
    y = np.array([[1, 0, 1, 1, 0, 1], [1, 0, 1, 0, 0, 1], [1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 0, 0]])
    p, t = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    row, reason = crossed_row("drums", p.ravel(), t.ravel(), y.ravel(), 0.95)
    assert reason is None
    assert row["var_participant"] == 0.0
    assert row["var_trial"] > 0 and row["var_answer"] > 0


def _crossed_null(rng, n_p=40, n_t=50, keep=0.7):
    """Agreement at chance on average, with participant and trial random intercepts (logit)."""
    a, b = rng.normal(0, 0.6, n_p), rng.normal(0, 1.2, n_t)
    p, t = np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij")
    p, t = p.ravel(), t.ravel()
    answered = rng.random(len(p)) < keep  # unbalanced: each participant skips some trials
    p, t = p[answered], t[answered]
    y = (rng.random(len(p)) < special.expit(a[p] + b[t])).astype(float)
    return p, t, y


def test_it_gives_a_standard_error_near_the_spread_of_the_mean_and_a_nominal_false_positive_rate():
    rng = np.random.default_rng(2024)
    means, variances, crossed_p, binomial_p = [], [], [], []
    for _ in range(200):
        p, t, y = _crossed_null(rng)
        row, reason = crossed_row("drums", p, t, y, 0.95)
        assert reason is None
        means.append(row["estimate"])
        variances.append(row["se"] ** 2)
        crossed_p.append(row["p_val"])
        binomial_p.append(binomial_test(int(y.sum()), len(y)))
    empirical_sd = np.std(means, ddof=1)
    assert np.sqrt(np.mean(variances)) == pytest.approx(empirical_sd, rel=0.2)
    assert np.mean(np.array(crossed_p) < 0.05) < 0.10
    assert np.mean(np.array(binomial_p) < 0.05) > 0.30  # answers treated as independent


def test_it_adjusts_the_instruments_p_values_by_holm_and_leaves_overall_out():
    rng = np.random.default_rng(1)
    parts = []
    for inst, shift in (("drums", 1.0), ("bass", 0.0), ("guitar", 0.4)):
        p, t, y = _crossed_null(rng, n_p=20, n_t=15)
        if shift:  # agreement above chance, independent answers
            y = (rng.random(len(y)) < special.expit(shift)).astype(float)
        parts.append(_answers([f"p{i}" for i in p], [f"{inst}{j}" for j in t], y, inst))
    table, notes = crossed_table(pd.concat(parts, ignore_index=True), 0.95)
    assert notes == []
    assert list(table["term"]) == ["drums", "bass", "guitar", "overall"]
    inst = table.iloc[:3]
    # Holm (1979): the smallest of m p-values times m, the next times m - 1, made monotone.
    order = np.argsort(inst["p_val"].to_numpy())
    scaled = np.minimum(
        np.maximum.accumulate((3 - np.arange(3)) * inst["p_val"].to_numpy()[order]), 1
    )
    assert inst["p_adj"].to_numpy()[order] == pytest.approx(scaled)
    assert np.isnan(table.iloc[3]["p_adj"])
    assert table.iloc[3]["n"] == sum(len(x) for x in parts)


@pytest.mark.parametrize(
    ("participant", "trial", "agree", "reason"),
    [
        (["p0", "p0", "p1", "p1"], ["t0", "t1", "t0", "t1"], [1, 1, 1, 1], "all"),
        (["p0", "p0", "p0"], ["t0", "t1", "t2"], [1, 0, 1], "one participant"),
        (["p0", "p1", "p2"], ["t0", "t0", "t0"], [1, 0, 1], "one trial"),
        (["p0"], ["t0"], [1], "one participant"),
    ],
    ids=["all agree", "one participant", "one trial", "one answer"],
)
def test_it_leaves_the_interval_empty_with_a_warning_where_the_variance_is_not_estimable(
    participant, trial, agree, reason
):
    table, notes = crossed_table(_answers(participant, trial, agree), 0.95)
    row = table.set_index("term").loc["drums"]
    assert row["estimate"] == pytest.approx(np.mean(agree))
    for column in ("se", "ci_low", "ci_high", "stat", "p_val", "p_adj"):
        assert np.isnan(row[column]), column
    assert any("drums" in text and reason in text for text in notes), notes


def test_it_tests_the_other_instruments_when_one_has_a_single_answer():
    rng = np.random.default_rng(4)
    p, t, y = _crossed_null(rng, n_p=10, n_t=10)
    guitar = _answers([f"p{i}" for i in p], [f"g{j}" for j in t], y, "guitar")
    drums = _answers(["p0"], ["d0"], [1.0], "drums")
    table, notes = crossed_table(pd.concat([drums, guitar], ignore_index=True), 0.95)
    rows = table.set_index("term")
    assert np.isnan(rows.loc["drums", "ci_low"]) and np.isnan(rows.loc["drums", "p_adj"])
    assert rows.loc["guitar", "ci_low"] < rows.loc["guitar", "ci_high"]
    # drums' undefined p counts in the Holm family as p = 1: guitar is adjusted in a family of 2.
    assert rows.loc["guitar", "p_adj"] == pytest.approx(min(1.0, 2 * rows.loc["guitar", "p_val"]))
    assert len(notes) == 1 and "drums" in notes[0]


def test_it_counts_a_unanimous_instruments_undefined_p_in_the_holm_family():
    # The review's case (findings_rf F3): every drums answer agrees, so its crossed p is
    # undefined; it counts as p = 1, and bass and piano are adjusted in a family of 3, not 2.
    rng = np.random.default_rng(3)
    rows = [
        (f"p{p}", f"{inst}{t}", inst, float(rng.random() < rate) if rate < 1 else 1.0)
        for inst, rate in (("drums", 1.0), ("bass", 0.7), ("piano", 0.62))
        for p in range(12)
        for t in range(8)
    ]
    participant, trial, instrument, agree = zip(*rows)
    table, notes = crossed_table(_answers(participant, trial, agree, instrument), 0.95)
    got = table.set_index("term")
    assert np.isnan(got.loc["drums", "p_val"]) and np.isnan(got.loc["drums", "p_adj"])
    assert got.loc["bass", "p_val"] == pytest.approx(0.014842, abs=1e-6)
    # Holm over (piano, bass, drums as 1): 3 x piano's p, then 2 x bass's p (0.0297, not 0.0148).
    assert got.loc["piano", "p_adj"] == pytest.approx(3 * got.loc["piano", "p_val"], rel=1e-12)
    assert got.loc["bass", "p_adj"] == pytest.approx(2 * got.loc["bass", "p_val"], rel=1e-12)
    assert np.isnan(got.loc["overall", "p_adj"])
    (note,) = notes  # the undefined p is reported with its reason
    assert "drums" in note and "all 96 answers are equal" in note
    # and with the family it counts in, so p_adj can be recomputed from the table (review r2 F4)
    assert "its p counts as 1 in the Holm family of the 3 instruments" in note, note


def test_it_puts_the_crossed_table_in_the_report_with_null_not_a_zero_width_interval():
    answers = _answers(
        ["p0", "p0", "p1", "p1", "p0", "p0", "p1", "p1"],
        ["d0", "d1", "d0", "d1", "g0", "g1", "g0", "g1"],
        [1, 1, 1, 1, 1, 0, 0, 1],
        ["drums"] * 4 + ["guitar"] * 4,
    )
    answers["chosen"] = "a"
    answers["model_choice"] = np.where(answers["agree"] == 1, "a", "b")
    answers = answers.drop(columns=["agree"])
    report = build_report(answers, ReportConfig(n_boot=20, mixed_model=False))
    rows = {r["term"]: r for r in report.to_dict()["tables"]["crossed"]}
    assert rows["drums"]["estimate"] == 1.0
    assert rows["drums"]["ci_low"] is None and rows["drums"]["ci_high"] is None
    assert any(
        m["part"] == "crossed" and m["level"] == "warning" and "drums" in m["text"]
        for m in report.messages
    )
    boot = {r["term"]: r for r in report.to_dict()["tables"]["bootstrap"]}
    assert boot["drums"]["ci_low"] is None and boot["drums"]["ci_high"] is None


def test_it_leaves_the_noise_ceiling_interval_empty_when_every_replicate_is_identical():
    # Every rater of every trial chooses candidate a: each bootstrap replicate of the ceiling is
    # 1.0, and the interval is reported empty with a note, not as [1.0, 1.0].
    answers = pd.DataFrame(
        {
            "trial": [f"t{j}" for j in range(4) for _ in range(3)],
            "instrument": "drums",
            "chosen": "a",
            "model_choice": "a",
            "is_catch": False,
        }
    )
    rel, ceiling, notes = agreement_tables(answers, n_boot=50, seed=0)
    row = ceiling.set_index("term").loc["drums"]
    assert row["estimate"] == 1.0
    for column in ("se", "ci_low", "ci_high", "relative_ci_low", "relative_ci_high"):
        assert np.isnan(row[column]), column
    assert any("noise_ceiling" in text and "drums" in text for text in notes), notes


def _satterthwaite(row: dict) -> float:
    """Satterthwaite (1946, Biometrics Bulletin 2(6)) df of the balanced two-way design's
    Var(mean) = (MS_A + MS_B - MS_E) / (I J) (Searle, Casella & McCulloch 1992 sec. 4.7), from the
    mean squares E[MS_A] = s_e^2 + J s_a^2, E[MS_B] = s_e^2 + I s_b^2, E[MS_E] = s_e^2 on I - 1,
    J - 1 and (I - 1)(J - 1) df, computed here from the row's components."""
    i, j = row["n_participants"], row["n_trials"]
    s_a, s_b, s_e = row["var_participant"], row["var_trial"], row["var_answer"]
    ms = np.array([s_e + j * s_a, s_e + i * s_b, -s_e]) / (i * j)
    dfs = np.array([i - 1, j - 1, (i - 1) * (j - 1)])
    return float(ms.sum() ** 2 / (ms**2 / dfs).sum())


def test_it_judges_the_mean_against_t_with_satterthwaite_df():
    # Trial variance dominates with 5 trials: the df sits near T - 1 = 4, far from a normal.
    rng = np.random.default_rng(12)
    p, t, y = _crossed_null(rng, n_p=30, n_t=5, keep=1.0)
    row, reason = crossed_row("drums", p, t, y, 0.95)
    assert reason is None
    df = _satterthwaite(row)
    assert row["df"] == pytest.approx(df, rel=1e-10)
    assert 4 <= row["df"] < 30
    assert row["p_val"] == pytest.approx(2 * stats.t.sf(abs(row["stat"]), df), rel=1e-9)
    half = stats.t.ppf(0.975, df) * row["se"] / (row["estimate"] * (1 - row["estimate"]))
    logit = special.logit(row["estimate"])
    assert row["ci_low"] == pytest.approx(special.expit(logit - half), rel=1e-9)
    assert row["ci_high"] == pytest.approx(special.expit(logit + half), rel=1e-9)


def test_it_holds_the_level_with_five_trials():
    # The review's worst case (30 participants x 5 trials, trial SD 1, participant SD 0.5):
    # 0.113 of the z tests rejected at 0.05 in 2,000 datasets. 300 seeded datasets here; the
    # figures for more come from `python -m evalsite.reports.analysis.calibration crossed`.
    rng = np.random.default_rng(7)
    rejected = 0
    for _ in range(300):
        a, b = rng.normal(0, 0.5, 30), rng.normal(0, 1.0, 5)
        prob = special.expit(a[:, None] + b[None, :])  # (P, T)
        y = (rng.random((30, 5)) < prob).astype(float)
        p, t = np.meshgrid(np.arange(30), np.arange(5), indexing="ij")
        row, _ = crossed_row("drums", p.ravel(), t.ravel(), y.ravel(), 0.95)
        rejected += row["p_val"] < 0.05
    assert rejected / 300 < 0.08, rejected  # binomial sd at 0.05 over 300: 0.013
