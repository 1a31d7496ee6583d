"""Offline FluidSynth rendering of one stem's note list to mono float audio.

A fresh synth per stem: reusing a synth makes a stem depend on what was rendered before it (block
phase, voice state), while a fresh one is byte-for-byte deterministic across runs and processes.
Float output comes from the C function `fluid_synth_write_float` through ctypes (pyfluidsynth's
`get_samples()` returns dithered 16-bit values). Reverb and chorus are off: stems stay dry and
stateless, and the mix is defined as the sum of the stems, as in Slakh.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
INSTALL_HINT = "apt-get install fluidsynth fluid-soundfont-gm"
SYNTH_GAIN = 0.5
BLOCK = 4096  # frames rendered per C call between events
FLUID_WARN = 2  # fluid_log_level


class RenderError(RuntimeError):
    """FluidSynth or a soundfont is missing or unusable; the message says what to install."""


@dataclass(frozen=True)
class Note:
    start: float  # seconds
    end: float  # seconds
    pitch: int  # MIDI key
    velocity: int  # 1-127


def fluidsynth_module():
    """Import pyfluidsynth, turning a missing libfluidsynth into an actionable error."""
    try:
        import fluidsynth  # noqa: PLC0415 - import only when rendering
    except (ImportError, OSError) as exc:
        raise RenderError(
            f"libfluidsynth could not be loaded ({exc}); install it with `{INSTALL_HINT}`"
        ) from exc
    if not hasattr(fluidsynth, "_fl"):
        raise RenderError(f"pyfluidsynth found no libfluidsynth; install it with `{INSTALL_HINT}`")
    lib = fluidsynth._fl
    vp, i = ctypes.c_void_p, ctypes.c_int
    _declare(lib.fluid_synth_write_float, i, [vp, i, vp, i, i, vp, i, i])
    _declare(lib.fluid_synth_add_sfont, i, [vp, vp])
    _declare(lib.fluid_synth_remove_sfont, i, [vp, vp])
    _declare(lib.fluid_synth_get_sfont_by_id, vp, [vp, i])
    _declare(lib.fluid_set_log_function, vp, [i, vp, vp])
    return fluidsynth


def _declare(fn, restype, argtypes) -> None:
    """ctypes prototypes: without them, 64-bit pointers are truncated to int."""
    fn.restype, fn.argtypes = restype, argtypes


def default_soundfont() -> Path:
    """Debian's FluidR3_GM, else the TimGM6mb.sf2 that ships inside the pretty_midi wheel."""
    if DEBIAN_SOUNDFONT.is_file():
        return DEBIAN_SOUNDFONT
    import pretty_midi  # noqa: PLC0415

    fallback = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if fallback.is_file():
        return fallback
    raise RenderError(f"no General MIDI soundfont found; install one with `{INSTALL_HINT}`")


def check_soundfont(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise RenderError(f"--soundfont {p}: file not found; expected an .sf2 or .sf3 soundfont")
    if p.suffix.lower() not in {".sf2", ".sf3"}:
        raise RenderError(f"--soundfont {p}: expected a .sf2 or .sf3 file")
    return p


def render_notes(
    notes: list[Note],
    *,
    program: int,
    bank: int,
    soundfont: Path,
    sample_rate: int,
    num_frames: int,
    share_soundfont: bool = True,
) -> tuple[np.ndarray, str]:
    """Render notes on channel 0 (channel 9 for bank 128 kits) to mono float32 audio.

    The synth is always fresh. With share_soundfont, the parsed soundfont is loaded once per
    process and lent to each fresh synth; the output is bit-identical to a synth that loads the
    file itself (test_render.py), without the 20-250 ms of each load. (Keeping all samples
    resident instead of loading them dynamically is faster but changes ~0.2% of the samples by
    up to 3e-5: not done.)
    Returns the audio (T,) and the soundfont's name for the preset used.
    """
    fs = fluidsynth_module()
    lib = fs._fl
    synth = fs.Synth(gain=SYNTH_GAIN, samplerate=float(sample_rate), channels=16)
    lent = None
    try:
        synth.setting("synth.reverb.active", 0)
        synth.setting("synth.chorus.active", 0)
        # Load only the samples of presets in use: FluidR3 is 148 MB, one stem needs a few.
        synth.setting("synth.dynamic-sample-loading", 1)
        if share_soundfont:
            lender = _lender(fs, soundfont)
            lender.pin(bank, program)
            lent = lender.sfont
            sfid = lib.fluid_synth_add_sfont(synth.synth, lent)
        else:
            sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise RenderError(f"{soundfont}: FluidSynth could not load this soundfont")
        chan = 9 if bank == 128 else 0
        preset = synth.sfpreset_name(sfid, bank, program)
        if preset is None or synth.program_select(chan, sfid, bank, program) != 0:
            raise RenderError(f"{soundfont}: no preset at bank {bank} program {program}")
        audio = _render_events(lib, synth, chan, notes, sample_rate, num_frames)
    finally:
        if lent is not None:  # hand the soundfont back before delete, which would free it
            previous = lib.fluid_set_log_function(FLUID_WARN, None, None)
            lib.fluid_synth_remove_sfont(synth.synth, lent)  # warns about emptied channels
            lib.fluid_set_log_function(FLUID_WARN, previous, None)
        synth.delete()
    return audio, str(preset)


def _render_events(lib, synth, chan, notes, sample_rate, num_frames) -> np.ndarray:
    write = lib.fluid_synth_write_float
    left = np.zeros(num_frames, dtype=np.float32)
    right = np.zeros(num_frames, dtype=np.float32)
    pos = 0
    for frame, on, pitch, vel in _events(notes, sample_rate, num_frames):
        pos = _render_until(write, synth.synth, left, right, pos, frame)
        if on:
            synth.noteon(chan, pitch, vel)
        else:
            synth.noteoff(chan, pitch)
    _render_until(write, synth.synth, left, right, pos, num_frames)
    return (left + right) * np.float32(0.5)  # (T,) mono


@dataclass
class _Lender:
    """A holder synth that parsed the soundfont once, and keeps the presets used so far
    selected on its own channels, so that their samples stay loaded between stems (dynamic
    loading would otherwise free and re-read them for every fresh synth)."""

    synth: Any  # fluidsynth.Synth; pyfluidsynth has no types
    sfid: int
    sfont: int  # fluid_sfont_t*
    pinned: dict[tuple[int, int], int]  # (bank, program) -> holder channel

    def pin(self, bank: int, program: int) -> None:
        if (bank, program) not in self.pinned and len(self.pinned) < LENDER_CHANNELS:
            self.synth.program_select(len(self.pinned), self.sfid, bank, program)
            self.pinned[(bank, program)] = len(self.pinned)


LENDER_CHANNELS = 256
_LENDERS: dict[tuple[int, str], _Lender] = {}  # (pid, path) -> lender; never used across a fork


def _lender(fs, soundfont: Path) -> _Lender:
    key = (os.getpid(), str(soundfont))
    if key not in _LENDERS:
        holder = fs.Synth(gain=SYNTH_GAIN, samplerate=22050.0, channels=LENDER_CHANNELS)
        holder.setting("synth.dynamic-sample-loading", 1)  # as in a fresh synth: same samples
        sfid = holder.sfload(str(soundfont))
        if sfid < 0:
            raise RenderError(f"{soundfont}: FluidSynth could not load this soundfont")
        ptr = fs._fl.fluid_synth_get_sfont_by_id(holder.synth, sfid)
        lender = _Lender(holder, sfid, ptr, {})
        # Adding the soundfont to a synth selects these defaults on its channels: keep them warm.
        lender.pin(0, 0)
        lender.pin(128, 0)
        _LENDERS[key] = lender
    return _LENDERS[key]


def available_presets(soundfont: Path, bank: int, programs: tuple[int, ...]) -> tuple[int, ...]:
    """The programs of `programs` that the soundfont has at `bank` (e.g. drum kits at 128)."""
    fs = fluidsynth_module()
    synth = fs.Synth(gain=SYNTH_GAIN, samplerate=22050.0, channels=16)
    try:
        synth.setting("synth.dynamic-sample-loading", 1)
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise RenderError(f"{soundfont}: FluidSynth could not load this soundfont")
        return tuple(p for p in programs if synth.sfpreset_name(sfid, bank, p) is not None)
    finally:
        synth.delete()


def _events(notes: list[Note], sample_rate: int, num_frames: int):
    """(frame, is_on, pitch, velocity) sorted; offs before ons at the same frame."""
    events = []
    for n in notes:
        on = int(round(n.start * sample_rate))
        off = min(int(round(n.end * sample_rate)), num_frames)
        if on >= num_frames or off <= on:
            continue
        events.append((on, 1, n.pitch, n.velocity))
        events.append((off, 0, n.pitch, 0))
    events.sort()
    return events


def _render_until(write, synth_ptr, left, right, pos: int, frame: int) -> int:
    while pos < frame:
        n = min(BLOCK, frame - pos)
        lp = left[pos:].ctypes.data
        rp = right[pos:].ctypes.data
        if write(synth_ptr, n, lp, 0, 1, rp, 0, 1) != 0:
            raise RenderError("fluid_synth_write_float failed")
        pos += n
    return pos
