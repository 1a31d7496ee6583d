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
    except KeyboardInterrupt as exc:  # Ctrl-C: one line instead of a traceback
        print(f"csn bench: {interrupted(exc, args)}", file=sys.stderr)
        return 130  # 128 + SIGINT, as the shell reports a process that SIGINT ended
    _print_summary(results)
    return 0


def command(args) -> str:
    """The csn bench command line of args: rerunning it resumes the run (or scores again)."""
    import shlex

    line = ["csn", "bench"] + (["--config", str(args.config)] if args.config else [])
    line += ["--set", *args.set] if args.set else []
    line += ["--data", str(args.data)] + (["--out", str(args.out)] if args.out else [])
    line += ["--from", str(args.from_run)] if args.from_run else []
    line += ["--duplicates", args.duplicates] if args.duplicates else []
    return shlex.join(line)


def interrupted(exc: KeyboardInterrupt, args) -> str:
    """The line for Ctrl-C: the stage it stopped in, what a rerun keeps, the command to rerun."""
    if args.from_run:  # scoring only; the triplets it saved are reused
        return f"interrupted while {_stage(exc)}; nothing scored was kept; rerun: {command(args)}"
    done = sorted(p.parent.name for p in Path(args.out).glob("systems/*/done.json"))
    kept = f"finished systems kept: {', '.join(done)}" if done else "no system had finished"
    return f"interrupted while {_stage(exc)}; {kept}; rerun to resume: {command(args)}"


def _stage(exc: KeyboardInterrupt) -> str:
    """Where the interrupt landed, from the innermost bench stage on its traceback: the functions
    themselves, not their names, so that a renamed stage fails its test (test_bench_interrupt)
    rather than going unnamed."""
    from csn_model import bench, bench_train
    from csn_model.analysis import analyze_subspaces
    from csn_model.separation import sdr_table, train_separator
    from csn_model.train_errors import TrainInterrupted

    stages = {
        bench_train._train_once.__code__: "training {name}",
        train_separator.__code__: "training the separator",
        sdr_table.__code__: "measuring the separator's SDR on the test split",
        bench.evaluate.__code__: "scoring the systems on the test triplets",
        analyze_subspaces.__code__: "analysing the CSN's subspaces (bench.analysis)",
    }
    stage = "preparing the run (dataset checks and test triplets)"
    tb = exc.__traceback__
    while tb is not None:  # outermost first: the last match is the innermost stage
        found = stages.get(tb.tb_frame.f_code)
        if found:
            stage = found.format(name=tb.tb_frame.f_locals.get("name"))
        tb = tb.tb_next
    if isinstance(exc, TrainInterrupted):  # a system's steps: where they stopped and were saved
        stage += f" ({exc})"
    return stage


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
