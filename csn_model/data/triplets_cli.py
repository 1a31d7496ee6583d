"""`csn triplets`: sample a fixed, seeded evaluation triplet set and save it as JSON."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter

from csn_model import CONDITIONS
from csn_model.cli import (
    add_duplicates_argument,
    non_negative_int,
    out_file_in_tree,
    positive_float,
    positive_int,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="Slakh-layout dataset root")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--kind", default="pseudo", choices=("pseudo", "natural"))
    parser.add_argument(
        "--per-condition", type=positive_int, default=200, help="triplets per condition"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--segment-seconds", type=positive_float, default=3.0, help="segment length"
    )
    parser.add_argument("--out", type=out_file_in_tree, required=True, help="JSON file to write")
    add_duplicates_argument(parser, default="refuse")


def run(args: argparse.Namespace) -> int:
    from csn_model.data.slakh import DataError, SlakhDataset  # noqa: PLC0415
    from csn_model.data.triplets import (  # noqa: PLC0415
        make_eval_set,
        no_triplets_reason,
        save_triplets,
    )

    try:
        ds = SlakhDataset(args.data, duplicates=args.duplicates)
        ds.check_sources()
        if ds.omitted:
            print(f"csn triplets: {ds.omit_summary()}")
        frames = int(round(args.segment_seconds * ds.sample_rate))
        if frames < 1:
            raise DataError(
                f"--segment-seconds {args.segment_seconds:g}: under one sample at "
                f"{ds.sample_rate} Hz; expected a segment of at least one sample"
            )
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
    meta = _meta(args, ds, frames)
    if not triplets:  # an empty set would score nothing and read as a finished one
        reason = no_triplets_reason(ds, args.split, args.kind, frames, "--segment-seconds")
        print(f"csn triplets: {reason}; nothing written", file=sys.stderr)
        return 1
    try:
        save_triplets(args.out, triplets, meta)
    except OSError as exc:
        print(f"csn triplets: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    counts = Counter(t.condition for t in triplets)
    per = ", ".join(f"{c} {counts.get(c, 0)}" for c in CONDITIONS)
    inter = sum(len(t.interchanged) for t in triplets)
    print(
        f"triplets: {len(triplets)} {args.kind} triplets from {meta['tracks']} {args.split} tracks "
        f"({per}; {inter} interchanged) -> {args.out}; skipped stems: {meta['skipped_stems']}"
    )
    return 0


def _meta(args: argparse.Namespace, ds, frames: int) -> dict:
    return {
        "dataset": str(ds.root.resolve()),
        "fingerprint": ds.fingerprint,  # csn_model.data.fingerprint: the content it was made from
        "split": args.split,
        "kind": args.kind,
        "per_condition": args.per_condition,
        "seed": args.seed,
        "segment_frames": frames,
        "sample_rate": ds.sample_rate,
        "tracks": len(ds.tracks(args.split)),
        "skipped_stems": ds.skip_summary(args.split),  # analysed above: silent stems included
    }
