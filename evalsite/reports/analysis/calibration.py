"""Calibration figures: how often a test rejects a true consent of 0.5 and how often its interval
covers the truth, on seeded synthetic answers with participant and trial random intercepts (logit
scale). These are the figures docs/statistics.md quotes; too slow for the test suite, which
checks a few hundred datasets at most.

    nice -n 10 python -m evalsite.reports.analysis.calibration crossed [--datasets 2000]
    nice -n 10 python -m evalsite.reports.analysis.calibration laplace [--datasets 200]
    nice -n 10 python -m evalsite.reports.analysis.calibration reliability [--datasets 500]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import special

from .agreement import agreement_tables
from .crossed import crossed_row
from .inputs import normalise_answers
from .mixed import laplace_model

# (participants, trials per instrument, participant SD, trial SD): the review's settings.
SETTINGS = [(30, 5, 0.5, 1.0), (30, 8, 0.5, 1.0), (30, 12, 0.5, 1.0), (20, 10, 0.5, 1.0)]
SETTINGS += [(30, 40, 0.5, 1.0), (30, 10, 1.0, 0.2), (10, 30, 1.0, 0.3)]


def _null(rng, n_p: int, n_t: int, sd_p: float, sd_t: float) -> np.ndarray:
    """(P, T) agreement, every participant answering every trial, consent 0.5 on average."""
    a, b = rng.normal(0, sd_p, n_p), rng.normal(0, sd_t, n_t)
    return (rng.random((n_p, n_t)) < special.expit(a[:, None] + b[None, :])).astype(float)


def crossed(datasets: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n_p, n_t, sd_p, sd_t in SETTINGS:
        rejected = covered = used = 0
        p, t = (x.ravel() for x in np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij"))
        for _ in range(datasets):
            row, reason = crossed_row("x", p, t, _null(rng, n_p, n_t, sd_p, sd_t).ravel(), 0.95)
            if reason:
                continue
            used += 1
            rejected += row["p_val"] < 0.05
            covered += row["ci_low"] <= 0.5 <= row["ci_high"]
        print(
            f"crossed {n_p} x {n_t}, sd_p {sd_p}, sd_t {sd_t}: p < 0.05 in {rejected / used:.3f}, "
            f"95% coverage {covered / used:.3f} ({used} datasets, seed {seed})"
        )


def _answers(rng, n_p: int, n_t: int, sd_p: float, sd_t: float) -> pd.DataFrame:
    """Two instruments at consent 0.5 (shared participant effects) as the export's answers."""
    a = rng.normal(0, sd_p, n_p)
    frames = []
    for inst in ("drums", "bass"):
        b = rng.normal(0, sd_t, n_t)
        agree = rng.random((n_p, n_t)) < special.expit(a[:, None] + b[None, :])  # (P, T)
        p, t = np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "participant": p.ravel(),
                    "trial": [f"{inst}{j}" for j in t.ravel()],
                    "instrument": inst,
                    "model_choice": "a",
                    "chosen": np.where(agree.ravel(), "a", "b"),
                    "model_margin": rng.uniform(0, 1, n_t)[t.ravel()],
                    "trial_index": t.ravel().astype(float),
                }
            )
        )
    return normalise_answers(pd.concat(frames, ignore_index=True))


def laplace(datasets: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n_p, n_t, sd_p, sd_t in SETTINGS[:4]:
        rejected = covered = terms = 0
        for _ in range(datasets):
            fixed = laplace_model(_answers(rng, n_p, n_t, sd_p, sd_t), 0.95)[0].set_index("term")
            rows = fixed.loc[["drums", "bass"]]
            terms += 2
            rejected += int((rows["p_val"] < 0.05).sum())
            covered += int(((rows["ci_low"] <= 0) & (rows["ci_high"] >= 0)).sum())
        print(
            f"mixed_laplace {n_p} x {n_t}, sd_p {sd_p}, sd_t {sd_t}: p < 0.05 in "
            f"{rejected / terms:.3f}, 95% coverage {covered / terms:.3f} ({terms} instrument "
            f"terms, seed {seed})"
        )


def reliability(datasets: int, seed: int) -> None:
    """The review's sim_kappa.py: each trial's share choosing candidate a drawn from Beta(2, 2),
    raters independent, so the population Fleiss kappa is (0.6 - 0.5) / (1 - 0.5) = 0.2."""
    rng = np.random.default_rng(seed)
    for n_t, raters in ((10, 8), (10, 30), (30, 8)):
        covered = {"fleiss_kappa": 0, "krippendorff_alpha": 0}
        used = 0
        for k in range(datasets):
            q = rng.beta(2, 2, n_t)
            chosen = np.where(rng.random((raters, n_t)) < q[None, :], "a", "b")  # (R, T)
            p, t = np.meshgrid(np.arange(raters), np.arange(n_t), indexing="ij")
            df = normalise_answers(
                pd.DataFrame(
                    {
                        "participant": p.ravel(),
                        "trial": [f"t{j}" for j in t.ravel()],
                        "instrument": "drums",
                        "chosen": chosen.ravel(),
                    }
                )
            )
            rel = agreement_tables(df, 500, seed + k, 0.95)[0].set_index(["term", "measure"])
            if ("drums", "fleiss_kappa") not in rel.index:
                continue
            used += 1
            for measure in covered:
                row = rel.loc[("drums", measure)]
                covered[measure] += bool(row["ci_low"] <= 0.2 <= row["ci_high"])
        print(
            f"reliability {n_t} trials x {raters} raters: 95% coverage of kappa 0.2: Fleiss "
            f"{covered['fleiss_kappa'] / used:.3f}, Krippendorff "
            f"{covered['krippendorff_alpha'] / used:.3f} ({used} datasets, n_boot 500, seed {seed})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalsite.reports.analysis.calibration")
    parser.add_argument("check", choices=["crossed", "laplace", "reliability"])
    parser.add_argument("--datasets", type=int, default=None)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    default = {"crossed": 2000, "laplace": 200, "reliability": 500}[args.check]
    {"crossed": crossed, "laplace": laplace, "reliability": reliability}[args.check](
        args.datasets or default, args.seed
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
