"""`csn triplets`: sample a fixed, seeded evaluation triplet set and save it as JSON."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter

from csn_model import CONDITIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="Slakh-layout dataset root")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--kind", default="pseudo", choices=("pseudo", "natural"))
    parser.add_argument("--per-condition", type=int, default=200, help="triplets per condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--segment-seconds", type=float, default=3.0, help="segment length")
    parser.add_argument("--out", required=True, help="JSON file to write")


def run(args: argparse.Namespace) -> int:
    from csn_model.data.slakh import DataError, SlakhDataset  # noqa: PLC0415
    from csn_model.data.triplets import make_eval_set, save_triplets  # noqa: PLC0415

    if args.per_condition < 1:
        print(f"csn triplets: --per-condition {args.per_condition}: expected >= 1", file=sys.stderr)
        return 2
    try:
        ds = SlakhDataset(args.data)
        frames = int(round(args.segment_seconds * ds.sample_rate))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            triplets = make_eval_set(
                ds, args.split, args.kind, args.per_condition, args.seed, frames
            )
    except DataError as exc:
        print(f"csn triplets: {exc}", file=sys.stderr)
        return 1
    for w in caught:
        print(f"csn triplets: warning: {w.message}", file=sys.stderr)
    meta = {
        "dataset": str(ds.root.resolve()),
        "split": args.split,
        "kind": args.kind,
        "per_condition": args.per_condition,
        "seed": args.seed,
        "segment_frames": frames,
        "sample_rate": ds.sample_rate,
        "tracks": len(ds.tracks(args.split)),
        "skipped_stems": ds.skip_summary(),
    }
    save_triplets(args.out, triplets, meta)
    counts = Counter(t.condition for t in triplets)
    per = ", ".join(f"{c} {counts.get(c, 0)}" for c in CONDITIONS)
    inter = sum(len(t.interchanged) for t in triplets)
    print(
        f"triplets: {len(triplets)} {args.kind} triplets from {meta['tracks']} {args.split} tracks "
        f"({per}; {inter} interchanged) -> {args.out}; skipped stems: {meta['skipped_stems']}"
    )
    return 0
