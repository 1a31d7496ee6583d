"""`csn embed`: embed audio files with a checkpoint; prints JSON or writes .npy / .json."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from csn_model.cli import out_file, positive_int


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda or cuda:N")
    return text


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="audio files (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=out_file, help="file.npy (N, D float32) or file.json")
    parser.add_argument("--device", type=_device, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=positive_int, default=64)


def run(args) -> int:
    import numpy as np
    import torch

    from csn_model.checkpoint import CheckpointError
    from csn_model.inference import Embedder, EmbedError

    if args.out is not None and args.out.suffix not in (".npy", ".json"):
        print(f"csn embed: error: --out {args.out}: expected a .npy or .json file", file=sys.stderr)
        return 2
    if args.device and args.device != "cpu" and not torch.cuda.is_available():
        print(f"csn embed: error: --device {args.device}: no CUDA device here", file=sys.stderr)
        return 2
    try:
        emb = Embedder.from_checkpoint(args.checkpoint, args.device, args.batch_size)
        vectors = emb.embed_files(args.files)
    except (CheckpointError, EmbedError, OSError) as exc:  # OSError: an input file unreadable
        print(f"csn embed: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.out is not None and args.out.suffix == ".npy":
            np.save(args.out, vectors)
            print(f"{args.out}: {vectors.shape[0]} x {vectors.shape[1]} float32", file=sys.stderr)
        elif args.out is not None:
            args.out.write_text(_document(emb, args.files, vectors))
        else:
            print(_document(emb, args.files, vectors))
    except OSError as exc:  # e.g. a folder made unwritable while embedding
        print(f"csn embed: error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    return 0


def _document(emb, files: list[Path], vectors) -> str:
    doc = {"checkpoint_id": emb.checkpoint_id, "conditions": list(emb.conditions)}
    if emb.subspace_masks is not None:  # learned masks: no slice describes a subspace
        doc["subspace_masks"] = {c: m.tolist() for c, m in emb.subspace_masks.items()}
    else:
        doc["subspace_slices"] = {c: [s.start, s.stop] for c, s in emb.subspace_slices.items()}
    doc["files"] = [str(p) for p in files]
    doc["embeddings"] = vectors.tolist()
    return json.dumps(doc)
