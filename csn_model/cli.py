"""The `csn` command: model-side work (data, training, benchmark, embedding).

Each subcommand lives in its own module, which exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `csn --help` stays fast
and a command's heavy imports (torch, librosa) cost nothing to the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("csn_model.data.synth_cli", "render a Slakh-layout multitrack dataset from MIDI"),
    "triplets": ("csn_model.data.triplets_cli", "sample and save fixed evaluation triplet sets"),
    "bench-data": ("csn_model.data.bench_cli", "benchmark synthesis and triplet loading speed"),
    "train": ("csn_model.train_cli", "train a CSN or an individual network from a config"),
    "embed": ("csn_model.embed_cli", "embed audio files with a checkpoint"),
    "bench-speed": ("csn_model.speed_cli", "measure end-to-end embedding throughput"),
    "bench": ("csn_model.bench_cli", "train and score every system on fixed test triplets"),
    "analyze-subspaces": ("csn_model.analysis", "subspace projections, disentanglement matrix"),
}


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
