"""Read multitrack datasets in the Slakh2100 (and Slakh2100-redux) layout, unchanged.

    ROOT/{train,validation,test,omitted}/TrackXXXXX/
        metadata.yaml         per stem: inst_class, program_num, is_drum, audio_rendered, ...
        mix.flac|wav
        stems/Sxx.flac|wav    mono or multichannel, same sample rate and length as the mix

Stems map to the five conditions by General MIDI program (csn_model.data.slakh.condition_of);
several stems of one condition are summed when read. Audio is read by seeking (soundfile), never
by decoding whole files, except for the one streamed pass that measures each condition's energy
envelope (cached per track) to find silent stems and active segments.

Documented, counted skips (listed in `SlakhDataset.skipped`, never silent):
- a stem whose metadata says `audio_rendered: false` (Slakh does not render those),
- an audio file in the stems folder that metadata.yaml does not list (it is not read), and
- a stem whose audio is silent (peak below SILENCE_PEAK): its condition is absent from the track
  unless another stem of that condition plays.
Everything else that is malformed raises DataError naming the track, the stem and the expectation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import yaml

from csn_model import CONDITIONS
from csn_model.data import audio_io
from csn_model.data.audio_io import (
    AUDIO_SUFFIXES,
    ENVELOPE_HOP,
    audio_file,
    read_mono,
    stem_envelope,
)
from csn_model.data.errors import DataError

__all__ = ["DataError", "SlakhDataset", "Stem", "Track", "condition_of", "load_track"]

SPLITS: tuple[str, ...] = ("train", "validation", "test")
SILENCE_PEAK = 1e-4  # -80 dBFS: a stem whose peak stays below this is silent
ACTIVE_ABS_RMS = 1e-3  # -60 dBFS: a segment quieter than this is never "active"
ACTIVE_REL_DB = -20.0  # ... nor one more than 20 dB below the condition's RMS over the track
ACTIVE_COVERAGE = 0.15  # ... nor one where under 15% of its envelope frames reach floor - 10 dB


def condition_of(program: int | dict, is_drum: bool = False) -> str:
    """Condition of a stem from its GM program and drum flag, or from a stem metadata dict.

    Programs 0-7 piano, 24-31 guitar, 32-39 bass, drum kits drums (program 0-127, or 128 as
    Slakh2100-redux numbers them), everything else others
    (METHOD.md, a project choice).
    """
    if isinstance(program, dict):
        is_drum = bool(program.get("is_drum", False))
        program = int(program.get("program_num", 0))
    if is_drum:
        return "drums"
    if 0 <= program <= 7:
        return "piano"
    if 24 <= program <= 31:
        return "guitar"
    if 32 <= program <= 39:
        return "bass"
    return "others"


@dataclass(frozen=True)
class Stem:
    name: str  # "S00"
    path: Path
    condition: str
    program: int
    is_drum: bool
    channels: int


@dataclass(eq=False)
class Track:
    """One track folder. Reads are by seeking; analysis results are cached on the object."""

    name: str
    split: str
    path: Path
    sample_rate: int
    num_frames: int
    metadata: dict
    mix_path: Path
    stems: dict[str, tuple[Stem, ...]]  # condition -> stems (silent ones dropped by analyse())
    skip_log: list = field(default_factory=list, repr=False)  # the dataset's `skipped` list
    cache_audio: bool = False  # keep each decoded condition in memory after its first read
    _audio: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _envelopes: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _silent: tuple[str, ...] = field(default=(), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict:  # picklable for DataLoader workers (locks are not)
        state = dict(self.__dict__)
        state.pop("_lock")
        state["_audio"] = {}  # decoded audio stays in its process (fork shares it for free)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- analysis ---------------------------------------------------------------------------
    def analyse(self) -> None:
        """One streamed pass over the stems: energy envelopes per condition, silent stems."""
        with self._lock:
            if self._envelopes is not None:
                return
            envelopes: dict[str, np.ndarray] = {}
            silent: list[str] = []
            audible: dict[str, list[Stem]] = {}
            for cond, stems in self.stems.items():
                for stem in stems:
                    env, peak = stem_envelope(stem.path, self.num_frames, self.name, stem.name)
                    if peak < SILENCE_PEAK:
                        silent.append(stem.name)
                        self.skip_log.append((self.name, stem.name, "silent audio"))
                        continue
                    audible.setdefault(cond, []).append(stem)
                    # Energy of a sum ~ sum of energies for unrelated parts: good enough here.
                    envelopes[cond] = envelopes[cond] + env if cond in envelopes else env
            self.stems = {c: tuple(s) for c, s in audible.items()}
            self._silent = tuple(silent)
            self._envelopes = envelopes

    def _analysed_envelopes(self) -> dict[str, np.ndarray]:
        self.analyse()
        if self._envelopes is None:
            raise DataError(f"{self.name}: no envelopes after analyse()")
        return self._envelopes

    @property
    def silent_stems(self) -> tuple[str, ...]:
        self.analyse()
        return self._silent

    @property
    def conditions(self) -> tuple[str, ...]:
        self.analyse()
        return tuple(c for c in CONDITIONS if c in self._analysed_envelopes())

    def programs(self, condition: str) -> list[int]:
        """GM programs (drums: the kit's program) of the audible stems of a condition."""
        self.analyse()
        return [s.program for s in self.stems.get(condition, ())]

    def active_segments(self, condition: str, num_frames: int, hop: int) -> np.ndarray:
        """Start frames (multiples of hop) of segments where the condition is audible: the
        segment's RMS reaches max(-60 dBFS, the condition's track RMS - 20 dB) and at least 15%
        of its 1024-frame envelope frames reach that floor - 10 dB (notes and their decays)."""
        env = self._analysed_envelopes().get(condition)
        if env is None or num_frames > self.num_frames:
            return np.zeros(0, dtype=np.int64)
        starts = np.arange(0, self.num_frames - num_frames + 1, hop, dtype=np.int64)
        # Mean square over the envelope frames that each segment covers (cumulative sums).
        track_ms = float(env.mean())
        floor = max(ACTIVE_ABS_RMS**2, track_ms * 10 ** (ACTIVE_REL_DB / 10))
        csum = np.concatenate([[0.0], np.cumsum(env)])
        loud = np.concatenate([[0], np.cumsum(env >= floor / 10)])  # decays count
        first = starts // ENVELOPE_HOP
        last = np.minimum((starts + num_frames) // ENVELOPE_HOP, len(env))
        count = np.maximum(last - first, 1)
        ms = (csum[last] - csum[first]) / count
        coverage = (loud[last] - loud[first]) / count
        return starts[(ms >= floor) & (coverage >= ACTIVE_COVERAGE)]

    # -- reading ----------------------------------------------------------------------------
    def read_condition(self, condition: str, start: int, num_frames: int) -> np.ndarray:
        """Sum of the condition's stems over [start, start+num_frames), zeros if absent. (T,)"""
        self._check_range(start, num_frames)
        if self.cache_audio:
            return self._decoded(condition)[start : start + num_frames].copy()
        out = np.zeros(num_frames, dtype=np.float32)
        for stem in self.stems.get(condition, ()):
            out += read_mono(stem.path, start, num_frames, self.name, stem.name)
        return out

    def read_mix(self, start: int, num_frames: int) -> np.ndarray:
        self._check_range(start, num_frames)
        if self.cache_audio:
            return self._decoded("mix")[start : start + num_frames].copy()
        return read_mono(self.mix_path, start, num_frames, self.name, "mix")

    def _decoded(self, what: str) -> np.ndarray:
        """A whole condition (or the mix) decoded once: the opt-in in-memory cache. (T,)"""
        if what not in self._audio:
            self.cache_audio = False  # read through the seeking path, once
            try:
                if what == "mix":
                    self._audio[what] = self.read_mix(0, self.num_frames)
                else:
                    self._audio[what] = self.read_condition(what, 0, self.num_frames)
            finally:
                self.cache_audio = True
        return self._audio[what]

    def _check_range(self, start: int, num_frames: int) -> None:
        if start < 0 or num_frames < 0 or start + num_frames > self.num_frames:
            raise DataError(
                f"{self.path}: read of frames [{start}, {start + num_frames}) is outside the "
                f"track's {self.num_frames} frames"
            )


class SlakhDataset:
    """A Slakh-layout dataset root. Splits are scanned lazily, once each."""

    def __init__(self, root: str | Path, cache_audio: bool = False):
        """cache_audio: keep every condition a read touches decoded in memory (about 5.3 MB per
        condition-minute at 22050 Hz; for small datasets and fast training loaders). Call
        preload(split) before forking DataLoader workers so that they share one copy."""
        self.root = Path(root)
        self.cache_audio = cache_audio
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset root is not a directory")
        present = [s for s in SPLITS if (self.root / s).is_dir()]
        if not present:
            raise DataError(
                f"{self.root}: no split folder found; expected at least one of "
                f"{', '.join(s + '/' for s in SPLITS)}"
            )
        self.splits: tuple[str, ...] = tuple(present)
        self.skipped: list[tuple[str, str, str]] = []  # (track, stem, reason): documented skips
        self._tracks: dict[str, list[Track]] = {}
        self._by_name: dict[str, Track] = {}
        self._sample_rate: int | None = None

    def __repr__(self) -> str:
        return f"SlakhDataset({str(self.root)!r})"

    @property
    def sample_rate(self) -> int:
        for split in self.splits:
            self.tracks(split)
        if self._sample_rate is None:  # every split holds a track, or tracks() raised
            raise DataError(f"{self.root}: no track to take the sample rate from")
        return self._sample_rate

    def tracks(self, split: str) -> list[Track]:
        if split not in SPLITS:
            raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
        if split not in self._tracks:
            folder = self.root / split
            if not folder.is_dir():
                raise DataError(f"{folder}: split folder missing")
            dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            tracks = [self._load_track(split, d) for d in dirs]
            if not tracks:
                raise DataError(f"{folder}: empty split, expected track folders with metadata.yaml")
            self._tracks[split] = tracks
        return self._tracks[split]

    def preload(self, split: str) -> None:
        """Decode every condition of the split's tracks into the cache (needs cache_audio)."""
        if not self.cache_audio:
            raise DataError(f"{self.root}: preload needs SlakhDataset(..., cache_audio=True)")
        for track in self.tracks(split):
            for condition in track.conditions:
                track._decoded(condition)

    def track(self, name: str) -> Track:
        """A track by name, from any split (names are unique across a Slakh dataset)."""
        if name not in self._by_name:
            for split in self.splits:
                self.tracks(split)
        try:
            return self._by_name[name]
        except KeyError:
            raise DataError(f"{self.root}: no track named {name!r} in any split") from None

    def skip_summary(self) -> str:
        counts: dict[str, int] = {}
        for _track, _stem, reason in self.skipped:
            counts[reason] = counts.get(reason, 0) + 1
        return ", ".join(f"{n} stems skipped: {r}" for r, n in sorted(counts.items())) or "none"

    def _load_track(self, split: str, folder: Path) -> Track:
        track = load_track(split, folder, self.skipped)
        track.cache_audio = self.cache_audio
        if self._sample_rate is None:
            self._sample_rate = track.sample_rate
        elif track.sample_rate != self._sample_rate:
            raise DataError(
                f"{track.mix_path}: sample rate {track.sample_rate} Hz; expected "
                f"{self._sample_rate} Hz like the rest of the dataset"
            )
        if track.name in self._by_name:
            raise DataError(
                f"{folder}: track name {track.name} also in {self._by_name[track.name].path}"
            )
        self._by_name[track.name] = track
        return track


def _read_metadata(folder: Path) -> dict:
    meta_path = folder / "metadata.yaml"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing; every Slakh track folder needs metadata.yaml")
    try:
        text = meta_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{meta_path}: cannot read as UTF-8 text: {exc}") from exc
    try:
        meta = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise DataError(f"{meta_path}: not valid YAML: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("stems"), dict) or not meta["stems"]:
        raise DataError(
            f"{meta_path}: field 'stems' missing or empty; expected a mapping Sxx -> stem"
        )
    return meta


def load_track(split: str, folder: Path, skipped: list | None = None) -> Track:
    """Parse one track folder and check its audio headers (no audio decoded)."""
    skipped = skipped if skipped is not None else []
    meta = _read_metadata(folder)
    meta_path = folder / "metadata.yaml"
    mix_path = audio_file(folder, "mix")
    if mix_path is None:
        raise DataError(f"{folder}: mix.flac or mix.wav missing")
    mix = audio_io.info(mix_path, folder.name, "mix")
    audio_dir = _audio_dir(folder, meta_path, meta)
    by_cond: dict[str, list[Stem]] = {}
    for name, sm in meta["stems"].items():
        if not isinstance(sm, dict):
            raise DataError(f"{meta_path}: stems.{name} is not a mapping")
        if sm.get("audio_rendered", True) is False:
            skipped.append((folder.name, str(name), "audio_rendered: false"))
            continue
        stem = _load_stem(folder, meta_path, audio_dir, str(name), sm, mix)
        by_cond.setdefault(stem.condition, []).append(stem)
    if not by_cond:
        raise DataError(f"{meta_path}: no stem has rendered audio; expected at least one")
    listed = {str(n) for n in meta["stems"]}
    for extra in sorted(audio_dir.glob("*")) if audio_dir.is_dir() else ():
        if extra.suffix.lower() in AUDIO_SUFFIXES and extra.stem not in listed:
            skipped.append((folder.name, extra.stem, "audio file not listed in metadata.yaml"))
    return Track(
        name=folder.name,
        split=split,
        path=folder,
        sample_rate=int(mix.samplerate),
        num_frames=int(mix.frames),
        metadata=meta,
        mix_path=mix_path,
        stems={c: tuple(by_cond[c]) for c in CONDITIONS if c in by_cond},
        skip_log=skipped,
    )


def _audio_dir(folder: Path, meta_path: Path, meta: dict) -> Path:
    """The track's stems folder: metadata's audio_dir ("stems" in Slakh), which must stay inside
    the track folder (an absolute path or ".." would read, list and serve files elsewhere)."""
    value = str(meta.get("audio_dir") or "stems")
    rel = PurePosixPath(value)
    if rel.is_absolute() or ".." in rel.parts:
        raise DataError(
            f"{meta_path}: audio_dir={value!r}; expected a folder inside the track folder, "
            "relative and without '..' (Slakh's is 'stems')"
        )
    return folder / rel


def _load_stem(folder, meta_path, audio_dir, name, sm, mix) -> Stem:
    for key, kind in (("program_num", int), ("is_drum", bool)):
        if key not in sm or not isinstance(sm[key], kind):
            raise DataError(f"{meta_path}: stems.{name}.{key} missing; expected {kind.__name__}")
    path = audio_file(audio_dir, name)
    if path is None:
        raise DataError(
            f"{meta_path}: stem {name} of {folder.name} is listed with audio_rendered true but "
            f"{audio_dir / name}.flac|.wav does not exist"
        )
    info = audio_io.info(path, folder.name, f"stem {name}")
    if info.samplerate != mix.samplerate:
        raise DataError(
            f"{path}: stem {name} of {folder.name} has sample rate {info.samplerate} Hz; "
            f"expected {mix.samplerate} Hz like the mix"
        )
    if info.frames != mix.frames:
        raise DataError(
            f"{path}: stem {name} of {folder.name} has {info.frames} frames; "
            f"expected {mix.frames} like the mix"
        )
    program = int(sm["program_num"])
    # Slakh2100-redux numbers drum stems 128 (midi_program_name "Drums"); other renderings 0-127.
    if not 0 <= program <= (128 if sm["is_drum"] else 127):
        raise DataError(
            f"{meta_path}: stems.{name}.program_num={program}; expected 0-127 (128 only for drums)"
        )
    return Stem(
        name=name,
        path=path,
        condition=condition_of(program, sm["is_drum"]),
        program=program,
        is_drum=bool(sm["is_drum"]),
        channels=int(info.channels),
    )
