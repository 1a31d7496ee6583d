"""One Slakh track in memory: the Track of its Stems, built by csn_model.data.slakh_folder.

A Track reads by seeking (soundfile), never by decoding whole files, except for the one streamed
pass (analyse) that measures each condition's energy envelope to find silent stems and active
segments, both above csn_model.silence's 20 Hz high-pass (a stem is silent by that module's rule,
the catalogue's and `csn embed`'s: its peak above 20 Hz stays below -60 dBFS, so a constant offset
is silent and never makes a segment active); with cache_audio it keeps each decoded condition in
memory after its first read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from csn_model import CONDITIONS
from csn_model.data.audio_io import ENVELOPE_HOP, read_mono, stem_envelope
from csn_model.data.errors import DataError
from csn_model.silence import is_silent

__all__ = ["Stem", "Track"]

SILENT_REASON = "silent audio"  # in SlakhDataset.skipped; silence as csn_model.silence judges it
ACTIVE_ABS_RMS = 1e-3  # -60 dBFS: a segment quieter than this is never "active"
ACTIVE_REL_DB = -20.0  # ... nor one more than 20 dB below the condition's RMS over the track
ACTIVE_COVERAGE = 0.15  # ... nor one where under 15% of its envelope frames reach floor - 10 dB


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
                    if is_silent(peak):
                        silent.append(stem.name)
                        self.skip_log.append((self.name, stem.name, SILENT_REASON))
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
