"""How optimistic the benchmark's anchor-clustered statistics are when a pseudo-mixed triplet's
other pieces (B, C, D) carry effects too: a simulation with no true difference between systems.

    python -m csn_model.bench_null --pieces 30 --per-condition 100 --datasets 1000

Triplets as make_eval_set draws them (csn_model.data.triplets.TripletSampler, pseudo kind), per
condition and triplet: anchor piece A uniform over the split, D uniform over the others than A,
B uniform over the others than A, C uniform over those other than A and B; here every piece has
every instrument, so each is eligible in every role. Per simulated benchmark and piece j: an
anchor effect alpha_j ~ N(0, sd) and one effect gamma_j ~ N(0, ratio * sd) shared by the roles
B, C and D (correlation rho with alpha_j); a triplet's tilt is alpha_A + gamma_B + gamma_C +
gamma_D, the same for every condition. Two systems with no true difference: P(correct) =
clip(base +- tilt / 2, 0.02, 0.98), independent Bernoulli per triplet (ratio 0 is the clustered
null of tests/csn_model/bench/test_paired_pieces.py).

Per ratio it prints, over all conditions' triplets pooled (the "mean" term), the share of
benchmarks where each test gives p < alpha (its level): anchor = paired_piece_test (the
benchmark's p_val, anchor pieces only), multiway = multiway_piece_test, crossed =
crossed_piece_test (csn_model.piece_variance); and the coverage of one system's expected
accuracy (macro mean) by intervals at 1 - alpha: boot_cov = bootstrap_accuracy's (anchor pieces
resampled, the benchmark's ci_low/ci_high), cr_cov = crossed_accuracy's (its crossed_ci_low /
crossed_ci_high), mw_cov = estimate +- t(pieces - 1) se with se from the centred
shared_piece_variance (the pooled mean). Monte Carlo se of a share q
over S benchmarks: sqrt(q (1 - q) / S).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from csn_model import CONDITIONS
from csn_model.evaluation import MEAN, bootstrap_accuracy, crossed_accuracy, paired_piece_test
from csn_model.piece_variance import (
    crossed_piece_test,
    multiway_piece_test,
    piece_matrix,
    shared_piece_variance,
)


@dataclass(frozen=True)
class NullDesign:
    pieces: int = 30  # test pieces (cpu.yaml's synthetic test split: 30 tracks)
    per_condition: int = 100  # triplets per condition (bench.per_condition)
    conditions: int = len(CONDITIONS)
    sd: float = 0.25  # sd of the anchor piece's effect on the difference in P(correct)
    ratio: float = 0.0  # sd of a B/C/D piece's effect / sd
    rho: float = 0.0  # correlation of a piece's anchor effect and its B/C/D effect
    separate: bool = False  # one B/C/D effect per piece and role (True) or one for all three
    base: float = 0.55  # P(correct) of both systems at zero tilt
    n_boot: int = 1000
    alpha: float = 0.05


def draw_roles(rng: np.random.Generator, pieces: int, n: int) -> np.ndarray:
    """Pieces of n pseudo triplets in the roles A, B, C, D, as TripletSampler draws them.
    -> (n, 4)"""
    a = rng.integers(0, pieces, n)  # (n,)
    d = (a + rng.integers(1, pieces, n)) % pieces  # uniform over the others than A
    b = (a + rng.integers(1, pieces, n)) % pieces
    # C uniform over the pieces other than A and B: the k-th of the remaining P - 2 in order.
    c = rng.integers(0, pieces - 2, n)
    low, high = np.minimum(a, b), np.maximum(a, b)
    c = c + (c >= low)
    c = c + (c >= high)
    return np.stack([a, b, c, d], axis=1)  # (n, 4)


def _tilts(design: NullDesign, roles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per triplet, the difference in P(correct) the pieces it touches give. -> (n,)"""
    z = rng.normal(size=(4, design.pieces))  # (4, P): anchor, then one per other role
    rho, other_sd = design.rho, design.ratio * design.sd
    gamma = other_sd * (rho * z[0] + np.sqrt(1 - rho**2) * z[1:])  # (3, P)
    if not design.separate:
        gamma = gamma[[0, 0, 0]]  # one effect of a piece in any of the roles B, C, D
    tilt = design.sd * z[0][roles[:, 0]]  # (n,)
    return tilt + sum(gamma[r][roles[:, r + 1]] for r in range(3))


def simulate_one(design: NullDesign, rng: np.random.Generator) -> dict:
    """One benchmark under the null: each statistic's verdict (True = rejected / covered)."""
    n = design.per_condition * design.conditions
    roles = draw_roles(rng, design.pieces, n)  # (n, 4)
    tilt = _tilts(design, roles, rng)  # (n,)
    p_ref = np.clip(design.base + tilt / 2, 0.02, 0.98)  # (n,)
    p_other = np.clip(design.base - tilt / 2, 0.02, 0.98)
    ref = (rng.uniform(size=n) < p_ref).astype(np.int64)  # (n,)
    other = (rng.uniform(size=n) < p_other).astype(np.int64)
    ids, n_pieces = piece_matrix(roles.tolist())  # (n, m)
    t_crit = stats.t.ppf(1 - design.alpha / 2, n_pieces - 1)
    target, est = _expected_accuracy(design), ref.mean()
    boot, crossed = _intervals(design, roles, ref, rng)  # (low, high) each
    y = ref - est  # (n,), centred as for an interval
    multiway_se = np.sqrt(max(shared_piece_variance(y, ids), 0.0)) / n
    return {
        "anchor_reject": paired_piece_test(ref, other, roles[:, 0])["p_val"] < design.alpha,
        "multiway_reject": multiway_piece_test(ref, other, roles.tolist())["p_val"] < design.alpha,
        "crossed_reject": crossed_piece_test(ref, other, roles[:, 0], roles[:, 1:])["p_val"]
        < design.alpha,
        "boot_cover": boot[0] <= target <= boot[1],
        "multiway_cover": abs(est - target) <= t_crit * multiway_se,
        "crossed_cover": crossed[0] <= target <= crossed[1],
    }


def _intervals(design, roles, correct, rng) -> tuple[tuple[float, float], tuple[float, float]]:
    """The benchmark's two intervals of the macro mean: bootstrap_accuracy's (anchor pieces
    resampled) and crossed_accuracy's (random effects of every piece a triplet touches)."""
    conditions = np.repeat(np.array(CONDITIONS[: design.conditions]), design.per_condition)
    others = ["|".join(map(str, row)) for row in roles[:, 1:].tolist()]
    frame = pd.DataFrame(
        {"condition": conditions, "piece": roles[:, 0], "correct": correct, "others": others}
    )
    level = 1 - design.alpha
    seed = int(rng.integers(2**31))
    boot = bootstrap_accuracy(frame, n_boot=design.n_boot, seed=seed, level=level)
    crossed = crossed_accuracy(frame, level=level)
    b, c = boot[boot.term == MEAN].iloc[0], crossed[crossed.term == MEAN].iloc[0]
    return (b.ci_low, b.ci_high), (c.crossed_ci_low, c.crossed_ci_high)


_TARGETS: dict[NullDesign, float] = {}
COLUMNS = {  # printed name -> simulate's key
    "anchor": "anchor_reject",
    "multiway": "multiway_reject",
    "crossed": "crossed_reject",
    "boot_cov": "boot_cover",
    "mw_cov": "multiway_cover",
    "cr_cov": "crossed_cover",
}


def _expected_accuracy(design: NullDesign) -> float:
    """E[P(correct)] of the reference system over pieces and triplets (the intervals' target),
    by Monte Carlo over 100 to 4,000 fresh benchmarks, about 2 million triplets (once per
    design)."""
    if design not in _TARGETS:
        rng = np.random.default_rng(12345)
        n = design.per_condition * design.conditions
        total = 0.0
        sims = max(100, min(4000, 2_000_000 // n))
        for _ in range(sims):
            tilt = _tilts(design, draw_roles(rng, design.pieces, n), rng)  # (n,)
            total += float(np.clip(design.base + tilt / 2, 0.02, 0.98).mean())
        _TARGETS[design] = total / sims
    return _TARGETS[design]


def simulate(design: NullDesign, datasets: int, seed: int = 0) -> dict:
    """Shares over `datasets` simulated benchmarks: anchor_reject, multiway_reject (levels at
    design.alpha), boot_cover, multiway_cover (coverage at 1 - alpha)."""
    rng = np.random.default_rng(seed)
    runs = pd.DataFrame([simulate_one(design, rng) for _ in range(datasets)])
    return {name: float(runs[name].mean()) for name in runs.columns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m csn_model.bench_null", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pieces", type=int, default=30, help="test pieces (default 30)")
    parser.add_argument("--per-condition", type=int, default=100, help="bench.per_condition")
    parser.add_argument("--conditions", type=int, default=len(CONDITIONS))
    parser.add_argument("--datasets", type=int, default=1000, help="simulated benchmarks")
    parser.add_argument(
        "--ratios", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0],
        help="sd of a B/C/D piece's effect over the anchor's (default 0 0.25 0.5 1)",
    )  # fmt: skip
    parser.add_argument("--sd", type=float, default=0.25, help="anchor effect's sd (0.25)")
    parser.add_argument("--rho", type=float, default=0.0, help="corr(anchor, B/C/D effect)")
    parser.add_argument(
        "--separate", action="store_true",
        help="independent effects of a piece as B, C and D (default: one for all three roles)",
    )  # fmt: skip
    parser.add_argument("--base", type=float, default=0.55)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.pieces < 3 or args.datasets < 1 or not -1 <= args.rho <= 1:
        parser.error("expected --pieces >= 3, --datasets >= 1 and -1 <= --rho <= 1")
    print(
        f"{args.datasets} null benchmarks: {args.pieces} pieces, {args.per_condition} triplets x "
        f"{args.conditions} conditions, anchor sd {args.sd}, rho {args.rho}, base {args.base}, "
        f"B/C/D effects {'per role' if args.separate else 'one per piece'}"
    )
    print("ratio  " + "  ".join(f"{c:>9}" for c in COLUMNS))
    for ratio in args.ratios:
        design = NullDesign(
            args.pieces, args.per_condition, args.conditions, args.sd, ratio, args.rho,
            args.separate, args.base, args.n_boot,
        )  # fmt: skip
        out = simulate(design, args.datasets, args.seed)
        print(f"{ratio:5g}  " + "  ".join(f"{out[k]:9.3f}" for k in COLUMNS.values()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
