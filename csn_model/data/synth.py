"""`csn synth`: compose pieces and render them as a Slakh-layout multitrack dataset, offline.

Each track is a pure function of (master seed, track index, sample rate, seconds, soundfont):
its generator is seeded with SeedSequence([seed, index]) and every stem is rendered by a fresh
synth, so the output is identical across runs and across worker counts. Stems are written as
24-bit PCM (FLAC or WAV) and the mix is the exact integer sum of the quantised stems, so that
reading the files back, the stems sum to the mix exactly (as floats). A track folder is written
under a temporary name and renamed when complete: a finished folder is the completion marker, and
re-running with the same arguments skips finished tracks. The manifest csn_synth.json records
the settings: a folder without it must be empty.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
import yaml

from csn_model.data.compose import DRUM_KITS, Piece, compose
from csn_model.data.render import (
    RenderError,
    available_presets,
    check_soundfont,
    default_soundfont,
    render_notes,
)

GENERATOR_VERSION = 1  # bump when the composer or renderer changes what a seed produces
MANIFEST = "csn_synth.json"
TARGET_PEAK = 0.8  # mix peak after normalisation (Slakh also normalises its mixes)
FULL_SCALE = 2**23  # 24-bit PCM


@dataclass(frozen=True)
class SynthConfig:
    seed: int
    sample_rate: int = 22050
    seconds: float = 30.0
    soundfont: str = ""
    audio_format: str = "flac"  # flac | wav
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, validation, test
    kits: tuple[int, ...] = DRUM_KITS

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * self.sample_rate))


@dataclass
class SynthSummary:
    tracks: int
    rendered: int
    already_done: int
    mix_seconds: float  # audio seconds of the tracks rendered in this run
    stem_seconds: float  # summed over every stem of those tracks
    render_seconds: float  # seconds spent inside FluidSynth, over all workers
    cpu_seconds: float  # CPU seconds of the workers' track jobs (independent of other load)
    wall_seconds: float
    workers: int

    def line(self) -> str:
        if not self.rendered:
            return f"synth: all {self.tracks} tracks already done; nothing rendered"
        wall = max(self.wall_seconds, 1e-9)
        return (
            f"synth: {self.tracks} tracks ({self.rendered} rendered, {self.already_done} already "
            f"done), {self.mix_seconds:.0f} s of mix audio, {self.stem_seconds:.0f} s of stem "
            f"audio in {self.wall_seconds:.1f} s wall with {self.workers} worker(s): "
            f"{self.stem_seconds / wall:.0f}x real time all stems "
            f"({self.stem_seconds / wall / self.workers:.0f}x per core), "
            f"{self.mix_seconds / wall:.1f}x real time per finished track; "
            f"{self.stem_seconds / max(self.cpu_seconds, 1e-9):.0f}x per CPU-second"
        )


def split_plan(n: int, fractions: tuple[float, float, float]) -> list[str]:
    """Split of each track index: prefix-stable (adding tracks never moves earlier ones) and as
    close to the fractions as possible at every prefix."""
    names = ("train", "validation", "test")
    counts = [0, 0, 0]
    out = []
    for i in range(n):
        deficit = [fractions[k] * (i + 1) - counts[k] for k in range(3)]
        k = int(np.argmax(deficit))
        counts[k] += 1
        out.append(names[k])
    return out


def track_name(index: int) -> str:
    return f"Track{index + 1:05d}"


def synthesize(
    out: str | Path,
    tracks: int,
    seed: int,
    *,
    soundfont: str | Path | None = None,
    sample_rate: int = 22050,
    seconds: float = 30.0,
    workers: int | None = None,
    audio_format: str = "flac",
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    progress: bool = True,
    midi: bool = False,
) -> SynthSummary:
    """Render `tracks` pieces into `out` (Slakh layout). Finished tracks are skipped.

    midi: also write MIDI/Sxx.mid per stem (Slakh has them; off by default because writing
    them costs ~10% of the run and a piece is re-made exactly from its seed anyway)."""
    if tracks < 1:
        raise ValueError(f"tracks={tracks}: expected at least 1")
    if audio_format not in {"flac", "wav"}:
        raise ValueError(f"audio_format={audio_format!r}: expected 'flac' or 'wav'")
    if (
        len(split_fractions) != 3
        or abs(sum(split_fractions) - 1.0) > 1e-6
        or min(split_fractions) < 0
    ):
        raise ValueError(f"split fractions {split_fractions}: expected three shares summing to 1")
    train, validation, test = (float(f) for f in split_fractions)
    sf_path = check_soundfont(soundfont) if soundfont else default_soundfont()
    kits = available_presets(sf_path, 128, DRUM_KITS) or (0,)
    cfg = SynthConfig(
        seed=seed,
        sample_rate=sample_rate,
        seconds=float(seconds),
        soundfont=str(sf_path.resolve()),
        audio_format=audio_format,
        split_fractions=(train, validation, test),
        kits=kits,
    )
    out = Path(out)
    _check_manifest(out, cfg)
    splits = split_plan(tracks, cfg.split_fractions)
    todo = [(i, splits[i]) for i in range(tracks) if not _is_done(out, splits[i], i)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    t0 = time.perf_counter()
    results = _run_jobs(out, cfg, todo, workers, progress, midi)
    wall = time.perf_counter() - t0
    return SynthSummary(
        tracks=tracks,
        rendered=len(results),
        already_done=tracks - len(todo),
        mix_seconds=sum(r["mix_seconds"] for r in results),
        stem_seconds=sum(r["stem_seconds"] for r in results),
        render_seconds=sum(r["render_seconds"] for r in results),
        cpu_seconds=sum(r["cpu_seconds"] for r in results),
        wall_seconds=wall,
        workers=workers,
    )


def _run_jobs(out: Path, cfg: SynthConfig, todo, workers: int, progress: bool, midi: bool):
    from tqdm import tqdm  # noqa: PLC0415

    jobs = [(out, cfg, i, split, midi) for i, split in todo]
    bar = tqdm(total=len(jobs), unit="track", desc="csn synth", disable=not progress)
    results = []
    try:
        if workers == 1:
            for job in jobs:
                results.append(_render_job(job))
                bar.update()
        else:
            results = _run_pool(jobs, workers, bar)
    finally:
        bar.close()
    return results


def _run_pool(jobs, workers: int, bar) -> list[dict]:
    """The jobs on a process pool. A worker that dies (OOM killer, a crash in FluidSynth) breaks
    the pool: every track not finished by then is named in a RenderError. multiprocessing.Pool
    instead drops the dead worker's task and waits for it forever. Finished tracks are on disk, so
    a rerun resumes from them."""
    # forkserver, not fork: a fork after torch or BLAS threads started (as in a test session
    # or a training process) can deadlock the child on a lock held by another thread.
    ctx = multiprocessing.get_context("forkserver")
    results: list[dict] = []
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = {pool.submit(_render_job, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                results.append(future.result())
                bar.update()
        except BrokenProcessPool as exc:
            # a track whose folder was renamed into place is finished, reported back or not
            lost = sorted(
                track_name(index)
                for out, _cfg, index, split, _midi in futures.values()
                if not _is_done(out, split, index)
            )
            shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
            raise RenderError(
                f"a render worker process died (killed, e.g. by the out-of-memory killer, or "
                f"crashed), so {len(lost)} track(s) were not written: {shown}; "
                f"the {len(jobs) - len(lost)} track(s) finished in this run are kept: rerun the "
                "same command to render the rest (with fewer --workers if memory ran out)"
            ) from exc
        except BaseException:
            for f in futures:  # a failed track (or Ctrl-C) stops the run, as Pool's exit did
                f.cancel()
            raise
    return results


def _check_manifest(out: Path, cfg: SynthConfig) -> None:
    """A dataset folder holds tracks of one configuration only, all written by csn synth: a folder
    without the manifest must be empty, or its tracks would count as finished ones of this run."""
    path = out / MANIFEST
    if out.is_dir() and not path.exists() and any(out.iterdir()):
        raise RenderError(
            f"{out}: folder is not empty and holds no {MANIFEST}, so it is not a csn synth "
            "dataset; expected a new or empty folder (choose another --out)"
        )
    out.mkdir(parents=True, exist_ok=True)
    want = {"generator_version": GENERATOR_VERSION, **asdict(cfg)}
    want = json.loads(json.dumps(want))  # tuples -> lists, as read back
    if path.exists():
        have = json.loads(path.read_text())
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            detail = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise RenderError(
                f"{out} holds a dataset made with other settings ({detail}); "
                "choose another --out or remove it"
            )
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(want, indent=2) + "\n")
    tmp.replace(path)


def _is_done(out: Path, split: str, index: int) -> bool:
    return (out / split / track_name(index) / "metadata.yaml").is_file()


def _render_job(job) -> dict:
    out, cfg, index, split, midi = job
    cpu0 = time.process_time()
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index]))
    piece = compose(rng, cfg.seconds, cfg.kits)
    n = cfg.num_frames
    stems, presets, t_render = [], [], 0.0
    for part in piece.parts:
        t = time.perf_counter()
        audio, preset = render_notes(
            part.notes,
            program=part.program,
            bank=part.bank,
            soundfont=Path(cfg.soundfont),
            sample_rate=cfg.sample_rate,
            num_frames=n,
        )
        t_render += time.perf_counter() - t
        stems.append(audio)
        presets.append(preset)
    stack = np.stack(stems)  # (S, T) float32
    peak = float(np.abs(stack.sum(axis=0, dtype=np.float64)).max())
    gain = TARGET_PEAK / peak if peak > 0 else 1.0
    q = np.empty(stack.shape, dtype=np.int32)  # (S, T) 24-bit values
    for s, stem in enumerate(stack):
        scaled = np.rint(stem.astype(np.float64) * (gain * FULL_SCALE))
        q[s] = np.clip(scaled, -FULL_SCALE, FULL_SCALE - 1)
    mix = q.sum(axis=0, dtype=np.int64)  # (T,) exact integer sum of the quantised stems
    if np.abs(mix).max() >= FULL_SCALE:
        raise RenderError(f"{track_name(index)}: mix clips after normalisation (internal error)")
    _write_track(out, cfg, index, split, piece, q, mix, presets, gain, midi)
    return {
        "mix_seconds": n / cfg.sample_rate,
        "stem_seconds": len(stems) * n / cfg.sample_rate,
        "render_seconds": t_render,
        "cpu_seconds": time.process_time() - cpu0,
    }


def _write_pcm24(path: Path, ints: np.ndarray, sample_rate: int, fmt: str) -> None:
    # libsndfile maps int32 full scale to the file's full scale: shift the 24-bit values up.
    data = (ints.astype(np.int32) << 8)[:, None]  # (T, 1)
    sf.write(str(path), data, sample_rate, subtype="PCM_24", format=fmt.upper())


def _write_track(out, cfg, index, split, piece: Piece, q, mix, presets, gain, midi) -> None:
    name = track_name(index)
    final = out / split / name
    tmp = out / split / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)  # left over from an interrupted run
    (tmp / "stems").mkdir(parents=True)
    if midi:
        (tmp / "MIDI").mkdir()
    ext = cfg.audio_format
    stems_meta = {}
    for s, (part, preset) in enumerate(zip(piece.parts, presets)):
        sname = f"S{s:02d}"
        _write_pcm24(tmp / "stems" / f"{sname}.{ext}", q[s], cfg.sample_rate, ext)
        if midi:
            _write_midi(tmp / "MIDI" / f"{sname}.mid", part, piece.tempo)
        rms = float(np.sqrt(np.mean((q[s] / FULL_SCALE) ** 2)))
        stems_meta[sname] = {
            "audio_rendered": True,
            "inst_class": part.inst_class,
            "is_drum": part.is_drum,
            "midi_program_name": part.program_name,
            "midi_saved": midi,
            "plugin_name": f"{Path(cfg.soundfont).name}:{preset}",
            "program_num": part.program,
            # csn synth's own fields
            "bank": part.bank,
            "preset_name": preset,
            "condition": part.condition,
            "pattern": part.pattern,
            "family": part.family,
            "kit": preset if part.is_drum else None,
            "num_notes": len(part.notes),
            "rms_db": round(float(20 * np.log10(max(rms, 1e-12))), 2),
        }
    _write_pcm24(tmp / f"mix.{ext}", mix, cfg.sample_rate, ext)
    meta = _track_metadata(cfg, index, piece, gain, stems_meta)
    meta["midi_dir"] = "MIDI" if midi else None
    (tmp / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    if final.exists():
        shutil.rmtree(final)  # a folder without metadata.yaml is an unfinished one
    tmp.rename(final)


def _track_metadata(cfg: SynthConfig, index: int, piece: Piece, gain: float, stems: dict) -> dict:
    # The piece's identity, as Slakh's UUID and lmd_midi_dir name the Lakh MIDI file a track was
    # rendered from: one (seed, index) is one composition whatever the soundfont or sample rate.
    uuid = hashlib.sha1(f"csn-synth:{cfg.seed}:{index}".encode()).hexdigest()[:32]
    return {
        "UUID": uuid,
        "audio_dir": "stems",
        "lmd_midi_dir": f"csn_synth/seed{cfg.seed}/{uuid}.mid",
        "midi_dir": "MIDI",
        "normalized": True,
        "overall_gain": float(gain),
        "target_peak": TARGET_PEAK,
        "tempo": piece.tempo,
        "key": piece.key,
        "mode": piece.mode,
        "style": piece.style,
        "time_signature": "4/4",
        "swing": piece.swing,
        "form": piece.form,
        "progressions": piece.progressions,
        "synth": {
            "generator": "csn synth",
            "generator_version": GENERATOR_VERSION,
            "seed": cfg.seed,
            "track_index": index,
            "sample_rate": cfg.sample_rate,
            "seconds": cfg.seconds,
            "soundfont": Path(cfg.soundfont).name,
        },
        "stems": stems,
    }


def _write_midi(path: Path, part, tempo: float) -> None:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=part.program, is_drum=part.is_drum, name=part.pattern)
    inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end) for n in part.notes]
    pm.instruments.append(inst)
    pm.write(str(path))
