"""`csn train`: train one system (CSN or individual network) from an experiment config."""

from __future__ import annotations

import sys
from pathlib import Path

from csn_model import CONDITIONS
from csn_model.cli import add_duplicates_argument


def add_arguments(parser) -> None:
    parser.add_argument("--config", type=Path, help="experiment YAML (only what differs)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override config fields, e.g. train.steps=50 model.embedding_dim=320",
    )
    parser.add_argument("--data", type=Path, required=True, help="Slakh-layout dataset root")
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumed if present)")
    parser.add_argument(
        "--teacher",
        nargs="+",
        default=[],
        metavar="CONDITION=CHECKPOINT",
        help="individual-network checkpoints for the auxiliary loss and pre-training",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_duplicates_argument(parser, default=None)


def run_config(args):
    """The run's config: --config, then --set, then --duplicates (data.duplicates)."""
    from csn_model.config import load_config

    duplicates = [f"data.duplicates={args.duplicates}"] if args.duplicates else []
    return load_config(args.config, [*args.set, *duplicates])


def parse_teachers(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        cond, sep, path = item.partition("=")
        if not sep or cond not in CONDITIONS:
            raise ValueError(
                f"--teacher {item!r}: expected CONDITION=CHECKPOINT, CONDITION in "
                f"{', '.join(CONDITIONS)}"
            )
        out[cond] = Path(path)
    return out


def command(args) -> str:
    """The csn train command line of args, to rerun (and so resume) the same run."""
    import shlex

    line = ["csn", "train"] + (["--config", str(args.config)] if args.config else [])
    line += ["--set", *args.set] if args.set else []
    line += ["--data", str(args.data), "--out", str(args.out)]
    line += ["--teacher", *args.teacher] if args.teacher else []
    line += ["--duplicates", args.duplicates] if args.duplicates else []
    line += ["--no-progress"] if args.no_progress else []
    return shlex.join(line)


def run(args) -> int:
    from csn_model.checkpoint import CheckpointError
    from csn_model.config import ConfigError
    from csn_model.data.slakh import DataError
    from csn_model.train import train_run
    from csn_model.train_errors import TrainError, TrainInterrupted

    try:
        cfg = run_config(args)
        teachers = parse_teachers(args.teacher)
        final = train_run(cfg, args.data, args.out, teachers or None, not args.no_progress)
    except (ConfigError, DataError, TrainError, CheckpointError, ValueError) as exc:
        print(f"csn train: error: {exc}", file=sys.stderr)
        return 2
    except TrainInterrupted as exc:  # Ctrl-C during the steps: logged to train.log too
        print(f"csn train: {exc}: {command(args)}", file=sys.stderr)
        return 130  # 128 + SIGINT, as the shell reports a process that SIGINT ended
    except KeyboardInterrupt:
        print(
            f"csn train: interrupted before the first step; rerun: {command(args)}", file=sys.stderr
        )
        return 130
    print(final)
    return 0
