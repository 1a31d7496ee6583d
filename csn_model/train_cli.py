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


def run(args) -> int:
    from csn_model.checkpoint import CheckpointError
    from csn_model.config import ConfigError
    from csn_model.data.slakh import DataError
    from csn_model.train import train_run
    from csn_model.train_errors import TrainError

    try:
        cfg = run_config(args)
        teachers = parse_teachers(args.teacher)
        final = train_run(cfg, args.data, args.out, teachers or None, not args.no_progress)
    except (ConfigError, DataError, TrainError, CheckpointError, ValueError) as exc:
        print(f"csn train: error: {exc}", file=sys.stderr)
        return 2
    print(final)
    return 0
