"""`csn bench-data`: how fast data is made and read, against references measured in the same run.

1. Synthesis: `csn synth`'s whole pipeline (compose, render every stem with a fresh synth, write
   FLAC, MIDI, metadata) in stem-audio seconds per wall second per core, next to the raw
   FluidSynth render of one stem (the reference: what the synthesiser alone does on this core).
2. Loading: pseudo-mix triplets per second read from disk by TripletTorchDataset (3 mixtures with
   their 5 clean condition stems each), in one process and through a DataLoader with workers,
   next to the reference of reading one condition segment.
Figures only: nothing here asserts a speed.

--keep DIR writes the datasets to DIR/w1 and DIR/wN (N = --workers) instead of a temporary folder.
DIR must be new, empty, or an earlier --keep folder of this command (it holds KEEP_MARKER); each
run replaces DIR/w1 and DIR/wN, and nothing outside DIR is ever written or removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

KEEP_MARKER = "csn_bench_data.json"  # marks a --keep folder as this command's own


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracks",
        type=_tracks,
        default=4,
        help="tracks to synthesise (at least 4: the loading "
        "part draws pseudo triplets from the training split)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each track")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="synth/loader")
    parser.add_argument("--items", type=int, default=200, help="triplets to load per setting")
    parser.add_argument("--segment-seconds", type=float, default=3.0)
    parser.add_argument("--soundfont", help="default: as `csn synth`")
    parser.add_argument("--format", choices=("flac", "wav"), default="flac", dest="audio_format")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="write the datasets to DIR/w1 and DIR/wN instead of a temporary folder (DIR: new, "
        "empty or an earlier --keep folder; its w1 and wN are replaced)",
    )


def _tracks(text: str) -> int:
    """--tracks: refused at parsing, before anything is synthesised, when the training split of
    that many tracks is too small for the pseudo triplets the loading part draws."""
    from csn_model.data.synth import SynthConfig, split_plan  # noqa: PLC0415
    from csn_model.data.triplets import MIN_TRACKS  # noqa: PLC0415

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    fractions = SynthConfig(seed=0).split_fractions  # the split bench-data synthesises
    need = MIN_TRACKS["pseudo"]
    train = split_plan(max(n, 0), fractions).count("train")
    if train < need:
        least = next(m for m in range(1, 100) if split_plan(m, fractions).count("train") >= need)
        raise argparse.ArgumentTypeError(
            f"{n} tracks give {train} training tracks; pseudo triplets need {need}, so expected "
            f"at least {least} tracks"
        )
    return n


def run(args: argparse.Namespace) -> int:
    if args.keep:
        try:
            _claim_keep_folder(Path(args.keep))
        except ValueError as exc:
            print(f"csn bench-data: {exc}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="csn-bench-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp) / "data"
        ref_wall, ref_cpu = _reference_render(args)
        print(
            f"reference: raw FluidSynth render of one stem (median over one piece's stems): "
            f"{ref_wall:.0f}x real time per wall second, {ref_cpu:.0f}x per CPU-second"
        )
        for workers in sorted({1, args.workers}):
            s = _synth(args, root / f"w{workers}", workers)
            per_core = s.stem_seconds / s.wall_seconds / workers
            per_cpu = s.stem_seconds / s.cpu_seconds
            print(
                f"synth ({workers} worker(s)): {s.tracks} tracks x {args.seconds:g} s, "
                f"{s.stem_seconds:.0f} s of stems in {s.wall_seconds:.2f} s wall: "
                f"{per_core:.0f}x real time per core ({per_core / ref_wall:.2f} of the reference), "
                f"{per_cpu:.0f}x per CPU-second ({per_cpu / ref_cpu:.2f} of the reference); "
                f"target >= 400x per core, all stems"
            )
        _bench_loading(args, root / "w1")
    return 0


def _claim_keep_folder(root: Path) -> None:
    """Make `root` this command's own folder, or refuse it (ValueError) when it holds anything
    else: the datasets under it are deleted and rewritten on every run."""
    if root.exists() and not root.is_dir():
        raise ValueError(
            f"--keep {root}: not a folder; expected a new, empty or earlier --keep one"
        )
    if root.is_dir() and any(root.iterdir()) and not (root / KEEP_MARKER).is_file():
        raise ValueError(
            f"--keep {root}: folder is not empty and holds no {KEEP_MARKER}, so it is not an "
            "earlier --keep folder of csn bench-data; expected a new or empty folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / KEEP_MARKER).write_text(json.dumps({"written_by": "csn bench-data"}) + "\n")


def _reference_render(args) -> tuple[float, float]:
    import numpy as np  # noqa: PLC0415

    from csn_model.data.compose import compose  # noqa: PLC0415
    from csn_model.data.render import check_soundfont, default_soundfont, render_notes  # noqa: PLC0415

    sf = check_soundfont(args.soundfont) if args.soundfont else default_soundfont()
    piece = compose(np.random.default_rng(0), args.seconds)
    n = int(args.seconds * 22050)
    wall, cpu = [], []
    for part in piece.parts:  # every stem of one piece, a fresh synth each
        t, c = time.perf_counter(), time.process_time()
        render_notes(part.notes, program=part.program, bank=part.bank, soundfont=sf,
                     sample_rate=22050, num_frames=n)  # fmt: skip
        wall.append(args.seconds / (time.perf_counter() - t))
        cpu.append(args.seconds / max(time.process_time() - c, 1e-9))
    return float(np.median(wall)), float(np.median(cpu))


def _synth(args, out: Path, workers: int):
    from csn_model.data.synth import synthesize  # noqa: PLC0415

    if out.exists():  # inside a temporary or claimed --keep folder: this command's own output
        shutil.rmtree(out)
    return synthesize(out, args.tracks, 0, soundfont=args.soundfont, seconds=args.seconds,
                      workers=workers, audio_format=args.audio_format, progress=False)  # fmt: skip


def _bench_loading(args, root: Path) -> None:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from csn_model.data.slakh import SlakhDataset  # noqa: PLC0415
    from csn_model.data.torch_data import TripletTorchDataset  # noqa: PLC0415
    from csn_model.data.triplets import TripletSampler  # noqa: PLC0415

    ds = SlakhDataset(root)
    frames = int(args.segment_seconds * ds.sample_rate)
    split = max(ds.splits, key=lambda s: len(ds.tracks(s)))
    sampler = TripletSampler(ds, split, frames, seed=0)
    track = ds.tracks(split)[0]
    starts = np.random.default_rng(0).integers(0, track.num_frames - frames, size=50)
    t = time.perf_counter()
    for i, start in enumerate(starts):
        track.read_condition(track.conditions[i % len(track.conditions)], int(start), frames)
    ref = len(starts) / (time.perf_counter() - t)
    print(f"reference: one condition segment ({args.segment_seconds:g} s, random offset) read "
          f"by seeking: {ref:.0f}/s")  # fmt: skip
    data = TripletTorchDataset(sampler, length=args.items)
    t = time.perf_counter()
    for i in range(args.items):
        data[i]
    single = args.items / (time.perf_counter() - t)
    print(f"triplets ({args.segment_seconds:g} s segments, mixes + 5 stems each), 1 process: "
          f"{single:.0f} triplets/s ({single / ref:.3f} of the reference read rate)")  # fmt: skip
    cached = SlakhDataset(root, cache_audio=True)
    cached.preload(split)
    fast = TripletTorchDataset(TripletSampler(cached, split, frames, seed=0), length=args.items)
    t = time.perf_counter()
    for i in range(args.items):
        fast[i]
    mem = args.items / (time.perf_counter() - t)
    print(f"triplets, SlakhDataset(cache_audio=True) after preload: {mem:.0f} triplets/s "
          f"({mem / single:.1f}x reading from disk)")  # fmt: skip
    loader = torch.utils.data.DataLoader(data, batch_size=8, num_workers=args.workers)
    t = time.perf_counter()
    for _batch in loader:
        pass
    multi = args.items / (time.perf_counter() - t)
    print(f"triplets, DataLoader with {args.workers} workers: {multi:.0f} triplets/s "
          f"({multi / single:.2f}x one process, worker start-up included)")  # fmt: skip
