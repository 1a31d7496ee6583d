"""The `csn` command: model-side work (data, training, benchmark, embedding).

Each subcommand lives in its own module, which exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `csn --help` stays fast
and a command's heavy imports (torch, librosa) cost nothing to the others. The argument types
below refuse a value a command cannot use while the arguments are parsed, before any work.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("csn_model.data.synth_cli", "render a Slakh-layout multitrack dataset from MIDI"),
    "triplets": ("csn_model.data.triplets_cli", "sample and save fixed evaluation triplet sets"),
    "bench-data": ("csn_model.data.bench_cli", "benchmark synthesis and triplet loading speed"),
    "train": ("csn_model.train_cli", "train a CSN or an individual network from a config"),
    "embed": ("csn_model.embed_cli", "embed audio files with a checkpoint"),
    "bench-speed": ("csn_model.speed_cli", "measure end-to-end embedding throughput"),
    "bench": ("csn_model.bench_cli", "train and score every system on fixed test triplets"),
    "bench-level": (
        "csn_model.level_cli",
        "triplet accuracy with the test mixtures as fed, levelled and at random gains",
    ),
    "analyze-subspaces": ("csn_model.analysis", "subspace projections, disentanglement matrix"),
}


def _int_from(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, {low} or more")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of 1 or more."""
    return _int_from(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer of 0 or more (seeds: numpy refuses negative ones)."""
    return _int_from(text, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (nan and inf pass float() but no length is either)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number above 0")
    return value


def _nearest_existing(path: Path) -> Path:
    return next((p for p in (path, *path.parents) if p.exists()), Path("."))


def out_folder(text: str) -> Path:
    """argparse type: a folder to write into, existing or made (with its parents) by the command."""
    found = _nearest_existing(Path(text))
    if not found.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {found} exists and is not a folder")
    return Path(text)


def out_file_in_tree(text: str) -> Path:
    """argparse type: a file to write; missing folders above it are made by the command."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file name")
    found = _nearest_existing(path.parent)
    if not found.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {found} exists and is not a folder")
    return path


def out_file(text: str) -> Path:
    """argparse type: a file to write in a folder that exists."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file name")
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text}: folder {path.parent} {what}")
    return path


def add_duplicates_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    """--duplicates, the reader's mode for tracks of one source MIDI (config field
    data.duplicates; default None: the config's value)."""
    from csn_model.config import DUPLICATES  # noqa: PLC0415  (only when the command runs)

    parser.add_argument(
        "--duplicates",
        choices=DUPLICATES,
        default=default,
        help="tracks rendered from one source MIDI (original Slakh2100): refuse the dataset, or "
        "omit all but the first in train, validation, test order (docs/data.md)"
        + ("" if default else "; default: the config's data.duplicates"),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in {"-h", "--help"}:
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"csn {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
