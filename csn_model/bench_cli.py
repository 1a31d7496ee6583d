"""`csn bench`: train (or load) every system of an experiment and score them on fixed test triplets.

    csn bench --config experiments/configs/cpu.yaml --data DATASET --out RUN_DIR
    csn bench --from RUN_DIR --data OTHER_DATASET [--out DIR]   # generalisation, no training

Rerunning the first form resumes: finished systems, the separator and the saved triplet sets are
reused. See experiments/README.md.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from csn_model.cli import add_duplicates_argument, out_folder


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="experiment YAML (only what differs from defaults)")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override config fields, e.g. train.steps=100",
    )
    parser.add_argument("--data", required=True, help="Slakh-layout dataset root")
    parser.add_argument(
        "--out",
        type=out_folder,
        help="run folder (with --from: where the new results go; "
        "default RUN_DIR/eval/<dataset folder name>)",
    )
    parser.add_argument("--from", dest="from_run", help="score the systems of this finished run")
    add_duplicates_argument(parser, default=None)  # with --from: how --data is read


def run(args) -> int:
    from csn_model.bench import run_bench, score_run
    from csn_model.bench_config import load_bench_config
    from csn_model.config import ConfigError
    from csn_model.data.slakh import DataError
    from csn_model.train_errors import TrainError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout
    )
    try:
        if args.from_run:
            if args.config or args.set:
                print(
                    "csn bench: --from uses the run's own config; drop --config/--set",
                    file=sys.stderr,
                )
                return 2
            out = Path(args.out) if args.out else None
            results = score_run(Path(args.from_run), Path(args.data), out, args.duplicates)
        else:
            if not args.out:
                print("csn bench: --out RUN_DIR is required (or --from RUN_DIR)", file=sys.stderr)
                return 2
            duplicates = [f"data.duplicates={args.duplicates}"] if args.duplicates else []
            cfg = load_bench_config(args.config, [*args.set, *duplicates])
            results = run_bench(cfg, Path(args.data), Path(args.out))
    # TrainError is a RuntimeError: a system that cannot train (e.g. train.device=cuda, no CUDA)
    except (ConfigError, DataError, TrainError, ValueError) as exc:
        print(f"csn bench: {exc}", file=sys.stderr)
        return 2
    _print_summary(results)
    return 0


def _print_summary(results: dict) -> None:
    kind = results["primary_kind"]
    print(f"mean triplet accuracy ({kind}):")
    for name, s in results["systems"].items():
        lo, hi = s["ci95"]["mean"]
        share = s.get("tie_share")  # None in results written before ties were counted
        ties = "" if share is None else f"  ties {100 * share:.1f} % (counted wrong)"
        print(f"  {name:22s} {s['accuracy']['mean']:.3f} [{lo:.3f}, {hi:.3f}]{ties}")
    for warning in results.get("warnings", []):
        print(f"warning: {warning}")
