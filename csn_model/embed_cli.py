"""`csn embed`: embed audio files with a checkpoint; prints JSON or writes .npy / .json.

Exit status: 0 every file embedded; 2 nothing written (bad arguments, checkpoint or device, or
the output could not be written); 3 some files could not be embedded: each is named on stderr,
one line each, the others' embeddings are written, and JSON output lists them under "failed".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from csn_model.cli import out_file, positive_int
from csn_model.loudness import DEFAULT_TARGET_LUFS, LOUDNESS_TARGET_LUFS

EXIT_USAGE = 2  # argparse's status for bad arguments; also a checkpoint, device or output error
EXIT_FILES_FAILED = 3  # distinct, so that a pipeline notices the files that are missing


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda or cuda:N")
    return text


def _lufs(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    lo, hi = LOUDNESS_TARGET_LUFS
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a loudness from {lo:g} to {hi:g}")
    return value


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="audio files (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=out_file, help="file.npy (N, D float32) or file.json")
    parser.add_argument("--device", type=_device, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    level = parser.add_mutually_exclusive_group()
    level.add_argument(
        "--target-lufs",
        type=_lufs,
        default=DEFAULT_TARGET_LUFS,
        help="bring each file to this loudness (BS.1770 LUFS as played, peaks under -1 dBFS) "
        "before embedding, as the site does; the vectors are the site's when this is the level "
        "the site catalogue is stored at (its search answer's catalogue_lufs; default "
        f"{DEFAULT_TARGET_LUFS:g}, the site's default)",
    )
    level.add_argument(
        "--no-level",
        dest="target_lufs",
        action="store_const",
        const=None,
        help="embed each file at the level it arrives (the vectors then depend on its loudness "
        "and differ from the site's)",
    )
    parser.epilog = (
        "A file that cannot be embedded (undecodable, NaN or infinite samples, silent, empty, "
        "unreadable) is named on stderr with its reason; the other files are embedded and "
        "written (JSON lists the failures under 'failed'). Exit status: 0 all embedded, "
        f"{EXIT_FILES_FAILED} some files failed, {EXIT_USAGE} nothing written (arguments, "
        "checkpoint, device or output error). A file with more channels than the site takes "
        "(1-2) is levelled on its mono mix. A file of any length is embedded as the mean of "
        "all its consecutive training-length segments (3 s by default); the site takes clips "
        "and queries of 0.5-120 s only."
    )


def run(args) -> int:
    import numpy as np

    from csn_model.checkpoint import CheckpointError
    from csn_model.inference import Embedder, check_device

    if args.out is not None and args.out.suffix not in (".npy", ".json"):
        return _error(f"--out {args.out}: expected a .npy or .json file")
    try:
        check_device(args.device)
    except ValueError as exc:
        return _error(f"--{exc}")  # "--device 'cuda': ..."
    try:
        emb = Embedder.from_checkpoint(
            args.checkpoint, args.device, args.batch_size, args.target_lufs
        )
    except (CheckpointError, OSError) as exc:
        return _error(str(exc))
    result = emb.try_embed_files(args.files)
    for failure in result.failed:
        print(f"csn embed: error: {failure.path}: {failure.reason}", file=sys.stderr)
    vectors = result.vectors
    try:
        if args.out is not None and args.out.suffix == ".npy":
            np.save(args.out, vectors)
            print(f"{args.out}: {vectors.shape[0]} x {vectors.shape[1]} float32", file=sys.stderr)
        elif args.out is not None:
            args.out.write_text(_document(emb, result))
        else:
            print(_document(emb, result), flush=True)  # flush: a write error is raised here
    except OSError as exc:  # a full disk, a closed pipe, a folder made unwritable meanwhile
        if args.out is None:
            _discard_stdout()
        return _error(f"cannot write {args.out or 'the JSON to stdout'}: {exc}")
    if result.failed:
        print(
            f"csn embed: {len(result.files)} of {len(args.files)} files embedded, "
            f"{len(result.failed)} failed (exit status {EXIT_FILES_FAILED})",
            file=sys.stderr,
        )
        return EXIT_FILES_FAILED
    return 0


def _error(message: str) -> int:
    print(f"csn embed: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what it still buffers at exit does not raise
    the same error again as an 'Exception ignored' traceback."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a test's stdout)
        pass


def _document(emb, result) -> str:
    doc = {"checkpoint_id": emb.checkpoint_id, "conditions": list(emb.conditions)}
    doc["target_lufs"] = emb.target_lufs  # None: embedded at the level each file arrived
    if emb.subspace_masks is not None:  # learned masks: no slice describes a subspace
        doc["subspace_masks"] = {c: m.tolist() for c, m in emb.subspace_masks.items()}
    else:
        doc["subspace_slices"] = {c: [s.start, s.stop] for c, s in emb.subspace_slices.items()}
    doc["files"] = [str(p) for p in result.files]  # the files embedded, in input order
    doc["embeddings"] = result.vectors.tolist()
    doc["failed"] = [{"file": str(f.path), "reason": f.reason} for f in result.failed]
    return json.dumps(doc)
