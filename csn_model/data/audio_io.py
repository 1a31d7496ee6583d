"""Audio file access for the Slakh reader: header checks, seeking reads, streamed envelopes.

Every libsndfile failure becomes a DataError naming the file, the track and the stem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from csn_model.data.audio_header import declared_frames
from csn_model.data.entries import broken_link, is_utf8, shown
from csn_model.data.errors import DataError
from csn_model.silence import HighPass

AUDIO_SUFFIXES: tuple[str, ...] = (".flac", ".wav")
ENVELOPE_HOP = 1024  # frames per energy-envelope value
# UnicodeEncodeError: soundfile encodes a str path strictly (a name that is not UTF-8)
_SF_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, UnicodeEncodeError)


def audio_file(folder: Path, stem: str) -> Path | None:
    """folder/stem.flac or folder/stem.wav, whichever exists; the suffix in any case (S02.FLAC),
    as the stems folder's check for unlisted files has it, the name as written (Slakh's is
    lower-case: mix, S00)."""
    for suffix in AUDIO_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    if not folder.is_dir():
        return None
    for suffix in AUDIO_SUFFIXES:  # a renamed copy: look the suffix up ignoring its case
        for p in sorted(folder.iterdir()):
            if p.stem == stem and p.suffix.lower() == suffix and p.is_file():
                return p
    return None


def refuse_broken_link(folder: Path, stem: str, track: str, what: str) -> None:
    """DataError when folder/stem.flac or .wav is a symlink leading nowhere (dangling or a loop):
    the file is there under the right name, so "missing" or "misnamed" would mislead."""
    for suffix in AUDIO_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if why := broken_link(path):
            raise DataError(f"{shown(path)}: {what} of {track} {why}; expected an audio file")


def misnamed(folder: Path, stem: str) -> str:
    """ "; found Mix.flac (...)" when audio_file found nothing but a file whose name differs from
    stem's only in case; else "; FOLDER holds names that are not valid UTF-8 (...)" when it
    does (the stem may be one of them, renamed by an archiver in Latin-1 or CP1252);
    "" otherwise. Appended to a "missing" message, which would mislead."""
    if not folder.is_dir():
        return ""
    entries = sorted(folder.iterdir())
    for p in entries:
        if p.stem.lower() == stem.lower() and p.suffix.lower() in AUDIO_SUFFIXES:
            return f"; found {p.name}, expected the name {stem} in this case (Slakh's)"
    undecodable = [shown(p.name) for p in entries if not is_utf8(p.name)]
    if undecodable:
        return (
            f"; {shown(folder)} holds names that are not valid UTF-8 ({', '.join(undecodable)}, "
            f"bytes escaped): if one is {stem}, rename it (e.g. convmv -f latin1 -t utf8)"
        )
    return ""


def info(path: Path, track: str, what: str):
    """The file's header (sample rate, frames, channels), without decoding audio. A WAV or AIFF
    whose data is shorter than its header declares (cut short: libsndfile reports the shorter
    length as if whole) is refused, as the catalogue's uploads are (evalsite.stimuli.audio)."""
    try:
        header = sf.info(str(path))
        declared = declared_frames(path)
    except _SF_ERRORS as exc:
        raise DataError(
            f"{shown(path)}: {what} of {track} is unreadable or corrupt audio: {exc}"
        ) from exc
    if declared is not None and declared > header.frames:
        sr = header.samplerate
        raise DataError(
            f"{shown(path)}: {what} of {track} is cut short: its header declares {declared} "
            f"frames ({declared / sr:.2f} s) but the file holds {header.frames} "
            f"({header.frames / sr:.2f} s); expected the whole file (an interrupted copy or "
            "download?)"
        )
    return header


def read_mono(path: Path, start: int, num_frames: int, track: str, what: str) -> np.ndarray:
    """Frames [start, start+num_frames) by seeking, channels averaged. (T,) float32"""
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(start)
            data = f.read(num_frames, dtype="float32", always_2d=True)  # (T, C)
    except _SF_ERRORS as exc:
        raise DataError(f"{shown(path)}: cannot read {what} of {track}: {exc}") from exc
    if data.shape[0] != num_frames:
        raise DataError(
            f"{path}: {what} of {track} ended after {data.shape[0]} of the "
            f"{num_frames} frames requested from frame {start} (truncated or corrupt file)"
        )
    _check_finite(data, path, f"{what} of {track}", start)
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (T, C) -> (T,)


def _check_finite(data: np.ndarray, path: Path, what: str, start: int) -> None:
    """Float files can hold NaN or infinity, which would turn every feature of a clip into NaN."""
    bad = ~np.isfinite(data).all(axis=1)  # (T, C) -> (T,)
    if bad.any():
        raise DataError(
            f"{path}: {what} has NaN or infinite samples from frame {start + int(bad.argmax())}; "
            "expected finite audio"
        )


def stem_envelope(path: Path, num_frames: int, track: str, stem: str) -> tuple[np.ndarray, float]:
    """Mean square per ENVELOPE_HOP frames of the mono signal and the peak over every channel, in
    one streamed pass, both above csn_model.silence's high-pass (SILENCE_HIGHPASS_HZ): a constant
    offset (DC) or a slow drift is neither energy nor peak, as in the catalogue's silence rule."""
    env = np.zeros(-(-num_frames // ENVELOPE_HOP), dtype=np.float64)
    peak, pos = 0.0, 0
    try:
        with sf.SoundFile(str(path)) as f:
            highpass = HighPass(f.samplerate)
            for data in f.blocks(blocksize=ENVELOPE_HOP * 64, dtype="float32", always_2d=True):
                _check_finite(data, path, f"stem {stem} of {track}", pos)
                audible = highpass(data)  # (t, C) float64, above the high-pass
                peak = max(peak, float(np.abs(audible).max(initial=0.0)))
                mono = audible.mean(axis=1)  # (t, C) -> (t,)
                pad = (-len(mono)) % ENVELOPE_HOP
                sq = np.pad(mono**2, (0, pad)).reshape(-1, ENVELOPE_HOP)
                i = pos // ENVELOPE_HOP
                env[i : i + len(sq)] = sq.sum(axis=1) / ENVELOPE_HOP
                pos += len(mono)
    except _SF_ERRORS as exc:
        raise DataError(f"{shown(path)}: cannot decode stem {stem} of {track}: {exc}") from exc
    if pos != num_frames:
        raise DataError(
            f"{path}: stem {stem} of {track} decoded to {pos} frames; "
            f"expected {num_frames} (the header's length)"
        )
    return env, peak
