"""Triplet accuracy and its statistics: bootstrap over pieces, paired sign-flip test over
pieces, Holm (and, descriptive only, an exact McNemar that counts triplets as independent).

Everything here is a pure function on arrays or tidy DataFrames (no torch, no files), so the
benchmark, the tests and any report can share it.

The per-triplet table that the benchmark builds ("outcomes") has one row per (system, triplet):
`system, kind, condition, triplet, piece, correct, tie, identical` where `correct` is 1 when the
masked distance anchor-positive is strictly smaller than anchor-negative (a tie counts as wrong: a
collapsed embedding must not score 50%), `tie` is 1 when the two distances are equal,
`identical` is 1 when anchor, positive and negative are the same vector (see triplet_outcomes;
runs made before these two columns have only the first six), and `piece` is the track whose
`condition` stem the anchor and the positive share (the unit the bootstrap resamples and the
paired test flips, because triplets of one piece are not independent). For these only this
anchor piece is the cluster: a pseudo triplet's other pieces (B, C, D) are drawn per triplet
from the whole test split, so clustering on them too would join every piece into one cluster.
What they share across anchors is allowed for by crossed_piece_test (csn_model.piece_variance,
random piece effects in every role), comparisons' crossed_* columns, from `others` (the pieces
of a triplet's other roles, "B|C|D"; absent from runs made before it).

Result tables use the project's column vocabulary
`term, estimate, se, ci_low, ci_high, stat, df, p_val, p_adj, n` plus identifying columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from csn_model import CONDITIONS
from csn_model.multiple_testing import holm  # the one Holm, shared with the site's reports
from csn_model.piece_variance import (
    code_roles,
    crossed_piece_test,
    piece_effects_variance,
    reference_df,
)

MEAN = "mean"  # the macro mean over the five conditions
OUTCOME_COLUMNS = ("system", "kind", "condition", "triplet", "piece", "correct")
TIE_COLUMNS = ("tie", "identical")  # absent from the outcomes.csv of runs made before them
# Per triplet, the pieces it uses besides the anchor piece, one per role ("B|C|D" in a pseudo
# triplet, "D" in a natural one); absent from the outcomes.csv of runs made before it.
OTHERS_COLUMN = "others"


class NonFiniteEmbedding(ValueError):
    """triplet_outcomes got a NaN or infinite embedding: see there."""


def triplet_outcomes(
    anchor: np.ndarray, positive: np.ndarray, negative: np.ndarray
) -> dict[str, np.ndarray]:
    """Per row: correct, tie and identical (int8, each (N,)). Inputs (N, d) already masked.

    correct: ||a - p|| < ||a - n|| strictly, so a tie counts as wrong (as in every run so far).
    tie: ||a - p|| == ||a - n|| exactly, the same two floats `correct` compares. The project's
    choice, not the paper's: no tolerance, so that every tie is a wrong answer and the share of
    ties is exactly the accuracy lost to them; a near-tie is scored by its sign like any other
    triplet, and a tolerance would call some right answers ties. A collapsed network gives
    bit-identical vectors (Result 1b: every distance 0), which exact equality catches.
    identical: a, p and n are the same vector, component for component (then both distances
    are 0): a system with this on every triplet embeds its inputs to one vector.
    A non-finite value (NaN, inf) in any row raises NonFiniteEmbedding, counting the rows: NaN
    distances compare false both ways, so such a triplet would read as wrong, not tied and not
    identical, and a broken system would score 0.000 with no warning. Refused rather than
    flagged (the project's choice): no accuracy of such a system means anything.
    """
    finite = np.isfinite(anchor).all(1) & np.isfinite(positive).all(1)  # (N,)
    finite &= np.isfinite(negative).all(1)
    if not finite.all():
        raise NonFiniteEmbedding(
            f"{int((~finite).sum())} of {finite.size} triplets have a non-finite embedding "
            "(NaN/inf)"
        )
    d_ap = np.linalg.norm(anchor - positive, axis=1)  # (N,)
    d_an = np.linalg.norm(anchor - negative, axis=1)  # (N,)
    same = np.all(anchor == positive, axis=1) & np.all(anchor == negative, axis=1)  # (N,)
    return {
        "correct": (d_ap < d_an).astype(np.int8),
        "tie": (d_ap == d_an).astype(np.int8),
        "identical": same.astype(np.int8),
    }


def triplet_correct(anchor: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """1 where ||a - p|| < ||a - n|| (strictly), per row. Inputs (N, d) already masked. -> (N,)"""
    return triplet_outcomes(anchor, positive, negative)["correct"]


# -- bootstrap over pieces ---------------------------------------------------------------------
def _piece_sums(outcomes: pd.DataFrame, conditions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per piece and condition: number correct and number of triplets. Each (P, C)."""
    grouped = outcomes.groupby(["piece", "condition"])["correct"].agg(["sum", "count"])
    hits = grouped["sum"].unstack("condition").reindex(columns=conditions).fillna(0.0)
    counts = grouped["count"].unstack("condition").reindex(columns=conditions).fillna(0.0)
    return hits.to_numpy(float), counts.to_numpy(float)


def bootstrap_accuracy(
    outcomes: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Accuracy per condition and their macro mean, with percentile CIs by resampling pieces.

    `outcomes`: rows of one system and one kind (columns condition, piece, correct).
    A resample draws as many pieces as there are, with replacement, and recomputes every
    condition's accuracy (pooled over the drawn pieces' triplets) and their mean; pieces are
    resampled once for all conditions so the mean's interval respects their dependence.
    Returns one row per term (the conditions present, then "mean") with
    term, estimate, se, ci_low, ci_high, n (n = number of triplets).
    """
    conditions = [c for c in CONDITIONS if c in set(outcomes["condition"])]
    if not conditions:
        raise ValueError("bootstrap_accuracy: no triplet outcomes to score")
    hits, counts = _piece_sums(outcomes, conditions)  # (P, C)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, hits.shape[0], size=(n_boot, hits.shape[0]))  # (B, P)
    # Sum over drawn pieces via counts of each piece per draw: (B, P) @ (P, C) -> (B, C).
    weights = np.zeros((n_boot, hits.shape[0]))
    np.add.at(weights, (np.arange(n_boot)[:, None], draws), 1.0)
    boot_hits, boot_counts = weights @ hits, weights @ counts  # (B, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_acc = boot_hits / boot_counts  # (B, C); NaN where a draw has no triplet of c
    boot_mean = np.nanmean(boot_acc, axis=1) if boot_acc.size else np.array([])  # (B,)
    point = hits.sum(0) / counts.sum(0)  # (C,)
    alpha = (1.0 - level) / 2.0
    rows = []
    for j, cond in enumerate(conditions):
        rows.append(_ci_row(cond, point[j], boot_acc[:, j], alpha, int(counts[:, j].sum())))
    rows.append(_ci_row(MEAN, float(point.mean()), boot_mean, alpha, int(counts.sum())))
    return pd.DataFrame(rows)


def _ci_row(term: str, estimate: float, boot: np.ndarray, alpha: float, n: int) -> dict:
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha]) if boot.size else (np.nan, np.nan)
    se = float(boot.std(ddof=1)) if boot.size > 1 else np.nan
    return {
        "term": term,
        "estimate": float(estimate),
        "se": se,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n": n,
    }


# -- paired tests ----------------------------------------------------------------------------
def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """Exact (binomial) McNemar test of two systems scored on the same items.

    b = items only A gets right, c = items only B gets right; under H0 b ~ Binomial(b + c, 1/2).
    Two-sided p = min(1, 2 * P(X <= min(b, c))), the convention of statsmodels'
    `mcnemar(exact=True)`. Returns stat (= min(b, c)), p_val, n_discordant, b, c.
    """
    a = np.asarray(a_correct, dtype=bool)
    b_arr = np.asarray(b_correct, dtype=bool)
    if a.shape != b_arr.shape:
        raise ValueError(
            f"mcnemar_exact: paired outcomes differ in shape {a.shape} vs {b_arr.shape}"
        )
    only_a = int(np.sum(a & ~b_arr))
    only_b = int(np.sum(~a & b_arr))
    n = only_a + only_b
    k = min(only_a, only_b)
    p = 1.0 if n == 0 else min(1.0, 2.0 * float(stats.binom.cdf(k, n, 0.5)))
    return {"stat": float(k), "p_val": p, "n_discordant": n, "b": only_a, "c": only_b}


def paired_piece_test(a_correct, b_correct, pieces) -> dict:
    """Exact paired sign-flip (randomisation) test of two systems over pieces, two-sided.

    Per piece i, d_i = (A's correct) - (B's correct) summed over its triplets; stat = sum d_i
    (= b - c of the McNemar table). Under H0 the two systems' outcomes are exchangeable within
    each piece, so each d_i's sign is a fair coin, independently across pieces; p = P(|sum of
    +-d_i| >= |stat|), computed exactly over all 2^P flips by convolution of the integer d_i (no
    Monte Carlo). Triplets of one piece move together, so the smallest p is 2 / 2^P however
    many triplets there are; with one triplet per piece it is the exact McNemar p.
    Returns stat, p_val, n_pieces (all pieces), n_pieces_differing (d_i != 0).
    """
    a = np.asarray(a_correct, dtype=np.int64)
    b = np.asarray(b_correct, dtype=np.int64)
    piece_ids = np.asarray(pieces)
    if not a.shape == b.shape == piece_ids.shape:
        raise ValueError(
            f"paired_piece_test: outcomes and pieces differ in shape "
            f"{a.shape}, {b.shape}, {piece_ids.shape}"
        )
    _, index = np.unique(piece_ids, return_inverse=True)
    d = np.bincount(index.reshape(-1), weights=a - b).astype(np.int64)  # (P,)
    stat = int(d.sum())
    steps = np.abs(d[d != 0])
    reach = int(steps.sum())
    dist = np.zeros(2 * reach + 1)  # P(sum = s) at index s + reach
    dist[reach] = 1.0
    for step in steps:
        dist = 0.5 * (np.roll(dist, step) + np.roll(dist, -step))  # no wrap: |sum| <= reach
    sums = np.arange(-reach, reach + 1)
    p = float(dist[np.abs(sums) >= abs(stat)].sum())
    return {
        "stat": float(stat),
        "p_val": min(1.0, p),
        "n_pieces": int(d.size),
        "n_pieces_differing": int(steps.size),
    }


COMPARISON_COLUMNS = [
    "kind",
    "term",
    "system",
    "reference",
    "estimate",
    "stat",
    "p_val",
    "p_adj",
    "crossed_se",
    "crossed_df",
    "crossed_p_val",
    "crossed_p_adj",
    "n",
    "n_pieces",
    "n_pieces_differing",
    "iid_mcnemar_p_val",
    "iid_mcnemar_p_adj",
    "n_discordant",
    "b",
    "c",
]


def compare_to_reference(outcomes: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Paired test of `reference` against every other system over pieces, Holm-adjusted.

    One family per (kind, term): the tests of the reference against each other system on the
    same triplets, so "is the proposed system better than X on drums" is corrected for the
    number of systems it is compared with. term "mean" pools all conditions' triplets, a piece
    keeping all of its triplets in one cluster. p_val / p_adj: paired_piece_test (the one to
    use). iid_mcnemar_p_val / _adj: exact McNemar counting triplets as independent, descriptive
    only (too small when pieces cluster). crossed_p_val / _adj: crossed_piece_test, which also
    allows for the other pieces a triplet uses (csn_model.piece_variance), crossed_se the se
    of estimate it implies and crossed_df its t reference's Satterthwaite df; NaN for a kind
    whose outcomes lack OTHERS_COLUMN (runs made before it) or hold it for only some rows
    (missing: NaN or None; "" is a triplet with no other piece). Where the crossed variance
    estimate is 0 (crossed_se 0, after truncation; not only for a constant difference)
    crossed_df is NaN (0 / 0), and crossed_p_val is 1 for a zero summed difference, NaN
    (undefined) otherwise; a NaN crossed_p_val gets a NaN crossed_p_adj and counts in the
    family the others are adjusted in as p = 1 (holm). bench_report.crossed_undefined says why
    in words.
    Returns COMPARISON_COLUMNS: estimate = accuracy difference reference - other, stat = b - c,
    n (triplets), n_discordant, b, c (McNemar).
    """
    rows = []
    for kind, part in outcomes.groupby("kind", sort=False):
        index = ["condition", "triplet", "piece"] + [OTHERS_COLUMN] * knows_others(part)
        wide = part.pivot_table(
            index=index,
            columns="system",
            values="correct",
            aggfunc="first",
        )
        if reference not in wide.columns:
            raise ValueError(f"compare_to_reference: reference system {reference!r} not scored")
        terms = [c for c in CONDITIONS if c in wide.index.get_level_values(0)] + [MEAN]
        others = [s for s in part["system"].unique() if s != reference]  # input order
        for term in terms:
            sub = wide if term == MEAN else wide.loc[[term]]
            family = [_compare(sub, reference, other) for other in others]
            for name in ("p_val", "crossed_p_val", "iid_mcnemar_p_val"):
                adjusted = holm([r[name] for r in family])
                for r, p_adj in zip(family, adjusted):
                    r[name.replace("p_val", "p_adj")] = float(p_adj)
            rows.extend({"kind": kind, "term": term, **r} for r in family)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _compare(sub: pd.DataFrame, reference: str, other: str) -> dict:
    pair = sub[[reference, other]].dropna()
    ref, oth = pair[reference].to_numpy(), pair[other].to_numpy()
    iid = mcnemar_exact(ref, oth)
    crossed = {"se": float("nan"), "df": float("nan"), "p_val": float("nan")}
    if OTHERS_COLUMN in pair.index.names and len(pair):
        others = split_others(pair.index.get_level_values(OTHERS_COLUMN))
        pieces = pair.index.get_level_values("piece").astype(str)  # names, as in others
        crossed = crossed_piece_test(ref, oth, pieces, others)
    return {
        "system": other,
        "reference": reference,
        "estimate": float(ref.mean() - oth.mean()) if len(pair) else float("nan"),
        "n": len(pair),
        **paired_piece_test(ref, oth, pair.index.get_level_values("piece").to_numpy()),
        "crossed_se": crossed["se"] / len(pair) if len(pair) else float("nan"),
        "crossed_df": crossed["df"],
        "crossed_p_val": crossed["p_val"],
        "iid_mcnemar_p_val": iid["p_val"],
        "n_discordant": iid["n_discordant"],
        "b": iid["b"],
        "c": iid["c"],
    }


CROSSED_ACCURACY_COLUMNS = ["crossed_se", "crossed_df", "crossed_ci_low", "crossed_ci_high"]


def crossed_accuracy(outcomes: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Intervals of accuracy per condition and of their macro mean that allow for random
    effects of every piece a triplet touches: estimate +- t(df) crossed_se, with
    crossed_se and df (Satterthwaite, reference_df) from piece_effects_variance (the macro
    mean: conditions centred on their own means, weights 1 / (C n_c)). `outcomes`: one system
    and kind, with OTHERS_COLUMN.
    Returns term, crossed_se, crossed_df (the t reference's df), crossed_ci_low,
    crossed_ci_high (conditions, then "mean"). Where the variance estimate is 0 (after
    truncation: every triplet of a term with the same outcome, the mean's conditions each
    constant, or a few triplets whose moment estimates truncate to 0), crossed_se is 0 and
    crossed_df and the interval are NaN (undefined): se 0 says nothing about the uncertainty
    (2 of 2 right does not make accuracy 1 certain); the bootstrap interval is the one to read."""
    conditions = [c for c in CONDITIONS if c in set(outcomes["condition"])]
    rows = []
    for term in [*conditions, MEAN]:
        part = outcomes if term == MEAN else outcomes[outcomes["condition"] == term]
        pieces = part["piece"].astype(str)  # names, as in OTHERS_COLUMN
        a_idx, o_idx, n_pieces = code_roles(pieces, split_others(part[OTHERS_COLUMN]))
        y, cond = part["correct"].to_numpy(float), part["condition"].to_numpy()
        n_c = pd.Series(cond).map(pd.Series(cond).value_counts()).to_numpy(float)  # (N,)
        w = 1.0 / (len(set(cond)) * n_c)  # (N,): the macro mean is sum w y
        est = piece_effects_variance(y, a_idx, o_idx, groups=cond, weights=w)
        df = reference_df(est["df"], n_pieces)
        se = float(np.sqrt(est["var"]))
        # se 0: the df is 0 / 0 and a zero-width interval would claim certainty: undefined.
        half = stats.t.ppf(0.5 + level / 2, df) if se > 0 else np.nan
        estimate = float(w @ y)
        rows.append((term, se, float(df), estimate - half * se, estimate + half * se))
    return pd.DataFrame(rows, columns=["term", *CROSSED_ACCURACY_COLUMNS])


def knows_others(outcomes: pd.DataFrame) -> bool:
    """Whether every row has OTHERS_COLUMN ("" for a triplet with no other piece; NaN or None:
    not known, e.g. a kind bench_stats --triplets was given no file for). Without it the
    crossed statistics are NaN, never an anchor-only figure."""
    return OTHERS_COLUMN in outcomes.columns and bool(outcomes[OTHERS_COLUMN].notna().all())


def split_others(others: pd.Series) -> list[tuple[str, ...]]:
    """OTHERS_COLUMN's "B|C|D" strings as tuples ("": none)."""
    return [tuple(o.split("|")) if isinstance(o, str) and o else () for o in others]


def accuracy_table(outcomes: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """bootstrap_accuracy for every (system, kind): tidy rows system, kind, term, estimate, ...;
    then crossed_se, crossed_df, crossed_ci_low, crossed_ci_high (crossed_accuracy; NaN where the
    outcomes lack OTHERS_COLUMN); with n_ties and n_identical per term (tie_table) where the
    outcomes have TIE_COLUMNS."""
    missing = set(OUTCOME_COLUMNS) - set(outcomes.columns)
    if missing:
        raise ValueError(f"accuracy_table: outcomes lack columns {sorted(missing)}")
    frames = []
    for (system, kind), part in outcomes.groupby(["system", "kind"], sort=False):
        table = bootstrap_accuracy(part, n_boot=n_boot, seed=seed)
        crossed = CROSSED_ACCURACY_COLUMNS
        if knows_others(part):
            table = table.merge(crossed_accuracy(part), on="term", how="left", validate="1:1")
        else:
            table = table.assign(**dict.fromkeys(crossed, np.nan))
        table = table[["term", "estimate", "se", "ci_low", "ci_high", *crossed, "n"]]
        table.insert(0, "kind", kind)
        table.insert(0, "system", system)
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    if not has_ties(outcomes):
        return table
    counts = tie_table(outcomes).drop(columns="n")
    return table.merge(counts, on=["system", "kind", "term"], how="left", validate="1:1")


def has_ties(outcomes: pd.DataFrame) -> bool:
    """Whether the outcomes record ties: both TIE_COLUMNS, or neither (ValueError for one)."""
    present = [c for c in TIE_COLUMNS if c in outcomes.columns]
    if present and len(present) < len(TIE_COLUMNS):
        lacking = sorted(set(TIE_COLUMNS) - set(present))
        raise ValueError(f"outcomes have {present} but lack {lacking}; expected both or neither")
    return bool(present)


def tie_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Tied triplets per (system, kind, term): tidy rows system, kind, term, n, n_ties,
    n_identical; term is each condition present, then "mean" (all the kind's triplets)."""
    rows = []
    for (system, kind), part in outcomes.groupby(["system", "kind"], sort=False):
        by = part.groupby("condition").agg(
            n=("tie", "size"), n_ties=("tie", "sum"), n_identical=("identical", "sum")
        )
        terms = [c for c in CONDITIONS if c in by.index]
        rows += [(system, kind, term, *by.loc[term]) for term in terms]
        rows.append((system, kind, MEAN, len(part), part["tie"].sum(), part["identical"].sum()))
    table = pd.DataFrame(rows, columns=["system", "kind", "term", "n", "n_ties", "n_identical"])
    return table.astype({"n": int, "n_ties": int, "n_identical": int})
