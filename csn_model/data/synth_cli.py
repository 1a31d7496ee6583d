"""`csn synth --out DIR --tracks N --seed S`: render a Slakh-layout dataset (see synth.py)."""

from __future__ import annotations

import argparse
import sys

from csn_model.cli import non_negative_int, out_folder, positive_float, positive_int
from csn_model.data.render import RenderError


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or abs(sum(parts) - 1) > 1e-6 or min(parts) < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected three shares train,validation,test summing to 1, "
            "e.g. 0.7,0.15,0.15"
        )
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=out_folder, required=True, help="dataset root to write (Slakh layout)"
    )
    parser.add_argument("--tracks", type=int, required=True, help="number of pieces")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="master seed (default 0)")
    parser.add_argument(
        "--soundfont",
        help="any .sf2/.sf3 (default: Debian's FluidR3_GM, else pretty_midi's TimGM6mb)",
    )
    parser.add_argument("--sample-rate", type=int, default=22050, help="Hz (default 22050)")
    parser.add_argument("--seconds", type=positive_float, default=30.0, help="length of each piece")
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="processes (default: cores)"
    )
    parser.add_argument("--format", choices=("flac", "wav"), default="flac", dest="audio_format")
    parser.add_argument(
        "--splits",
        type=_fractions,
        default=(0.7, 0.15, 0.15),
        help="train,validation,test shares (default 0.7,0.15,0.15)",
    )
    parser.add_argument("--midi", action="store_true", help="also write MIDI/Sxx.mid per stem")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from csn_model.data.synth import synthesize  # noqa: PLC0415

    if args.tracks < 1:
        print(f"csn synth: --tracks {args.tracks}: expected at least 1", file=sys.stderr)
        return 2
    if not 8000 <= args.sample_rate <= 96000:
        print(f"csn synth: --sample-rate {args.sample_rate}: expected 8000-96000", file=sys.stderr)
        return 2
    try:
        summary = synthesize(
            args.out,
            args.tracks,
            args.seed,
            soundfont=args.soundfont,
            sample_rate=args.sample_rate,
            seconds=args.seconds,
            workers=args.workers,
            audio_format=args.audio_format,
            split_fractions=args.splits,
            progress=not args.no_progress,
            midi=args.midi,
        )
    except (RenderError, OSError) as exc:  # OSError: e.g. --out not writable
        print(f"csn synth: {exc}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0
