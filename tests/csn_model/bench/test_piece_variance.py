"""Tests that allow for every piece a triplet touches (anchor and the pseudo mix's B, C, D).

Two triplets whose audio shares any piece may move together. multiway_piece_test sums the
products of every such pair, as the multiway cluster-robust variance of Cameron, Gelbach &
Miller (2011) does for pairs sharing a cluster in any dimension (here a piece may be the anchor
of one triplet and B of another, as in the dyadic-robust variance of Fafchamps & Gubert 2007).
crossed_piece_test estimates the variance of piece effects by moments (Henderson's method,
Searle, Casella & McCulloch 1992, ch. 5) and adds them up over the design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from csn_model.evaluation import accuracy_table, compare_to_reference, holm, paired_piece_test
from csn_model.piece_variance import (
    crossed_piece_test,
    multiway_piece_test,
    piece_effects_variance,
    reference_df,
)


def test_it_counts_every_pair_of_triplets_that_share_a_piece():
    # Hand computation. Differences x = (1, -1, 1, 0); triplet 0 touches pieces p, q, triplet 1
    # q, r, triplet 2 s, t, triplet 3 p, t. Pairs sharing a piece: (0,1) via q, (0,3) via p,
    # (2,3) via t. V = sum x_t^2 + 2 (x0 x1 + x0 x3 + x2 x3) = 3 + 2 (-1 + 0 + 0) = 1.
    # stat = 1, se = 1, df = pieces - 1 = 4; p from Student's t (scipy), two-sided.
    a = np.array([1, 0, 1, 1])
    b = np.array([0, 1, 0, 1])
    touched = [("p", "q"), ("q", "r"), ("s", "t"), ("p", "t")]
    out = multiway_piece_test(a, b, touched)
    assert out["stat"] == 1.0 and out["se"] == pytest.approx(1.0, abs=1e-15)
    assert out["n_pieces"] == 5
    assert out["p_val"] == pytest.approx(2 * stats.t.sf(1.0, 4), rel=1e-12)


def test_it_counts_a_pair_sharing_two_pieces_once():
    # Triplets 0 and 1 share both p and q: one pair, x0 x1 = 1 counted twice (2 x0 x1), not 4.
    # V = 1 + 1 + 2 = 4, stat = 2, se = 2, t = 1, df = 2 - 1.
    out = multiway_piece_test(np.array([1, 1]), np.array([0, 0]), [("p", "q"), ("q", "p")])
    assert out["se"] == pytest.approx(2.0, abs=1e-15)
    assert out["p_val"] == pytest.approx(2 * stats.t.sf(1.0, 1), rel=1e-12)


def test_it_uses_the_anchor_test_s_variance_when_triplets_touch_their_anchor_only():
    # Only the anchor: pairs share a piece iff they share the anchor, so V = sum over pieces of
    # the squared per-piece difference, the spread the sign-flip test's null distribution has.
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 2, 60), rng.integers(0, 2, 60)
    anchors = rng.integers(0, 9, 60)
    out = multiway_piece_test(a, b, [(p,) for p in anchors])
    d = np.bincount(anchors, weights=a - b)
    assert out["se"] ** 2 == pytest.approx(float((d**2).sum()), rel=1e-12)
    assert out["stat"] == paired_piece_test(a, b, anchors)["stat"]


def test_it_gives_one_when_no_triplet_differs():
    out = multiway_piece_test(np.ones(4), np.ones(4), [("p", "q")] * 4)
    assert out["p_val"] == 1.0 and out["se"] == 0.0


def test_it_refuses_outcomes_and_pieces_of_different_lengths():
    with pytest.raises(ValueError, match="3 triplets.*2 sets of pieces"):
        multiway_piece_test(np.ones(3), np.ones(3), [("p",), ("q",)])


# -- crossed_piece_test: variance components by moments ----------------------------------------
def test_it_is_the_one_way_anova_estimate_without_other_pieces():
    # Searle, Casella & McCulloch (1992), sec. 3.5, the balanced one-way ANOVA estimators, by
    # hand: three pieces x two triplets, x = (1, 0 | 1, 1 | 0, 0). Piece means .5, 1, 0, grand
    # mean .5: MSB = 2 (0 + .25 + .25) / 2 = 1/2, MSW = (.25 + .25) / 3 = 1/6, so
    # sigma2_piece = (MSB - MSW) / 2 = 1/6 and sigma2_triplet = 1/6. var(sum) = sigma2_piece
    # x (2^2 + 2^2 + 2^2) + sigma2_triplet x 6 = 2 + 1 = 3.
    x = np.array([1.0, 0, 1, 1, 0, 0])
    out = piece_effects_variance(x, np.array([0, 0, 1, 1, 2, 2]), np.zeros((6, 0), int))
    assert out["anchor"] == pytest.approx(1 / 6, rel=1e-12)
    assert out["triplet"] == pytest.approx(1 / 6, rel=1e-12)
    assert out["var"] == pytest.approx(3.0, rel=1e-12)


def _crossed_design(rng, pieces=12, n=90):
    a = rng.integers(0, pieces, n)  # (n,)
    others = (a[:, None] + rng.integers(1, pieces, (n, 3))) % pieces  # (n, 3), never the anchor
    return a, others


def test_it_estimates_each_variance_component_without_bias():
    # x = alpha_anchor + gamma_B + gamma_C + gamma_D + e on one fixed design: the raw moment
    # estimates average to the true components (sd .5, .3, e 1; corr(alpha, gamma) .5), and so
    # does var (to the true var(sum x) of the design), within Monte Carlo error.
    rng = np.random.default_rng(7)
    a, others = _crossed_design(rng)
    draws, truth = [], {"anchor": 0.25, "other": 0.09, "cross": 0.5 * 0.5 * 0.3, "triplet": 1.0}
    for _ in range(3000):
        z = rng.normal(size=(2, 12))  # (2, P)
        alpha, gamma = 0.5 * z[0], 0.3 * (0.5 * z[0] + np.sqrt(0.75) * z[1])  # (P,) each
        x = alpha[a] + gamma[others].sum(1) + rng.normal(size=a.size) + 3.0  # (n,)
        draws.append(piece_effects_variance(x, a, others, truncate=False))
    mean = {k: np.mean([d[k] for d in draws]) for k in (*truth, "var")}
    for k, v in truth.items():
        assert mean[k] == pytest.approx(v, abs=0.1 * truth["anchor"]), k
    counts_a = np.bincount(a, minlength=12)
    counts_o = np.bincount(others.ravel(), minlength=12)
    true_var = (
        truth["anchor"] * (counts_a**2).sum() + truth["other"] * (counts_o**2).sum()
        + 2 * truth["cross"] * (counts_a * counts_o).sum() + truth["triplet"] * a.size
    )  # fmt: skip
    # Monte Carlo se of the mean about 1.1 %; the triplet term alone is 8 % of true_var.
    assert mean["var"] == pytest.approx(true_var, rel=0.03)


def test_it_centres_within_groups_and_weights_the_sum():
    # Conditions as groups with their own means, and the macro mean's weights 1 / (C n_c):
    # shifting one group changes nothing, and over draws from the model the estimate averages
    # to the true var(sum w x) = w' cov w (Monte Carlo se about 1 %).
    rng = np.random.default_rng(9)
    a, others = _crossed_design(rng, n=120)
    groups = np.repeat([0, 1, 2], [30, 40, 50])  # (n,)
    w = 1 / (3 * np.bincount(groups)[groups])  # (n,)
    x = rng.normal(size=a.size)
    one = piece_effects_variance(x, a, others, groups=groups, weights=w)
    shifted = piece_effects_variance(x + 4.0 * (groups == 1), a, others, groups=groups, weights=w)
    assert shifted["var"] == pytest.approx(one["var"], rel=1e-9)
    draws = []
    for _ in range(3000):
        z = rng.normal(size=(2, 12))  # (2, P)
        alpha, gamma = 0.5 * z[0], 0.3 * z[1]  # (P,) each
        x = alpha[a] + gamma[others].sum(1) + rng.normal(size=a.size) + groups  # (n,)
        est = piece_effects_variance(x, a, others, groups=groups, weights=w, truncate=False)
        draws.append(est["var"])
    inc_a = np.zeros((a.size, 12))
    inc_a[np.arange(a.size), a] = 1
    inc_o = np.zeros((a.size, 12))
    np.add.at(inc_o, (np.repeat(np.arange(a.size), 3), others.ravel()), 1)
    true_var = 0.25 * ((w @ inc_a) ** 2).sum() + 0.09 * ((w @ inc_o) ** 2).sum() + (w**2).sum()
    assert np.mean(draws) == pytest.approx(true_var, rel=0.03)


def test_it_gives_the_t_test_of_the_sum_over_its_estimated_se():
    rng = np.random.default_rng(2)
    a, others = _crossed_design(rng)
    ref, oth = rng.integers(0, 2, a.size), rng.integers(0, 2, a.size)
    out = crossed_piece_test(ref, oth, a, others)
    var = piece_effects_variance((ref - oth).astype(float), a, others)["var"]
    assert out["stat"] == float((ref - oth).sum()) and out["se"] == pytest.approx(np.sqrt(var))
    # Its df: test_it_refers_the_test_to_t_with_the_satterthwaite_df_within_one_and_pieces_less_one


def test_it_codes_pieces_by_name_and_skips_missing_roles():
    # Names instead of codes, and a triplet with fewer other pieces (C lacking every other stem,
    # or a natural triplet: D only): the same as the coded call with -1 for the missing role.
    names = np.array([f"Track{i:05d}" for i in range(12)])
    rng = np.random.default_rng(3)
    a, others = _crossed_design(rng)
    others[::4, 2] = -1
    ref, oth = rng.integers(0, 2, a.size), rng.integers(0, 2, a.size)
    named = [tuple(names[o] for o in row if o >= 0) for row in others]
    by_name, by_code = (
        crossed_piece_test(ref, oth, names[a], named),
        crossed_piece_test(ref, oth, a, others),
    )
    assert by_name == pytest.approx(by_code, rel=1e-9)  # other codes: sums in another order


def test_it_gives_one_when_nothing_differs_and_nan_when_no_variance_shows():
    rng = np.random.default_rng(5)
    a, others = _crossed_design(rng)
    ones = np.ones(a.size, dtype=int)
    assert crossed_piece_test(ones, ones, a, others)["p_val"] == 1.0
    assert np.isnan(crossed_piece_test(ones, 0 * ones, a, others)["p_val"])  # every x the same


# -- in the benchmark's comparisons ------------------------------------------------------------
def _outcomes_with_others(seed: int) -> pd.DataFrame:
    """Three systems (csn the best) on one kind's 60 drums + 60 bass triplets of 12 pieces,
    with `others`."""
    rng = np.random.default_rng(seed)
    frames = []
    for cond in ("drums", "bass"):
        a, others = _crossed_design(rng, n=60)
        base = {"triplet": np.arange(60), "piece": [f"T{p}" for p in a]}
        base["others"] = ["|".join(f"T{o}" for o in row) for row in others]
        base["others"][0] = ""  # a triplet with no other piece (a natural one's D as anchor)
        for system, accuracy in (("csn", 0.8), ("x", 0.5), ("y", 0.65)):
            correct = (rng.uniform(size=60) < accuracy).astype(int)
            frames.append(
                pd.DataFrame(base).assign(
                    system=system, kind="pseudo", condition=cond, correct=correct
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_it_adds_the_crossed_test_next_to_the_sign_flip_test():
    outcomes = _outcomes_with_others(seed=8)
    comps = compare_to_reference(outcomes, "csn")
    plain = compare_to_reference(outcomes.drop(columns="others"), "csn")
    cols = list(comps.columns)
    assert cols[cols.index("p_adj") + 1 : cols.index("p_adj") + 5] == [
        "crossed_se", "crossed_df", "crossed_p_val", "crossed_p_adj",
    ]  # fmt: skip
    # The sign-flip test's output is as it was; without `others` (older runs) the new columns
    # are empty.
    same = [c for c in cols if not c.startswith("crossed_")]
    pd.testing.assert_frame_equal(comps[same], plain[same])
    assert plain[["crossed_se", "crossed_df", "crossed_p_val", "crossed_p_adj"]].isna().all().all()
    # Each row is crossed_piece_test on that term's triplets, Holm over the two other systems.
    drums = outcomes[outcomes.condition == "drums"]
    ref = drums[drums.system == "csn"]
    ps = []
    for other in ("x", "y"):
        oth = drums[drums.system == other]
        others = [tuple(o.split("|")) if o else () for o in ref["others"]]
        out = crossed_piece_test(ref["correct"], oth["correct"], ref["piece"], others)
        row = comps[(comps.term == "drums") & (comps.system == other)].iloc[0]
        assert row.crossed_p_val == pytest.approx(out["p_val"], rel=1e-12)
        assert row.crossed_se == pytest.approx(out["se"] / 60, rel=1e-12)  # accuracy units
        assert row.crossed_df == pytest.approx(out["df"], rel=1e-12)
        ps.append(out["p_val"])
    got = comps[comps.term == "drums"]["crossed_p_adj"].to_numpy()
    assert got == pytest.approx(holm(ps), rel=1e-12)  # holm: pinned in test_evaluation.py
    assert got.min() < 1  # a family where the adjustment shows


def test_it_adds_a_crossed_interval_next_to_the_bootstrap_one():
    outcomes = _outcomes_with_others(seed=8)
    acc = accuracy_table(outcomes, n_boot=50)
    plain = accuracy_table(outcomes.drop(columns="others"), n_boot=50)
    new = ["crossed_se", "crossed_df", "crossed_ci_low", "crossed_ci_high"]
    pd.testing.assert_frame_equal(acc.drop(columns=new), plain.drop(columns=new))
    assert plain[new].isna().all().all()  # runs made before `others`
    csn = outcomes[outcomes.system == "csn"]
    others = np.array([o.split("|") if o else ["", "", ""] for o in csn["others"]])
    codes = {p: i for i, p in enumerate(sorted(set(csn["piece"]) | set(others.ravel()) - {""}))}
    a = csn["piece"].map(codes).to_numpy()
    o = np.vectorize(lambda p: codes.get(p, -1))(others)  # (n, 3), -1 for the empty row
    y = csn["correct"].to_numpy(float)
    by = acc[acc.system == "csn"].set_index("term")
    drums = (csn["condition"] == "drums").to_numpy()
    est = piece_effects_variance(y[drums], a[drums], o[drums])
    se = np.sqrt(est["var"]) / drums.sum()
    df = reference_df(est["df"], 12)  # 12 pieces; Satterthwaite df
    t = stats.t.ppf(0.975, df)
    assert by.loc["drums", "crossed_se"] == pytest.approx(se, rel=1e-12)
    assert by.loc["drums", "crossed_df"] == pytest.approx(df, rel=1e-12)  # the interval's t df
    assert by.loc["drums", "crossed_ci_low"] == pytest.approx(y[drums].mean() - t * se)
    # The macro mean over the two conditions: groups = condition, weights 1 / (2 x 60).
    groups = csn["condition"].to_numpy()
    est = piece_effects_variance(y, a, o, groups=groups, weights=np.full(y.size, 1 / 120))
    var, df = est["var"], reference_df(est["df"], 12)
    t = stats.t.ppf(0.975, df)
    assert by.loc["mean", "crossed_se"] == pytest.approx(np.sqrt(var), rel=1e-12)
    assert by.loc["mean", "crossed_df"] == pytest.approx(df, rel=1e-12)
    assert by.loc["mean", "crossed_ci_high"] == pytest.approx(
        by.loc["mean", "estimate"] + t * np.sqrt(var)
    )


def test_it_matches_an_anchor_piece_to_the_same_name_among_the_others():
    # A piece read back as a number (pandas reads a name like 17 so) is the same piece as "17"
    # in `others`: the crossed statistics must not split it into two.
    outcomes = _outcomes_with_others(seed=8)
    numeric = outcomes.assign(
        piece=outcomes["piece"].str[1:].astype(int),
        others=outcomes["others"].str.replace("T", ""),
    )
    named = outcomes.assign(piece=outcomes["piece"].str[1:], others=numeric["others"])
    for table in (compare_to_reference, lambda o, _: accuracy_table(o, n_boot=20)):
        got, expected = table(numeric, "csn"), table(named, "csn")
        crossed = [c for c in got.columns if c.startswith("crossed_")]
        pd.testing.assert_frame_equal(got[crossed], expected[crossed])


def test_it_reads_piece_names_back_as_written(tmp_path):
    # Track names that look like numbers stay names (007 is not 7), in both columns.
    from csn_model.bench_stats import read_outcomes

    outcomes = _outcomes_with_others(seed=8)
    outcomes = outcomes.assign(
        piece="00" + outcomes["piece"].str[1:], others=outcomes["others"].str.replace("T", "00")
    )
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    back = read_outcomes(tmp_path)
    assert back["piece"].tolist() == outcomes["piece"].tolist()
    assert back["others"].fillna("").tolist() == outcomes["others"].tolist()


def _pseudo(cond: str, a: str, b: str, c: str, d: str):
    from csn_model import CONDITIONS
    from csn_model.data.triplets import MixSpec, Segment, Triplet

    k = CONDITIONS.index(cond)

    def mix(own: str, rest: str) -> MixSpec:
        return MixSpec(tuple(Segment(own if j == k else rest, 0) for j in range(len(CONDITIONS))))

    return Triplet(cond, mix(a, b), mix(a, c), mix(d, b), "pseudo")


def test_it_takes_the_other_pieces_of_an_older_run_from_its_triplet_file(tmp_path, capsys):
    # Runs made before `others`: bench_stats --triplets reads each triplet's other pieces from
    # the run's test_<kind>.json, checking that it is the file the outcomes were scored on.
    from csn_model.bench_stats import main
    from csn_model.data.triplets import save_triplets

    rng = np.random.default_rng(1)
    names = [f"T{i}" for i in range(8)]
    triplets = []
    for _ in range(40):
        a, b, c, d = rng.choice(names, 4, replace=False)
        triplets.append(_pseudo("drums", a, b, c, d))
    save_triplets(tmp_path / "test_pseudo.json", triplets, {"kind": "pseudo"})
    rows = [
        (system, "pseudo", "drums", i, t.anchor.part("drums").track, int(rng.uniform() < acc))
        for system, acc in (("csn", 0.8), ("x", 0.4))
        for i, t in enumerate(triplets)
    ]
    columns = ["system", "kind", "condition", "triplet", "piece", "correct"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "outcomes.csv", index=False)
    out = tmp_path / "c.csv"
    assert main([str(tmp_path), "--out", str(out)]) == 0
    assert pd.read_csv(out)["crossed_p_val"].isna().all()
    assert (
        main([str(tmp_path), "--out", str(out), "--triplets", str(tmp_path / "test_pseudo.json")])
        == 0
    )
    written = pd.read_csv(out)
    assert written["crossed_p_val"].notna().all()
    with_others = pd.read_csv(tmp_path / "outcomes.csv").assign(
        others=["|".join(t.other_pieces()) for t in triplets] * 2
    )
    expected = compare_to_reference(with_others, "csn")
    assert written["crossed_p_val"].to_numpy() == pytest.approx(expected["crossed_p_val"])
    # Another file (here: the triplets in another order) is refused, naming the first mismatch.
    save_triplets(tmp_path / "other.json", triplets[::-1], {"kind": "pseudo"})
    capsys.readouterr()
    assert main([str(tmp_path), "--triplets", str(tmp_path / "other.json")]) == 2
    assert "pseudo triplet 0" in capsys.readouterr().err


# -- the reference distribution: Satterthwaite df ----------------------------------------------
def _one_way(seed: int, pieces: int = 5, per_piece: int = 4):
    """Balanced one-way data (anchor pieces only) with a piece effect that shows: MSB > MSW."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(pieces), per_piece)  # (N,)
    x = rng.normal(0, 1.5, pieces)[a] + rng.normal(0, 1, a.size)  # (N,)
    means = np.bincount(a, weights=x) / per_piece
    msb = per_piece * ((means - x.mean()) ** 2).sum() / (pieces - 1)
    msw = ((x - means[a]) ** 2).sum() / (a.size - pieces)
    assert msb > msw  # no truncation: the closed forms below hold
    return x, a, np.zeros((a.size, 0), int), msb, msw


def test_it_gives_pieces_less_one_df_for_the_balanced_one_way_sum():
    # var(sum x) is estimated as N MSB, and MSB / E[MSB] ~ chi2(P - 1) / (P - 1) under
    # normality (Searle, Casella & McCulloch 1992, sec. 3.5), so its df is exactly P - 1.
    x, a, none, _, _ = _one_way(seed=11)
    out = piece_effects_variance(x, a, none)
    assert out["df"] == pytest.approx(5 - 1, rel=1e-9)


def test_it_gives_satterthwaite_s_df_for_a_mix_of_mean_squares():
    # Weight 1 on each piece's first triplet only: sum w'A^2 = P, w'w = P, so the estimate is
    # P s_anchor + P s_triplet = a MSB + b MSW with a = P / n, b = P (1 - 1 / n), MSB and MSW
    # independent chi2 / df with P - 1 and N - P df. Satterthwaite (1946, eq. 3):
    # df = (a MSB + b MSW)^2 / ((a MSB)^2 / (P - 1) + (b MSW)^2 / (N - P)).
    pieces, n = 5, 4
    x, a, none, msb, msw = _one_way(seed=11, pieces=pieces, per_piece=n)
    w = (np.arange(a.size) % n == 0).astype(float)
    out = piece_effects_variance(x, a, none, weights=w)
    big, small = pieces / n * msb, pieces * (1 - 1 / n) * msw
    assert out["var"] == pytest.approx(big + small, rel=1e-9)
    expected = (big + small) ** 2 / (big**2 / (pieces - 1) + small**2 / (a.size - pieces))
    assert out["df"] == pytest.approx(expected, rel=1e-9)


def _dense_df(x, a, others, groups, w, comps, kept=(True, True, True, True)) -> float:
    """The df by hand with dense (N, N) matrices: var_hat = sum_k c_k u'G_k u with c solving
    the moment equations, Q = sum_k c_k H G_k H; under normality var(x'Qx) = 2 tr((QV)^2) with
    V the fitted covariance; df = 2 var_hat^2 / var(var_hat)."""
    n, p = x.size, int(max(a.max(), others.max())) + 1
    big_a, big_o = np.zeros((n, p)), np.zeros((n, p))
    big_a[np.arange(n), a] = 1
    for t, row in enumerate(others):
        for o in row[row >= 0]:
            big_o[t, o] += 1
    same = groups[:, None] == groups[None, :]
    h = np.eye(n) - same / same.sum(axis=1)  # (N, N) centring within groups
    g = [big_a @ big_a.T, big_o @ big_o.T, big_a @ big_o.T + big_o @ big_a.T, np.eye(n)]
    m = np.array([[np.trace(h @ gk @ h @ gl) for gl in g] for gk in g])  # (4, 4)
    totals = np.array([w @ gl @ w for gl in g]) * kept  # var = totals . s; a component
    # truncated to 0 is constant near the estimate, so the estimate's form leaves it out
    c = np.linalg.solve(m.T, totals)  # var_hat = c . (x'H G_k H x)
    q = sum(ck * h @ gk @ h for ck, gk in zip(c, g))  # (N, N)
    v = sum(comps[k] * gk for k, gk in zip(("anchor", "other", "cross", "triplet"), g))
    var_hat = float(x @ q @ x)
    return 2 * var_hat**2 / (2 * np.trace(q @ v @ q @ v))


def test_it_matches_the_df_computed_by_hand_with_dense_matrices():
    # Unbalanced: pieces anchoring different numbers of triplets, one piece only in other
    # roles, a repeated other piece, a missing role, two groups with weights.
    rng = np.random.default_rng(4)
    a, others = _crossed_design(rng, pieces=7, n=40)
    others[3] = [5, 6, 5]
    others[::5, 2] = -1
    a[a == 6] = 0  # piece 6 only in other roles
    effects, gammas = rng.normal(0, 1, 7), rng.normal(0, 0.7, 7)
    x = effects[a] + np.where(others >= 0, gammas[others], 0).sum(1) + rng.normal(0, 1, 40)
    groups = np.arange(40) % 2
    w = np.where(groups == 0, 1.0, 0.5)
    out = piece_effects_variance(x, a, others, truncate=False, groups=groups, weights=w)
    assert out["var"] > 0
    assert out["df"] == pytest.approx(_dense_df(x, a, others, groups, w, out), rel=1e-9)


def test_it_refers_the_test_to_t_with_the_satterthwaite_df_within_one_and_pieces_less_one():
    rng = np.random.default_rng(2)
    a, others = _crossed_design(rng)
    ref, oth = rng.integers(0, 2, a.size), rng.integers(0, 2, a.size)
    out = crossed_piece_test(ref, oth, a, others)
    est = piece_effects_variance((ref - oth).astype(float), a, others)
    df = min(max(est["df"], 1.0), 12 - 1)
    assert out["df"] == pytest.approx(df, rel=1e-12)
    expected = 2 * stats.t.sf(abs(out["stat"]) / np.sqrt(est["var"]), df)
    assert out["p_val"] == pytest.approx(expected, rel=1e-12)
    # With large piece effects the estimate has fewer df than pieces less one.
    x = rng.normal(0, 3, 12)[a] + rng.normal(0, 3, 12)[others].sum(1) + rng.normal(0, 1, a.size)
    spread = crossed_piece_test(np.round(x), 0 * x, a, others)
    assert 1.0 <= spread["df"] < 12 - 1


def test_it_gives_no_crossed_figures_for_a_kind_whose_other_pieces_are_unknown(tmp_path):
    # --triplets with one kind's file only: the other kind's outcomes lack their other pieces,
    # and an anchor-only figure must not pass for the crossed test there.
    from csn_model.bench_stats import main
    from csn_model.data.triplets import save_triplets

    rng = np.random.default_rng(1)
    names = [f"T{i}" for i in range(8)]
    triplets = [_pseudo("drums", *rng.choice(names, 4, replace=False)) for _ in range(40)]
    save_triplets(tmp_path / "test_pseudo.json", triplets, {"kind": "pseudo"})
    rows = [
        (system, kind, "drums", i, t.anchor.part("drums").track, int(rng.uniform() < acc))
        for system, acc in (("csn", 0.8), ("x", 0.4))
        for kind in ("pseudo", "natural")
        for i, t in enumerate(triplets)
    ]
    columns = ["system", "kind", "condition", "triplet", "piece", "correct"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "outcomes.csv", index=False)
    out = tmp_path / "c.csv"
    argv = [str(tmp_path), "--out", str(out), "--triplets", str(tmp_path / "test_pseudo.json")]
    assert main(argv) == 0
    written = pd.read_csv(out)
    crossed = ["crossed_se", "crossed_df", "crossed_p_val", "crossed_p_adj"]
    assert written.loc[written.kind == "pseudo", crossed].notna().all().all()
    assert written.loc[written.kind == "natural", crossed].isna().all().all()
    # The same for the crossed intervals of accuracy.
    outcomes = pd.read_csv(tmp_path / "outcomes.csv").assign(others=None)
    outcomes.loc[outcomes.kind == "pseudo", "others"] = "T1|T2|T3"
    acc = accuracy_table(outcomes, n_boot=20)
    assert acc.loc[acc.kind == "natural", "crossed_se"].isna().all()
    assert acc.loc[acc.kind == "pseudo", "crossed_se"].notna().all()


def test_it_leaves_a_component_truncated_to_zero_out_of_the_df():
    # No anchor effect: its estimate comes out below 0, is set to 0 (and the cross term, capped
    # at sqrt(anchor other) = 0, with it). Near the estimate the truncated var is then
    # s_other w'OO'w + s_triplet w'w alone (delta method), whose form gives the df.
    rng = np.random.default_rng(0)
    a, others = _crossed_design(rng, pieces=7, n=40)
    x = rng.normal(0, 1, 7)[others].sum(1) + rng.normal(0, 1, 40)
    raw = piece_effects_variance(x, a, others, truncate=False)
    out = piece_effects_variance(x, a, others)
    assert raw["anchor"] < 0 < raw["other"] and out["anchor"] == out["cross"] == 0
    ones, groups = np.ones(40), np.zeros(40, int)
    kept = (False, True, False, True)
    assert out["df"] == pytest.approx(_dense_df(x, a, others, groups, ones, out, kept), rel=1e-9)


# -- degenerate cases: a crossed variance estimate of 0 ------------------------------------------
def _constant_difference_outcomes() -> pd.DataFrame:
    """csn right on every drums triplet, x wrong on every one (a constant difference of 1), y
    random; bass random for all: 12 pieces, 30 triplets per condition, with `others`."""
    rng = np.random.default_rng(11)
    frames = []
    for cond in ("drums", "bass"):
        a, others = _crossed_design(rng, n=30)
        base = {"triplet": np.arange(30), "piece": [f"T{p}" for p in a]}
        base["others"] = ["|".join(f"T{o}" for o in row) for row in others]
        for system in ("csn", "x", "y"):
            correct = rng.integers(0, 2, 30)
            if cond == "drums" and system != "y":
                correct = np.full(30, int(system == "csn"))
            frames.append(
                pd.DataFrame(base).assign(
                    system=system, kind="pseudo", condition=cond, correct=correct
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_it_counts_an_undefined_crossed_p_in_its_holm_family():
    # csn - x is 1 on every drums triplet: the centred differences are all 0, so the crossed
    # variance estimate is 0 and t = 1 / 0; p is undefined (NaN), not 0, which would claim more
    # than the exact sign-flip test's floor 2 / 2^pieces (whose p_val stays defined). The NaN
    # still counts in the family of the y comparison (as p = 1, the conservative choice), so
    # y's crossed_p_adj is Holm over two: min(1, 2 p), not its own p.
    comps = compare_to_reference(_constant_difference_outcomes(), "csn")
    drums = comps[comps.term == "drums"].set_index("system")
    assert drums.loc["x", "crossed_se"] == 0.0
    assert np.isnan(drums.loc["x", "crossed_p_val"]) and np.isnan(drums.loc["x", "crossed_p_adj"])
    assert np.isnan(drums.loc["x", "crossed_df"])  # Satterthwaite 0 / 0
    assert 0 < drums.loc["x", "p_val"] < 0.01  # the sign-flip test is defined
    p_y = drums.loc["y", "crossed_p_val"]
    assert p_y < 1 and drums.loc["y", "crossed_p_adj"] == pytest.approx(min(1.0, 2 * p_y))
    # Where both are defined (the mean), Holm doubles the smaller one as before.
    mean = comps[comps.term == "mean"].set_index("system")
    assert mean["crossed_p_adj"].min() == pytest.approx(2 * mean["crossed_p_val"].min())


# x = [1, 0, 0, 0] on 4 triplets, 6 pieces: one discordant triplet, so the differences vary, yet
# the raw moment estimates (anchor 0, other 0, cross -0.25) give var -3, and truncation (cross
# within +-sqrt(anchor other) = 0) leaves 0. Found by review rstat2 (/tmp/rs2_ex.py).
_TRUNCATED_ANCHORS = ["T4", "T1", "T5", "T3"]
_TRUNCATED_OTHERS = [["T5", "T0", "T5"], ["T2", "T2", "T4"], ["T2", "T3", "T2"], ["T0", "T4", "T4"]]


def test_it_says_a_crossed_p_is_undefined_where_truncation_leaves_no_variance():
    from csn_model.bench_report import crossed_undefined

    a, b = np.array([1, 0, 0, 0]), np.zeros(4, int)
    out = crossed_piece_test(a, b, _TRUNCATED_ANCHORS, _TRUNCATED_OTHERS)
    assert out["se"] == 0.0 and np.isnan(out["p_val"]) and np.isnan(out["df"])
    assert paired_piece_test(a, b, np.array(_TRUNCATED_ANCHORS))["p_val"] == 1.0
    reason = crossed_undefined({"crossed_se": 0.0, "crossed_p_val": out["p_val"]})
    assert "the crossed variance estimate is 0 (truncated)" in reason
    assert "read the sign-flip p_val" in reason
    assert "same nonzero value" not in reason  # not true of these differences


def _outcomes_of(condition, pieces, others, correct) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "system": "csn",
            "kind": "pseudo",
            "condition": condition,
            "triplet": np.arange(len(pieces)),
            "piece": pieces,
            "others": ["|".join(row) for row in others],
            "correct": correct,
        }
    )


def test_it_leaves_the_crossed_interval_undefined_where_its_variance_estimate_is_0():
    # se 0 says nothing about the accuracy's uncertainty (2 of 2 right does not make accuracy 1
    # certain), so the crossed interval is NaN there, as crossed_df is, not a point.
    from csn_model.bench_report import _crossed_block, crossed_undefined

    outcomes = _constant_difference_outcomes()
    acc = accuracy_table(outcomes, n_boot=50)
    csn = acc[(acc.system == "csn")].set_index("term")
    assert csn.loc["drums", "estimate"] == 1.0 and csn.loc["drums", "crossed_se"] == 0.0
    assert np.isnan(csn.loc["drums", ["crossed_df", "crossed_ci_low", "crossed_ci_high"]]).all()
    bass = csn.loc["bass"]
    assert bass.crossed_ci_low < bass.estimate < bass.crossed_ci_high  # defined as before
    json_block = _crossed_block(csn, ["drums", "bass"])
    assert json_block["crossed_ci95"]["drums"] == [None, None]  # results.json: null
    assert json_block["crossed_se"]["drums"] == 0.0
    reason = crossed_undefined(csn.loc["drums"].to_dict())
    assert "crossed variance estimate 0: interval undefined; see the bootstrap interval" in reason
    # Outcomes that vary, [1, 0, 0, 0] on the truncated design above: se 0 all the same.
    varied = _outcomes_of("drums", _TRUNCATED_ANCHORS, _TRUNCATED_OTHERS, [1, 0, 0, 0])
    row = accuracy_table(varied, n_boot=50).set_index("term").loc["drums"]
    assert row.estimate == 0.25 and row.crossed_se == 0.0
    assert np.isnan(row.crossed_ci_low) and np.isnan(row.crossed_ci_high)


def test_it_leaves_the_mean_crossed_interval_undefined_where_each_condition_is_constant():
    # csn right on both drums triplets, wrong on both bass ones: the mean centres each condition
    # on its own mean, so its crossed se is 0 though outcomes differ between conditions, while the
    # bootstrap over anchor pieces is no point: a resample without T2 has no bass triplet and
    # scores the mean 1, one of T2 alone 0 (review rstat2, finding 3).
    others = [["T2", "T3"], ["T3", "T2"], ["T0", "T1"], ["T1", "T3"]]
    drums = _outcomes_of("drums", ["T0", "T1"], others[:2], [1, 1])
    bass = _outcomes_of("bass", ["T2", "T2"], others[2:], [0, 0])
    mean = accuracy_table(pd.concat([drums, bass]), n_boot=500).set_index("term").loc["mean"]
    assert mean.estimate == 0.5 and mean.crossed_se == 0.0
    assert np.isnan(mean.crossed_ci_low) and np.isnan(mean.crossed_ci_high)
    assert mean.ci_low < mean.estimate < mean.ci_high  # the bootstrap interval


def test_it_says_why_a_crossed_statistic_is_undefined_in_the_summaries(tmp_path, capsys):
    # bench_stats prints the mean's crossed p_adj: with drums only and csn - x = 1 everywhere it
    # is undefined, and the summary says so and why instead of a bare nan.
    from csn_model.bench_report import render_markdown
    from csn_model.bench_stats import main

    outcomes = _constant_difference_outcomes()
    outcomes = outcomes[outcomes.condition == "drums"]
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    x_line = next(line for line in printed.splitlines() if line.strip().startswith("pseudo   x"))
    assert "crossed p_adj=undefined (df undefined)" in x_line and "nan" not in printed
    assert (
        "crossed p undefined: the crossed variance estimate is 0 (truncated), so the test is "
        "undefined; read the sign-flip p_val" in printed
    )
    assert "counted in its Holm family as p = 1" in printed
    # results.md lists the undefined crossed figures with their reasons.
    acc, comps = accuracy_table(outcomes, n_boot=20), compare_to_reference(outcomes, "csn")
    results = {"dataset": {"name": "mini", "root": "/d"}, "systems": {"csn": {}, "x": {}, "y": {}}}
    text = render_markdown(results | {"warnings": [], "reference": "csn"}, acc, comps)
    assert "## Crossed statistics left undefined" in text
    assert (
        "- accuracy csn, pseudo drums: crossed variance estimate 0: interval undefined; see the "
        "bootstrap interval" in text
    )
    assert "- comparison csn - x, pseudo mean: crossed p undefined" in text
    assert "comparison csn - y" not in text  # defined: not listed
    older = render_markdown(
        results | {"warnings": [], "reference": "csn"},
        accuracy_table(outcomes.drop(columns="others"), n_boot=20),
        compare_to_reference(outcomes.drop(columns="others"), "csn"),
    )
    assert "- pseudo: crossed statistics not computed: the outcomes lack" in older
