"""`csn embed`: embed audio files with a checkpoint; prints JSON or writes .npy / .json."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="audio files (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="file.npy (N, D float32) or file.json")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=64)


def run(args) -> int:
    import numpy as np

    from csn_model.checkpoint import CheckpointError
    from csn_model.inference import Embedder, EmbedError

    if args.out is not None and args.out.suffix not in (".npy", ".json"):
        print(f"csn embed: error: --out {args.out}: expected a .npy or .json file", file=sys.stderr)
        return 2
    try:
        emb = Embedder.from_checkpoint(args.checkpoint, args.device, args.batch_size)
        vectors = emb.embed_files(args.files)
    except (CheckpointError, EmbedError) as exc:
        print(f"csn embed: error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None and args.out.suffix == ".npy":
        np.save(args.out, vectors)
        print(f"{args.out}: {vectors.shape[0]} x {vectors.shape[1]} float32", file=sys.stderr)
        return 0
    doc = {"checkpoint_id": emb.checkpoint_id, "conditions": list(emb.conditions)}
    if emb.subspace_masks is not None:  # learned masks: no slice describes a subspace
        doc["subspace_masks"] = {c: m.tolist() for c, m in emb.subspace_masks.items()}
    else:
        doc["subspace_slices"] = {c: [s.start, s.stop] for c, s in emb.subspace_slices.items()}
    doc["files"] = [str(p) for p in args.files]
    doc["embeddings"] = vectors.tolist()
    text = json.dumps(doc)
    if args.out is not None:
        args.out.write_text(text)
    else:
        print(text)
    return 0
