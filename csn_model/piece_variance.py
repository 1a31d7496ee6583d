"""The variance of a sum over triplets whose audio shares pieces in any role.

A pseudo-mixed triplet for condition c uses piece A's c stem (anchor and positive), B's other
stems (anchor and negative), C's other stems (positive) and D's c stem (negative), B, C and D
drawn per triplet from the whole test split (csn_model.data.triplets.TripletSampler); a natural
triplet uses A and D. So a piece is the anchor of some triplets and B, C or D of others, and
triplets on different anchors share audio. paired_piece_test (csn_model.evaluation) allows for
the anchor only. Two estimates here allow for the rest:

- shared_piece_variance / multiway_piece_test: sum x_t x_s over every pair sharing a piece, the
  multiway cluster-robust variance (Cameron, Gelbach & Miller 2011) over pieces in any role
  (as the dyadic-robust one, Fafchamps & Gubert 2007). With 30 pieces two triplets share one
  about 45 % of the time (1 - C(26,4) / C(30,4)), and it fails both ways (csn_model.bench_null,
  figures in experiments/README.md): with the null imposed it almost never rejects; centred, its
  95 % interval covers 76-84 %. Kept for that comparison.
- piece_effects_variance / crossed_piece_test: x_t = mu + alpha_A + gamma_B + gamma_C + gamma_D
  + e_t with random piece effects (alpha: as anchor, gamma: in any other role, correlated
  within a piece) and triplet noise; the four variance components estimated by moments from the
  centred x (Henderson's method: quadratic forms equated to their expectations, Searle, Casella
  & McCulloch 1992, ch. 5; for crossed designs Gao & Owen 2017), then var(sum x) from them.

Notation: N triplets, P pieces, R roles besides the anchor (3 in a pseudo triplet).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

COMPONENTS = ("anchor", "other", "cross", "triplet")  # var alpha, var gamma, cov, var e


# -- multiway cluster-robust (every pair sharing a piece) --------------------------------------
def multiway_piece_test(a_correct, b_correct, touched) -> dict:
    """Paired test of two systems allowing for every piece a triplet touches, two-sided.

    touched: per triplet, the pieces whose audio it uses (the anchor piece and, in a pseudo mix,
    B, C and D). x_t = A's correct - B's correct; stat = sum x_t. Two triplets sharing any piece
    may move together, so var(stat) is estimated as the sum of x_t x_s over every pair sharing
    a piece (each triplet with itself included): the multiway cluster-robust variance (Cameron,
    Gelbach & Miller 2011) with the null imposed (x not centred), taken over pieces in any
    role, as the dyadic-robust variance is (Fafchamps & Gubert 2007). With the anchor alone it
    is the sum of squared per-piece differences that paired_piece_test flips. p from Student's
    t with n_pieces - 1 df (the number of clusters less one, as CGM advise); an approximation,
    not exact like paired_piece_test. Returns stat, se, p_val, n_pieces.
    """
    x = np.asarray(a_correct, dtype=float) - np.asarray(b_correct, dtype=float)  # (N,)
    if x.shape != (len(touched),):
        raise ValueError(
            f"multiway_piece_test: {x.size} triplets' outcomes but {len(touched)} sets of pieces"
        )
    ids, n_pieces = piece_matrix(touched)  # (N, m)
    stat, var = float(x.sum()), shared_piece_variance(x, ids)
    se = float(np.sqrt(max(var, 0.0)))
    if stat == 0.0:
        p = 1.0
    else:
        p = float(2.0 * stats.t.sf(abs(stat) / se, n_pieces - 1)) if se > 0 else float("nan")
    return {"stat": stat, "se": se, "p_val": p, "n_pieces": n_pieces}


def piece_matrix(touched) -> tuple[np.ndarray, int]:
    """Sets of pieces as integer rows: (N, m) ascending, -1 padding first; and the piece count."""
    codes: dict = {}
    rows = [sorted({codes.setdefault(p, len(codes)) for p in t}) for t in touched]
    width = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), -1, dtype=np.int64)  # (N, m)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
    return ids, len(codes)


def shared_piece_variance(x: np.ndarray, ids: np.ndarray) -> float:
    """sum of x_t x_s over ordered pairs (t, s) of rows sharing a piece, t = s included.

    ids (N, m): each row's distinct pieces ascending, -1 = none. By inclusion-exclusion over
    the sets U of pieces two rows share, sum_U (-1)^(|U|+1) (sum of x over rows holding U)^2
    counts a pair sharing k pieces sum_j (-1)^(j+1) C(k, j) = 1 time (CGM 2011, eq. 2.11's
    form), in O(N 2^m) instead of O(N^2).
    """
    n, m = ids.shape
    base = int(ids.max(initial=0)) + 1
    total = 0.0
    for size in range(1, m + 1):
        keys, vals = [], []
        for cols in itertools.combinations(range(m), size):
            sub = ids[:, cols]  # (N, size), ascending: one key per set of pieces
            keep = (sub >= 0).all(axis=1)  # (N,)
            keys.append(sub[keep] @ base ** np.arange(size, dtype=np.int64))
            vals.append(x[keep])
        _, index = np.unique(np.concatenate(keys), return_inverse=True)
        sums = np.bincount(index.reshape(-1), weights=np.concatenate(vals))  # (groups,)
        total += (-1.0) ** (size + 1) * float((sums**2).sum())
    return total


# -- random piece effects, by moments ----------------------------------------------------------
def crossed_piece_test(a_correct, b_correct, anchors, others) -> dict:
    """Paired test of two systems allowing for random effects of every piece a triplet touches.

    anchors: (N,) each triplet's anchor piece; others: per triplet the pieces in its other
    roles (B, C, D; a role's piece counted once per role), as names, or as an (N, R) integer
    array with -1 for a missing role. x_t = A's correct - B's correct, stat = sum x_t,
    se = sqrt(piece_effects_variance(x)), p two-sided from Student's t with df = the
    estimate's Satterthwaite df within [1, n_pieces - 1] (reference_df; n_pieces - 1 alone
    rejected 6.5-8.6 % at 8-12 pieces, experiments/README.md). An approximation, not exact like
    paired_piece_test. p = 1 when stat = 0; NaN when the variance estimate is 0 (truncated)
    but stat != 0: every x_t the same nonzero value, or few triplets whose raw moment estimates
    truncate to 0 though x varies (x = [1, 0, 0, 0] can): t = stat / 0 has no reference, and
    p = 0, its limit, would claim more than paired_piece_test's exact floor 2 / 2^pieces on the
    same data; read paired_piece_test's p there. df is NaN whenever se = 0 (Satterthwaite's
    0 / 0). Returns stat, se, df, p_val, n_pieces.
    """
    x = np.asarray(a_correct, dtype=float) - np.asarray(b_correct, dtype=float)  # (N,)
    a_idx, o_idx, n_pieces = code_roles(anchors, others)  # (N,), (N, R)
    if x.shape != a_idx.shape:
        raise ValueError(f"crossed_piece_test: {x.size} outcomes but {a_idx.size} anchors")
    stat = float(x.sum())
    est = piece_effects_variance(x, a_idx, o_idx)
    se, df = float(np.sqrt(est["var"])), reference_df(est["df"], n_pieces)
    if stat == 0.0:
        p = 1.0
    else:
        p = float(2.0 * stats.t.sf(abs(stat) / se, df)) if se > 0 else float("nan")
    return {"stat": stat, "se": se, "df": df, "p_val": p, "n_pieces": n_pieces}


def reference_df(df: float, n_pieces: int) -> float:
    """The t reference's df: the Satterthwaite df floored at 1 and capped at n_pieces - 1.

    The cap: the Satterthwaite df rests on the fitted covariance as if it were the true one; where
    the piece components come out near 0 it credits the estimate with up to N - G df, while the
    pieces' share is only ever learnt from P pieces. P - 1 (the df used before, and CGM's advice
    for P clusters) stays the most generous reference. The floor: below 1 the formula says only
    that one noisy component dominates; t(1) is already Cauchy-tailed."""
    return float(min(max(df, 1.0), n_pieces - 1)) if np.isfinite(df) else float("nan")


def code_roles(anchors, others) -> tuple[np.ndarray, np.ndarray, int]:
    """Pieces as integer codes: anchors (N,), others (N, R) with -1 padding, and P."""
    anchors = np.asarray(anchors)
    if isinstance(others, np.ndarray) and np.issubdtype(others.dtype, np.integer):
        if np.issubdtype(anchors.dtype, np.integer):
            n_pieces = len(np.union1d(anchors, others[others >= 0]))
            return anchors.astype(np.int64), others.astype(np.int64), n_pieces
    codes: dict = {}
    a_idx = np.array([codes.setdefault(p, len(codes)) for p in anchors.tolist()], dtype=np.int64)
    rows = [[codes.setdefault(p, len(codes)) for p in row if p != -1] for row in others]
    o_idx = np.full((len(rows), max((len(r) for r in rows), default=0)), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        o_idx[i, : len(r)] = r
    return a_idx, o_idx, len(codes)


def piece_effects_variance(
    x: np.ndarray,
    anchors: np.ndarray,
    others: np.ndarray,
    truncate: bool = True,
    groups: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict:
    """var(sum w x) under random piece effects, with the components estimated by moments.

    anchors (N,), others (N, R) integer piece codes (-1: no piece in that role). With A the
    (N, P) anchor incidence and O the (N, P) counts of a piece in the other roles, cov(x) =
    s_anchor AA' + s_other OO' + s_cross (AO' + OA') + s_triplet I. Each quadratic form u'Gu of
    the centred x (u = Hx; H removes each group's mean, one group by default) has expectation
    sum_l s_l tr(H G H G_l); the four are solved for s (least squares, so that an absent
    component, e.g. no other roles, is 0). truncate: variances below 0 set to 0 and |cross|
    capped at sqrt(s_anchor s_other), as usual for moment estimates. groups (N,): e.g. the
    condition, each with its own mean; weights w (N,), 1 by default. Returns the components,
    var = w' cov w = sum_l s_l w'G_l w, and df: var's Satterthwaite df, 2 var^2 / var(var)
    under normality with the fitted covariance (_satterthwaite_df; uncapped, see
    reference_df).
    """
    n = x.size
    groups = (
        np.zeros(n, dtype=np.int64)
        if groups is None
        else np.unique(groups, return_inverse=True)[1].ravel()
    )
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)  # (N,)
    n_g = np.bincount(groups).astype(float)  # (G,)
    p = int(max(anchors.max(initial=-1), others.max(initial=-1))) + 1
    keep = others >= 0  # (N, R)
    inc = {"A": np.zeros((n, p)), "O": np.zeros((n, p))}  # incidence counts, (N, P) each
    inc["A"][np.arange(n), anchors] = 1.0
    np.add.at(inc["O"], (np.broadcast_to(np.arange(n)[:, None], others.shape)[keep],
                         others[keep]), 1.0)  # fmt: skip
    u = x - (np.bincount(groups, weights=x) / n_g)[groups]  # (N,)
    proj = {k: m.T @ u for k, m in inc.items()}  # (P,) each
    by_group = {k: _group_sums(m, groups, len(n_g)) for k, m in inc.items()}  # (G, P) each
    centred = {  # R'HL = R'L - sum over groups g of (R_g'1)(1'L_g) / n_g: (P, P)
        kr + kl: inc[kr].T @ inc[kl] - (by_group[kr] / n_g[:, None]).T @ by_group[kl]
        for kr, kl in itertools.product(inc, repeat=2)
    }
    grams = {"anchor": ["AA"], "other": ["OO"], "cross": ["AO", "OA"]}
    present = [k for k in COMPONENTS[:3] if keep.any() or k == "anchor"]
    q = [sum(float(proj[g[0]] @ proj[g[1]]) for g in grams[k]) for k in present]
    system = [[_trace(grams[k], grams[j], centred) for j in present]
              + [sum(np.trace(centred[g]) for g in grams[k])] for k in present]  # fmt: skip
    system.append([sum(np.trace(centred[g]) for g in grams[j]) for j in present] + [n - n_g.size])
    est = np.linalg.lstsq(np.array(system), np.array([*q, float(u @ u)]), rcond=None)[0]
    out = dict.fromkeys(COMPONENTS, 0.0) | dict(zip([*present, "triplet"], est.tolist()))
    if truncate:
        for k in ("anchor", "other", "triplet"):
            out[k] = max(out[k], 0.0)
        cap = float(np.sqrt(out["anchor"] * out["other"]))
        out["cross"] = min(max(out["cross"], -cap), cap)
    sums = {k: w @ m for k, m in inc.items()}  # (P,) each: w'A, w'O
    totals = {k: sum(float(sums[g[0]] @ sums[g[1]]) for g in grams[k]) for k in grams}
    out["var"] = sum(out[k] * totals[k] for k in grams) + out["triplet"] * float(w @ w)
    raw = dict(zip([*present, "triplet"], est.tolist()))
    weight = {k: totals[k] for k in present} | {"triplet": float(w @ w)}
    out["df"] = _satterthwaite_df(raw, out, weight, np.array(system), centred, truncate)
    return out


def _satterthwaite_df(raw, out, weight, system, centred, truncate) -> float:
    """2 var^2 / var(var) under normality and the fitted covariance. Near the estimate var is
    a linear function of the quadratic forms (delta method through the truncation: a component
    set to 0 is constant there), so it is one form x'Qx with coefficients c = M^+' g, g the
    gradient of var in the untruncated components, M the moment equations."""
    grad = _truncation_gradient(raw, out, truncate)
    g = np.array([sum(weight[k] * grad.get((k, j), 0.0) for k in raw) for j in raw])
    coef = dict(zip(raw, (np.linalg.pinv(system).T @ g).tolist()))
    spread = _form_trace(coef, out, centred, int(round(system[-1, -1])))  # tr(H) = N - G
    return out["var"] ** 2 / spread if spread > 0 else float("nan")


def _truncation_gradient(raw: dict, out: dict, truncate: bool) -> dict:
    """d out_k / d raw_j of the truncated components at the estimate, as {(k, j): value}."""
    grad = {}
    for k in raw:
        if k != "cross" and (not truncate or raw[k] > 0):
            grad[(k, k)] = 1.0
    if "cross" in raw:
        if not truncate or out["cross"] == raw["cross"]:
            grad[("cross", "cross")] = 1.0
        elif out["anchor"] > 0 and out["other"] > 0:  # capped at +-sqrt(anchor other)
            sign = np.sign(out["cross"])
            grad[("cross", "anchor")] = sign * 0.5 * np.sqrt(out["other"] / out["anchor"])
            grad[("cross", "other")] = sign * 0.5 * np.sqrt(out["anchor"] / out["other"])
    return grad


def _form_trace(coef: dict, comps: dict, centred: dict, n_free: int) -> float:
    """tr((QV)^2) for Q = H Z C Z'H + c_e H (the estimate's form) and V = Z S Z' + s_e I (the
    fitted covariance), Z = [A O] (N, 2P); under normality var(x'Qx) = 2 tr((QV)^2) (Searle,
    Casella & McCulloch 1992, thm. S4), so the Satterthwaite df 2 var^2 / var(var) is
    var^2 / tr((QV)^2). With W = HZ and K = Z'HZ = W'W = W'Z, QV = W X Z' + s_e W C W' +
    c_e s_e H, X = C K S + c_e S, and every trace reduces to (2P, 2P) products."""
    eye = np.eye(centred["AA"].shape[0])

    def blocks(v: dict) -> np.ndarray:  # (2P, 2P)
        a, o, c = (v.get(k, 0.0) for k in COMPONENTS[:3])
        return np.block([[a * eye, c * eye], [c * eye, o * eye]])

    k = np.block([[centred["AA"], centred["AO"]], [centred["OA"], centred["OO"]]])  # (2P, 2P)
    c, s = blocks(coef), blocks(comps)
    c_e, s_e = coef.get("triplet", 0.0), comps["triplet"]
    ck, x_k = c @ k, (c @ k @ s + c_e * s) @ k  # (2P, 2P) each
    return float(
        np.sum(x_k * x_k.T)  # tr(XKXK)
        + s_e**2 * np.sum(ck * ck.T)
        + (c_e * s_e) ** 2 * n_free  # tr(H) = N - G
        + 2 * s_e * np.sum(x_k * ck.T)
        + 2 * c_e * s_e * np.trace(x_k)
        + 2 * c_e * s_e**2 * np.trace(ck)
    )


def _trace(g: list[str], h: list[str], centred: dict) -> float:
    """tr(H G H G2) for G = sum of L R' over names "LR" in g, G2 likewise over h:
    sum of tr(R2'H L1 R1'H L2)."""
    total = 0.0
    for (l1, r1), (l2, r2) in itertools.product(g, h):
        total += float(np.sum(centred[r2 + l1] * centred[r1 + l2].T))
    return total


def _group_sums(m: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Column sums of m within each group. (N, P) -> (G, P)"""
    out = np.zeros((n_groups, m.shape[1]))
    np.add.at(out, groups, m)
    return out
