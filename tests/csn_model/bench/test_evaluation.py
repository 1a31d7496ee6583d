"""Statistics of the benchmark, each pinned to an independent source (named in a comment)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from csn_model.evaluation import (
    bootstrap_accuracy,
    compare_to_reference,
    holm,
    mcnemar_exact,
    triplet_correct,
)


def _paired(b: int, c: int, both: int = 5, neither: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * b + [0] * c + [1] * both + [0] * neither)
    o = np.array([0] * b + [1] * c + [1] * both + [0] * neither)
    return a, o


@pytest.mark.parametrize("b,c", [(10, 3), (0, 6), (25, 25), (1, 40), (0, 0)])
def test_it_matches_statsmodels_exact_mcnemar(b, c):
    # Independent source: statsmodels.stats.contingency_tables.mcnemar(exact=True).
    a, o = _paired(b, c)
    ours = mcnemar_exact(a, o)
    table = [[5, b], [c, 2]]
    ref = mcnemar(table, exact=True)
    assert ours["b"] == b and ours["c"] == c
    assert ours["stat"] == pytest.approx(ref.statistic)
    assert ours["p_val"] == pytest.approx(ref.pvalue, rel=1e-12)


def test_it_matches_scipy_binomtest_on_a_textbook_case():
    # 10 vs 3 discordant pairs: two-sided exact binomial p = 0.0923 (scipy.stats.binomtest;
    # Agresti, Categorical Data Analysis, sec. 11.1: McNemar exact = binomial on discordants).
    a, o = _paired(10, 3)
    ours = mcnemar_exact(a, o)["p_val"]
    assert ours == pytest.approx(stats.binomtest(3, 13, 0.5).pvalue, rel=1e-12)
    assert ours == pytest.approx(0.09228515625, abs=1e-11)


def test_it_holm_adjusts_like_the_textbook_and_statsmodels():
    # Hand computation (Holm 1979 step-down): sorted 0.005, 0.01, 0.03, 0.04 ->
    # 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(1*0.04, 0.06)=0.06.
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 0.3, size=17)
    np.testing.assert_allclose(holm(q), multipletests(q, method="holm")[1], rtol=1e-12)


def test_it_bootstrap_ci_agrees_with_scipy_for_one_triplet_per_piece():
    # Independent source: scipy.stats.bootstrap (percentile) on the same 0/1 outcomes.
    rng = np.random.default_rng(0)
    correct = (rng.uniform(size=400) < 0.7).astype(int)
    df = pd.DataFrame({"condition": "bass", "piece": np.arange(400), "correct": correct})
    ours = bootstrap_accuracy(df, n_boot=4000, seed=1).set_index("term").loc["bass"]
    ref = stats.bootstrap(
        (correct,), np.mean, n_resamples=4000, method="percentile", random_state=2
    ).confidence_interval
    assert ours["estimate"] == pytest.approx(correct.mean())
    assert ours["ci_low"] == pytest.approx(ref.low, abs=0.01)
    assert ours["ci_high"] == pytest.approx(ref.high, abs=0.01)
    assert ours["n"] == 400


def test_it_resamples_pieces_not_triplets():
    # Ten identical outcomes per piece carry the information of one: the interval must not shrink.
    rng = np.random.default_rng(0)
    per_piece = (rng.uniform(size=100) < 0.6).astype(int)
    single = pd.DataFrame({"condition": "drums", "piece": np.arange(100), "correct": per_piece})
    repeated = single.loc[single.index.repeat(10)]
    w1 = bootstrap_accuracy(single, n_boot=3000, seed=0).iloc[0]
    w10 = bootstrap_accuracy(repeated, n_boot=3000, seed=0).iloc[0]
    assert w10["ci_high"] - w10["ci_low"] == pytest.approx(w1["ci_high"] - w1["ci_low"], rel=0.1)
    assert w10["n"] == 1000


def test_it_reports_the_macro_mean_over_conditions():
    df = pd.DataFrame(
        {
            "condition": ["drums"] * 4 + ["bass"] * 2,
            "piece": [0, 1, 2, 3, 0, 1],
            "correct": [1, 1, 1, 1, 0, 1],
        }
    )
    table = bootstrap_accuracy(df, n_boot=200).set_index("term")
    assert list(table.index) == ["drums", "bass", "mean"]
    assert table.loc["mean", "estimate"] == pytest.approx((1.0 + 0.5) / 2)


def test_it_counts_ties_as_wrong():
    a = np.zeros((3, 4))
    p = np.array([[0, 0, 0, 1.0], [0, 0, 0, 2.0], [0, 0, 0, 0]])
    n = np.array([[0, 0, 0, 2.0], [0, 0, 0, 1.0], [0, 0, 0, 0]])
    assert triplet_correct(a, p, n).tolist() == [1, 0, 0]


def test_it_compares_the_reference_with_every_other_system_holm_corrected():
    rng = np.random.default_rng(5)
    rows = []
    for system, acc in [("csn", 0.9), ("sep", 0.6), ("abl", 0.88)]:
        for i in range(200):
            cond = ("drums", "bass")[i % 2]
            rows.append(
                {
                    "system": system,
                    "kind": "pseudo",
                    "condition": cond,
                    "triplet": i,
                    "piece": i // 4,
                    "correct": int(rng.uniform() < acc),
                }
            )
    out = compare_to_reference(pd.DataFrame(rows), "csn")
    assert set(out["system"]) == {"sep", "abl"}
    assert set(out["term"]) == {"drums", "bass", "mean"}
    mean_rows = out[out["term"] == "mean"].set_index("system")
    assert mean_rows.loc["sep", "n"] == 200
    np.testing.assert_allclose(mean_rows["p_adj"], holm(mean_rows["p_val"]))
    assert mean_rows.loc["sep", "p_adj"] < 0.05


def test_it_holm_counts_an_undefined_p_in_the_family_as_p_1():
    # An undefined (NaN) p counts in the family size, the conservative reading: R's
    # p.adjust(c(0.01, NA, 0.04, 0.03), "holm", n = 4) = 0.04, NA, 0.09, 0.09 (its help: with n
    # above the observed count, the unobserved p are taken greater than all observed ones; by
    # hand: sorted 0.01, 0.03, 0.04 times 4, 3, 2 = 0.04, 0.09, 0.08, cumulative max). That is the
    # step-down with the NaN ordered last as p = 1, never rejected; its own adjusted p stays NaN.
    # So the defined p-values get what statsmodels' multipletests gives with NaN replaced by 1.
    p = [0.01, float("nan"), 0.04, 0.03]
    got = holm(p)
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2, 3]], [0.04, 0.09, 0.09], rtol=1e-12)
    # A family of two with one NaN: the other is doubled, as if both were defined.
    np.testing.assert_allclose(holm([float("nan"), 0.23]), [np.nan, 0.46], rtol=1e-12)
    rng = np.random.default_rng(4)
    q = rng.uniform(0, 0.3, size=9)
    q[[2, 5]] = np.nan
    defined = ~np.isnan(q)
    expected = multipletests(np.where(defined, q, 1.0), method="holm")[1]
    np.testing.assert_allclose(holm(q)[defined], expected[defined], rtol=1e-12)
    assert np.isnan(holm(q)[~defined]).all()
    assert np.isnan(holm([float("nan")])).all() and holm([]).size == 0
