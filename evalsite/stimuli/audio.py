"""Audio handling for the catalogue: validate, measure loudness (ITU-R BS.1770), normalise,
and store as 16-bit PCM WAV (which every major browser decodes).

Plain functions: the upload view, the import command and Celery tasks all call the same ones.
`process_clip` never raises on bad audio: it marks the clip failed with an error that names the
file, what was wrong and what was expected.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from csn_model import loudness as level
from csn_model.data.audio_header import declared_frames
from csn_model.loudness import (  # one implementation: csn_model's Embedder levels with it too
    BS1770_BLOCK_S,
    DUAL_MONO_LU,
    LOUDNESS_TARGET_LUFS,
    PEAK_CEILING_DBFS,
    TARGET_TOLERANCE_LU,
    loudness_lufs,
    playback_lufs,
)
from csn_model.silence import SILENCE_DBFS, SILENCE_HIGHPASS_HZ, audible_peak
from evalsite.stimuli.models import Catalogue, Clip

__all__ = ["BS1770_BLOCK_S", "DUAL_MONO_LU", "LOUDNESS_TARGET_LUFS", "PEAK_CEILING_DBFS",
           "loudness_lufs", "playback_lufs"]  # fmt: skip  # re-exported from csn_model.loudness
FILE_NAME_MAX = Clip._meta.get_field("file").max_length


class AudioError(ValueError):
    """Bad audio input; the message names the file and what was expected."""


@dataclass(frozen=True)
class Limits:
    min_duration_s: float = 0.5
    max_duration_s: float = 120.0
    min_sample_rate: int = 16000
    max_sample_rate: int = 96000
    max_channels: int = 2
    silence_dbfs: float = SILENCE_DBFS  # peak above 20 Hz below this: silent (csn_model.silence)


DEFAULT_LIMITS = Limits()
# Per uploaded file (Clips page, retrieval query), checked before reading: above the longest clip
# the limits accept, in any format.
MAX_UPLOAD_BYTES = 100_000_000
# libsndfile estimates an MP3's length from its header (a Xing/LAME frame count, or the bitrate
# and file size), which can be wrong either way; its decoder is stopped at the limit instead.
ESTIMATED_LENGTH_FORMATS = {"MP3"}
UNKNOWN_FRAMES = 2**63 - 1  # the frame count libsndfile reports when a header does not say


def read_audio(
    path: str | Path, name: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> tuple[np.ndarray, int]:
    """Decode a file to float32 (T, C). Raises AudioError if it cannot be decoded, or, before
    decoding, if its header breaks the sample rate, channel or duration limits: a compressed
    file of long silence is tiny (20 min of 96 kHz stereo FLAC: 448 kB) but decodes to ~1 GB,
    and a 100 MB upload to hundreds of GB. A header's frame count can be an estimate (MP3) or
    unknown (libsndfile then reports a huge one), so the decoding stops one frame past the
    longest duration allowed."""
    label = name or Path(path).name
    try:
        with sf.SoundFile(str(path)) as f:
            sr = int(f.samplerate)
            _check_format(sr, f.channels, label, limits)
            most = int(limits.max_duration_s * sr)  # frames
            if f.format not in ESTIMATED_LENGTH_FORMATS and most < f.frames < UNKNOWN_FRAMES:
                _check_duration(f.frames / sr, label, limits)
            declared = _declared_frames(f, path)
            try:
                data = f.read(most + 1, dtype="float32", always_2d=True)  # (T, C), T <= most + 1
            except (sf.LibsndfileError, RuntimeError):
                if declared is not None:  # a FLAC cut short fails part-way: say so, with lengths
                    _check_whole(label, _decodable_frames(path, most), declared, sr)
                raise
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        # libsndfile's message quotes the path it opened (our storage path, e.g.
        # clips/<hash>.txt): name only the file as the uploader knows it.
        reason = getattr(exc, "error_string", None) or str(exc).replace(str(path), label)
        raise AudioError(
            f"{label}: cannot decode audio ({reason}); expected WAV, FLAC, OGG or MP3"
        ) from exc
    if data.shape[0] > most:
        raise AudioError(
            f"{label}: duration over {limits.max_duration_s:g} s; {_durations(limits)}"
        )
    if declared is not None:
        _check_whole(label, data.shape[0], declared, sr)
    if data.base is not None:  # cut from a larger buffer: the header's length was unknown or long
        data = data.copy()
    return data, sr


def _declared_frames(f: sf.SoundFile, path: str | Path) -> int | None:
    """The length the file's header declares, where a file cut short keeps it: read from a WAV
    or AIFF header itself (libsndfile reports those clamped to the data there is), a FLAC's
    STREAMINFO total as libsndfile reports it. None for other formats (their lengths are
    estimates, or not in the header) and where the header does not say."""
    if f.format in ("WAV", "WAVEX", "RF64", "AIFF"):
        return declared_frames(path)
    if f.format == "FLAC" and 0 < f.frames < UNKNOWN_FRAMES:
        return int(f.frames)
    return None


def _decodable_frames(path: str | Path, most: int) -> int:
    """How many frames decode before libsndfile fails (counted up to most + 1). A failing read
    returns none of its block, so the count is refined: blocks of 65,536 frames, then from the
    last whole one blocks of 1,024, then a bisection of the 1,024 that failed (counted in
    65,536s alone, a FLAC cut in its first 1.5 s was said to hold 0 s). Not frame by frame:
    libsndfile took seconds for the last 1,024 of a FLAC read so."""
    held = _frames_read(path, 0, 65536, most + 1)
    held = _frames_read(path, held, 1024, most + 1)
    if held > most:
        return held
    good, bad = 0, 1024  # frames from `held`: these decode, these do not (or pass the end)
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if _reads_whole(path, held, middle) else (good, middle)
    return held + good


def _frames_read(path: str | Path, start: int, blocksize: int, stop: int) -> int:
    """`start` plus the frames read from it in blocks of `blocksize` until a read fails, the
    file ends or `stop` is reached."""
    held = start
    with sf.SoundFile(str(path)) as f:
        try:
            f.seek(start)
            for block in f.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                held += block.shape[0]  # (T, C)
                if held >= stop:
                    break
        except (sf.LibsndfileError, RuntimeError):
            pass
    return held


def _reads_whole(path: str | Path, start: int, frames: int) -> bool:
    """Whether `frames` frames from `start` decode in one read."""
    with sf.SoundFile(str(path)) as f:
        try:
            f.seek(start)
            return f.read(frames, dtype="float32", always_2d=True).shape[0] == frames  # (T, C)
        except (sf.LibsndfileError, RuntimeError):
            return False


def _check_whole(label: str, held: int, declared: int, sr: int) -> None:
    """AudioError when the file holds fewer frames than its header declares."""
    if held < declared:
        raise AudioError(
            f"{label}: cut short: its data holds {held / sr:.2f} s ({held} frames) of the "
            f"{declared / sr:.2f} s ({declared} frames) its header declares; expected the "
            "whole file (an interrupted copy or upload?), upload it again"
        )


def validate(data: np.ndarray, sr: int, name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Check duration, sample rate, channels and silence; raise AudioError naming the field."""
    _check_format(sr, data.shape[1], name, limits)
    _check_duration(data.shape[0] / sr, name, limits)
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{name}: samples contain NaN or infinity; expected finite audio")
    peak = audible_peak(data, sr)
    peak_db = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < limits.silence_dbfs:
        raise AudioError(
            f"{name}: silent (peak {peak_db:.1f} dBFS above {SILENCE_HIGHPASS_HZ:g} Hz); "
            f"expected a peak above {limits.silence_dbfs:g} dBFS"
        )


def _check_format(sr: int, channels: int, name: str, limits: Limits) -> None:
    if not limits.min_sample_rate <= sr <= limits.max_sample_rate:
        raise AudioError(
            f"{name}: sample_rate {sr} Hz; expected {limits.min_sample_rate}-"
            f"{limits.max_sample_rate} Hz"
        )
    if channels < 1 or channels > limits.max_channels:
        raise AudioError(f"{name}: channels {channels}; expected 1-{limits.max_channels}")


def _check_duration(duration: float, name: str, limits: Limits) -> None:
    if not limits.min_duration_s <= duration <= limits.max_duration_s:
        raise AudioError(f"{name}: duration {duration:.2f} s; {_durations(limits)}")


def _durations(limits: Limits) -> str:
    return f"expected {limits.min_duration_s:g}-{limits.max_duration_s:g} s"


def peak_dbfs(data: np.ndarray) -> float | None:
    """The sample peak of `data` in dBFS, as `normalise` measures it (None for silence)."""
    peak = float(np.max(np.abs(data), initial=0.0))
    return 20 * float(np.log10(peak)) if peak > 0 else None


def normalise(data: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Gain to `target_lufs`, reduced if needed so the peak stays under PEAK_CEILING_DBFS
    (csn_model.loudness.normalise). Returns (audio, gain_db actually applied)."""
    try:
        return level.normalise(data, sr, target_lufs)
    except level.LevelError as exc:
        raise AudioError(str(exc)) from None


def fit_level(data: np.ndarray, sr: int, name: str, target_lufs: float | None) -> np.ndarray:
    """Normalise to `target_lufs`, or without a target check the audio fits 16-bit PCM as is.

    Float files can peak above 0 dBFS; stored unnormalised they would be clipped, so they are
    refused instead (normalisation keeps every peak under PEAK_CEILING_DBFS).
    """
    if target_lufs is not None:
        return normalise(data, sr, target_lufs)[0]
    peak = float(np.max(np.abs(data)))
    if peak > 1.0:
        raise AudioError(
            f"{name}: peak {20 * np.log10(peak):+.1f} dBFS; expected at most 0 dBFS, or a 16-bit "
            "copy would clip (lower its level, or store it with a loudness target)"
        )
    return data


def wav_bytes(data: np.ndarray, sr: int) -> bytes:
    """16-bit PCM WAV bytes of float audio in [-1, 1] (fit_level has checked it)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _store(clip: Clip, data: np.ndarray, sr: int, name: str | None = None) -> None:
    """Write the WAV and fill the measured fields (does not save).

    Under `name` when given, replacing a file of that name (an earlier try's), else under a
    random name.
    """
    payload = wav_bytes(data, sr)
    stored, _ = sf.read(io.BytesIO(payload), dtype="float32", always_2d=True)
    if name is None:
        clip.file.save(f"{secrets.token_hex(16)}.wav", ContentFile(payload), save=False)
    else:
        storage = clip.file.storage
        storage.delete(name)  # a missing file is not an error
        clip.file.name = storage.save(name, ContentFile(payload), max_length=FILE_NAME_MAX)
    clip.sha256 = hashlib.sha256(payload).hexdigest()
    clip.duration_s = data.shape[0] / sr
    clip.sample_rate = sr
    clip.channels = data.shape[1] if data.ndim == 2 else 1
    clip.loudness_lufs = loudness_lufs(stored, sr)
    clip.peak_dbfs = peak_dbfs(stored)
    clip.status = Clip.Status.READY
    clip.error = ""


def process_clip(
    clip: Clip, target_lufs: float | None = None, limits: Limits = DEFAULT_LIMITS
) -> Clip:
    """Validate a pending clip's uploaded file, normalise it and store it as 16-bit WAV.

    Idempotent: a clip that is not pending (in the database, under a row lock) is returned as
    the database has it. Bad audio marks the clip failed (saved).
    Safe to kill at any point: the upload is deleted only after the row naming the WAV is
    committed, and until then a new try reads the upload again and replaces the WAV, whose name
    follows from the upload's.
    """
    if clip.status == Clip.Status.READY:
        return clip
    with transaction.atomic():
        if clip.pk is not None:
            # Another worker may have processed it since `clip` was loaded, and deleted the
            # upload: lock the row and go on only while it is still pending.
            Clip.objects.select_for_update().filter(pk=clip.pk).first()
            clip.refresh_from_db()
            if clip.status != Clip.Status.PENDING:
                return clip
        name = clip.name or Path(clip.file.name).name
        original = clip.file.name
        try:
            if not clip.file:
                raise AudioError(f"{name}: no file attached; expected an audio file")
            data, sr = _read_upload(clip, name, limits)
            validate(data, sr, name, limits)
            data = fit_level(data, sr, name, target_lufs)
            _store(clip, data, sr, name=processed_name(original))
        except AudioError as exc:
            clip.status = Clip.Status.FAILED
            clip.error = str(exc)
        clip.save()
        if clip.is_ready:
            delete_after_commit(clip.file.storage, original)
    return clip


def delete_after_commit(storage, name: str) -> None:
    """Delete stored file `name` once the transaction commits. Robust: a delete that fails leaves
    a stray file, logged with its reason, and never fails the committed clip. The callback is a
    function, not a partial: Django logs a robust callback's failure by its __qualname__, which a
    partial lacks (the AttributeError would then fail the save)."""

    def delete_stored_file() -> None:
        storage.delete(name)

    transaction.on_commit(delete_stored_file, robust=True)


def _read_upload(clip: Clip, name: str, limits: Limits) -> tuple[np.ndarray, int]:
    """The pending clip's upload, decoded. A missing or unreadable upload is this clip's
    failure (AudioError naming the clip, never the server path), not its whole batch's."""
    try:
        if clip.file.size == 0:
            raise AudioError(f"{name}: empty file; expected audio")
        with clip.file.open("rb"):  # opening fails here, with the OS's reason, not in libsndfile
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AudioError(
            f"{name}: uploaded file missing or unreadable ({reason}); upload it again"
        ) from None
    return read_audio(clip.file.path, name, limits)


def processed_name(original: str) -> str:
    """Storage name of the WAV made from the upload stored as `original` (never the same)."""
    return f"{PurePosixPath(original).with_suffix('')}.pcm16.wav"


def clip_from_upload(
    uploaded, catalogue: Catalogue | None, target_lufs: float | None = None, **fields
) -> Clip:
    """Store an uploaded file (Django UploadedFile) as a pending clip and process it.

    A file whose WAV is byte for byte a ready clip's in the same catalogue (a reload re-sending
    the form, a double submit, the same file twice) is not kept: the clip returned is unsaved,
    with `duplicate_of` naming the clip already there. Random trial drawing would otherwise pair
    a clip with its own copy. A refused file is not kept either: the clip returned is unsaved,
    failed, with its error, which the caller shows (the upload page's per-file results); kept, it
    would count as a catalogue clip and each retry would add another.
    """
    clip = Clip(catalogue=catalogue, name=Path(uploaded.name).name[:255], **fields)
    clip.file.save(uploaded.name, uploaded, save=False)
    clip.save()
    with transaction.atomic():
        if catalogue is not None:  # uploads to one catalogue check and keep one at a time
            Catalogue.objects.select_for_update().filter(pk=catalogue.pk).first()
        clip = process_clip(clip, target_lufs)
        clip.duplicate_of = _ready_copy(clip)
        if clip.duplicate_of is not None or clip.status == Clip.Status.FAILED:
            delete_after_commit(clip.file.storage, clip.file.name)
            clip.delete()
    return clip


def _ready_copy(clip: Clip) -> Clip | None:
    """Another ready clip of the same catalogue with the same WAV (sha256), if any."""
    if not clip.is_ready or clip.catalogue_id is None:
        return None
    same = Clip.objects.filter(
        catalogue_id=clip.catalogue_id, status=Clip.Status.READY, sha256=clip.sha256
    )
    return same.exclude(pk=clip.pk).order_by("pk").first()


def clip_from_array(
    data: np.ndarray,
    sr: int,
    catalogue: Catalogue | None = None,
    target_lufs: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
    **fields,
) -> Clip:
    """Validate, normalise and store generated audio (T,) or (T, C) as a ready clip.

    Raises AudioError (nothing is saved) when the audio fails validation.
    """
    x = data[:, None] if data.ndim == 1 else data  # (T, C)
    name = fields.get("name") or fields.get("piece") or "generated clip"
    validate(x, sr, name, limits)
    x = fit_level(x, sr, name, target_lufs)
    clip = Clip(catalogue=catalogue, **fields)
    _store(clip, x, sr)
    clip.save()
    return clip


def normalised_path(clip: Clip, target_lufs: float) -> Path:
    """Path of the clip normalised to a study's target (cached next to the media files).

    The stored clip is returned when its playback loudness (`playback_lufs`) is already within
    0.1 LU of the target. Raises FileNotFoundError when the clip's file is missing.
    """
    source = Path(clip.file.path)
    if not source.exists():
        raise FileNotFoundError(f"clip {clip.pk}: no stored file {clip.file.name}")
    if clip.loudness_lufs is None:
        return source
    playback = playback_lufs(clip.loudness_lufs, sf.info(str(source)).channels)
    if abs(playback - target_lufs) < TARGET_TOLERANCE_LU:
        return source
    folder = Path(settings.MEDIA_ROOT) / "normalised"
    # `_pb1`: gain from playback loudness; copies named without it had mono 3 dB too loud.
    out = folder / f"{clip.token}_{target_lufs:+.1f}_pb1.wav"
    if not out.exists():
        data, sr = read_audio(source)
        data, _ = normalise(data, sr, target_lufs)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(wav_bytes(data, sr))
        tmp.replace(out)  # atomic: concurrent requests never read a half-written file
    return out
