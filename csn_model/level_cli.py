"""`csn bench-level`: a network's triplet accuracy on the test triplets with the mixtures as fed,
levelled to a loudness target, and at seeded random gains (csn_model.level_check)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from csn_model.cli import non_negative_int, out_folder, positive_int
from csn_model.level_check import GAIN_RANGE_DB
from csn_model.loudness import DEFAULT_TARGET_LUFS


def add_arguments(parser) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        nargs="+",
        required=True,
        help="CSN checkpoints, named by their folder; the paired tests compare with the first's "
        "as_fed",
    )
    parser.add_argument("--data", type=Path, required=True, help="Slakh-layout dataset root")
    parser.add_argument("--out", type=out_folder, required=True, help="folder for the tables")
    parser.add_argument(
        "--per-condition", type=positive_int, default=100, help="test triplets per instrument"
    )
    parser.add_argument(
        "--eval-seed",
        type=non_negative_int,
        default=20240410,
        help="seed of the test triplets (default: bench.eval_seed's default)",
    )
    parser.add_argument(
        "--kinds", nargs="+", choices=("pseudo", "natural"), default=["pseudo", "natural"]
    )
    parser.add_argument(
        "--gain-seed", type=non_negative_int, default=0, help="seed of the random gains"
    )
    parser.add_argument(
        "--gain-range",
        type=float,
        nargs=2,
        default=list(GAIN_RANGE_DB),
        metavar=("LOW_DB", "HIGH_DB"),
        help="range of the random gains in dB (default -12 6)",
    )
    parser.add_argument(
        "--target-lufs",
        type=float,
        default=DEFAULT_TARGET_LUFS,
        help="loudness target of the levelled mode (default -23, the site's)",
    )
    parser.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap resamples")


def run(args) -> int:
    import pandas as pd
    import torch

    from csn_model.bench_score import _Net
    from csn_model.checkpoint import CheckpointError
    from csn_model.data.slakh import DataError, SlakhDataset
    from csn_model.data.triplets import make_eval_set
    from csn_model.level_check import level_outcomes, level_tables, summary_lines

    low, high = args.gain_range
    if not low <= high:
        print(f"csn bench-level: error: --gain-range {low:g} {high:g}: expected LOW <= HIGH",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        names = _names(args.checkpoint)
        nets = {n: _Net(p, torch.device("cpu")) for n, p in zip(names, args.checkpoint)}
        ds = SlakhDataset(args.data)
        frames = _frames(nets)
        parts = []
        for kind in args.kinds:
            triplets = make_eval_set(ds, "test", kind, args.per_condition, args.eval_seed, frames)
            if not triplets:
                raise DataError(f"{args.data}: the test split forms no {kind} triplets")
            parts.append(
                level_outcomes(
                    ds, triplets, nets, frames, kind, args.gain_seed, args.target_lufs, (low, high)
                )
            )
    except (CheckpointError, DataError, ValueError) as exc:
        print(f"csn bench-level: error: {exc}", file=sys.stderr)
        return 2
    outcomes = pd.concat(parts, ignore_index=True)
    accuracy, comparisons = level_tables(outcomes, args.n_boot)
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes.to_csv(args.out / "outcomes.csv", index=False)
    accuracy.to_csv(args.out / "accuracy.csv", index=False)
    comparisons.to_csv(args.out / "comparisons.csv", index=False)
    settings = json.dumps(vars(args), indent=2, default=str)  # paths as strings
    (args.out / "settings.json").write_text(settings + "\n")
    print("\n".join(summary_lines(accuracy, comparisons)))
    return 0


def _names(paths: list[Path]) -> list[str]:
    """The checkpoints' names in the tables: their folders' (runs/base/final.pt -> base), with
    their position appended where two share a folder name."""
    names = [p.resolve().parent.name for p in paths]
    return [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]


def _frames(nets: dict) -> int:
    """The networks' common segment length (samples); ValueError when they differ."""
    frames = {n.segment_frames for n in nets.values()}
    if len(frames) > 1:
        raise ValueError(
            f"the checkpoints embed segments of {sorted(frames)} samples; expected one"
        )
    return frames.pop()
