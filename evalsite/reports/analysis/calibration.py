"""Calibration figures: how often a test rejects a true consent of 0.5 and how often its interval
covers the truth, on seeded synthetic answers with participant and trial random intercepts (logit
scale). These are the figures docs/statistics.md quotes; too slow for the test suite, which
checks a few hundred datasets at most.

    nice -n 10 python -m evalsite.reports.analysis.calibration crossed [--datasets 2000]
    nice -n 10 python -m evalsite.reports.analysis.calibration laplace [--datasets 200]
        [--restricted]
    nice -n 10 python -m evalsite.reports.analysis.calibration reliability [--datasets 500]
    nice -n 10 python -m evalsite.reports.analysis.calibration gee [--datasets 500]
    nice -n 10 python -m evalsite.reports.analysis.calibration contrast-margin [--datasets 300]
        [--slope 3] [--restricted]

Every participant's trials come in an order of its own (seeded), as the site shuffles each
participant's session (design.order_trials): given in one order to all, the trial index would be
a trial-level covariate real sessions do not have (review rstat, finding 3). `--restricted` fits
the random-effect SDs by the restricted Laplace likelihood instead of maximum likelihood (the
report's), for docs/statistics.md's measured negative result.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
from scipy import special

from .agreement import agreement_tables
from .crossed import crossed_row
from .inputs import normalise_answers
from .mixed import gee_check, laplace_model

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
    """Two instruments at consent 0.5 (shared participant effects) as the export's answers, each
    participant's 2 x n_t trials in a shuffled order of its own (`_shuffled`)."""
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
                }
            )
        )
    return _shuffled(rng, pd.concat(frames, ignore_index=True))


def _shuffled(rng, raw: pd.DataFrame) -> pd.DataFrame:
    """The answers with each participant's `trial_index` a random order of its own trials."""
    order = raw.groupby("participant")["trial"].transform(lambda s: rng.permutation(len(s)))
    return normalise_answers(raw.assign(trial_index=order.astype(float)))


# What `laplace` counts: the two instrument terms, and their contrast (a true 0 as well).
LAPLACE_TERMS = {"instrument terms": ["drums", "bass"], "drums - bass": ["drums - bass"]}


def _fit_label(restricted: bool) -> str:
    return ", restricted Laplace" if restricted else ""


def laplace(datasets: int, seed: int, restricted: bool = False) -> None:
    """mixed_laplace's instrument terms, and instrument_contrasts' "drums - bass" (true 0)."""
    rng = np.random.default_rng(seed)
    fit = partial(laplace_model, confidence=0.95, restricted=restricted)
    for n_p, n_t, sd_p, sd_t in SETTINGS[:4]:
        counts = {name: [0, 0, 0] for name in LAPLACE_TERMS}  # rejected, covered, terms
        for _ in range(datasets):
            fixed, contrasts, _ = fit(_answers(rng, n_p, n_t, sd_p, sd_t))
            rows = pd.concat([fixed, contrasts]).set_index("term")
            for name, picked in LAPLACE_TERMS.items():
                got, count = rows.loc[picked], counts[name]
                count[0] += int((got["p_val"] < 0.05).sum())
                count[1] += int(((got["ci_low"] <= 0) & (got["ci_high"] >= 0)).sum())
                count[2] += len(got)
        for name, (rejected, covered, n) in counts.items():
            label = f"mixed_laplace {n_p} x {n_t}, sd_p {sd_p}, sd_t {sd_t}, {name}"
            label += _fit_label(restricted)
            print(_rates(label, rejected, covered, n, seed))


def _rates(name: str, rejected: int, covered: int, terms: int, seed: int) -> str:
    """A rejection rate at 0.05 and a 95 % coverage, with the binomial sd a calibrated test's
    rate would have over `terms` (sqrt(0.05 * 0.95 / terms), the same for both)."""
    sd = np.sqrt(0.05 * 0.95 / terms)
    return (
        f"{name}: p < 0.05 in {rejected / terms:.3f}, 95% coverage {covered / terms:.3f} "
        f"(binomial sd {sd:.3f}; {terms} terms, seed {seed})"
    )


# GEE settings: the Laplace ones (trial SD 1), then no trial effect, where clustering by
# participant is the whole dependence and only the sandwich's small-sample bias is left.
GEE_SETTINGS = [*SETTINGS[:4], (20, 10, 0.5, 0.0), (30, 12, 0.5, 0.0), (20, 10, 1.0, 0.0)]


def gee(datasets: int, seed: int) -> None:
    """gee_check's instrument terms on two instruments at consent 0.5 (population-averaged
    log-odds 0: the random effects are symmetric about 0)."""
    rng = np.random.default_rng(seed)
    for n_p, n_t, sd_p, sd_t in GEE_SETTINGS:
        rejected = covered = terms = 0
        for _ in range(datasets):
            fixed = gee_check(_answers(rng, n_p, n_t, sd_p, sd_t), 0.95)[0].set_index("term")
            rows = fixed.loc[["drums", "bass"]]
            terms += 2
            rejected += int((rows["p_val"] < 0.05).sum())
            covered += int(((rows["ci_low"] <= 0) & (rows["ci_high"] >= 0)).sum())
        print(
            _rates(f"gee {n_p} x {n_t}, sd_p {sd_p}, sd_t {sd_t}", rejected, covered, terms, seed)
        )


def _margin_case(rng, slope: float = 3.0, n_p: int = 20, n_t: int = 12) -> pd.DataFrame:
    """The review's margin case (docs/statistics.md): drums margins U(0.6, 1), bass U(0, 0.4),
    slope 3 (or `slope`), answers symmetric about the mid of each instrument's population of
    margins, so each one's consent at its population mean covariates is exactly 0.5 and their
    contrast 0 (on its own trials it differs from 0.5 by the slope times the distance of their
    mean margin from that mid, the sampling the widened covariance allows for). Participant and
    trial SD 0.5 (logit scale), the model's choice and the screen order at random, each
    participant's order shuffled.
    """
    a = rng.normal(0, 0.5, n_p)
    p, t = (x.ravel() for x in np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij"))
    frames = []
    for inst, (lo, hi) in {"drums": (0.6, 1.0), "bass": (0.0, 0.4)}.items():
        margin, b = rng.uniform(lo, hi, n_t), rng.normal(0, 0.5, n_t)
        eta = a[:, None] + b[None, :] + slope * (margin[None, :] - (lo + hi) / 2)  # (P, T)
        agree = (rng.random((n_p, n_t)) < special.expit(eta)).ravel()
        model = rng.choice(np.array(["a", "b"]), p.size)
        frames.append(
            pd.DataFrame(
                {
                    "participant": p,
                    "trial": [f"{inst}{j}" for j in t],
                    "instrument": inst,
                    "model_margin": margin[t],
                    "model_choice": model,
                    "chosen": np.where(agree, model, np.where(model == "a", "b", "a")),
                    "displayed_first": rng.choice(np.array(["a", "b"]), p.size),
                }
            )
        )
    return _shuffled(rng, pd.concat(frames, ignore_index=True))


def contrast_margin(datasets: int, seed: int, slope: float = 3.0, restricted: bool = False) -> None:
    """instrument_contrasts' "drums - bass" (and each instrument term, unadjusted) in the margin
    case at `slope`, with the spread of the contrast's estimate against its mean se."""
    rng = np.random.default_rng(seed)
    counts = {"drums": [0, 0], "bass": [0, 0], "drums - bass": [0, 0]}
    estimates, ses, dfs = [], [], []
    for _ in range(datasets):
        fixed, contrasts, _ = laplace_model(_margin_case(rng, slope), 0.95, restricted)
        rows = pd.concat([fixed, contrasts]).set_index("term")
        for term, count in counts.items():
            count[0] += int(rows.loc[term, "p_val"] < 0.05)
            count[1] += int(rows.loc[term, "ci_low"] <= 0 <= rows.loc[term, "ci_high"])
        contrast = rows.loc["drums - bass"]
        estimates.append(contrast["estimate"])
        ses.append(contrast["se"])
        dfs.append(contrast["df"])
    for term, (rejected, covered) in counts.items():
        label = f"contrast-margin 20 x 12, slope {slope:g}, {term}{_fit_label(restricted)}"
        print(_rates(label, rejected, covered, datasets, seed))
    print(
        f"contrast-margin slope {slope:g} drums - bass: sd of the estimates "
        f"{np.std(estimates, ddof=1):.3f}, "
        f"root mean square se {np.sqrt(np.mean(np.square(ses))):.3f}, median df "
        f"{np.median(dfs):.1f} ({datasets} datasets, seed {seed}{_fit_label(restricted)})"
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
    parser.add_argument(
        "check", choices=["crossed", "laplace", "reliability", "gee", "contrast-margin"]
    )
    parser.add_argument("--datasets", type=int, default=None)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--slope", type=float, default=3.0, help="contrast-margin: the margin's true slope"
    )
    parser.add_argument(
        "--restricted",
        action="store_true",
        help="laplace, contrast-margin: the SDs by the restricted Laplace likelihood",
    )
    args = parser.parse_args(argv)
    checks: dict[str, tuple[Callable[[int, int], None], int]] = {
        "crossed": (crossed, 2000),
        "laplace": (partial(laplace, restricted=args.restricted), 200),
        "reliability": (reliability, 500),
        "gee": (gee, 500),
        "contrast-margin": (
            partial(contrast_margin, slope=args.slope, restricted=args.restricted),
            300,
        ),
    }
    check, default = checks[args.check]
    if args.datasets is not None and args.datasets < 1:
        parser.error(f"--datasets: expected a positive number of datasets, got {args.datasets}")
    if args.restricted and args.check not in ("laplace", "contrast-margin"):
        parser.error("--restricted: only laplace and contrast-margin fit the Laplace model")
    if not np.isfinite(args.slope):
        parser.error(f"--slope: expected a finite number, got {args.slope}")
    check(args.datasets or default, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
