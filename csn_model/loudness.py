"""Loudness (ITU-R BS.1770-4, pyloudnorm) and the level fitting every embedding path shares.

The model's log-mel is not level-invariant: the same piece 6 dB quieter lands elsewhere in every
subspace. The site stores each catalogue clip normalised to a loudness target and brings each
query to it; `csn_model.inference.Embedder` does the same with these functions, so the Python
API and the site give the same vectors for the same file when the Embedder's target_lufs is the
catalogue's level (-23 by default, as the site's). Pure numpy (pyloudnorm);
the site imports this module, never the other way round.
"""

from __future__ import annotations

import numpy as np

# A mono file plays on two speakers: +10*log10(2) LU over BS.1770's one-channel measure.
DUAL_MONO_LU = float(10 * np.log10(2))
PEAK_CEILING_DBFS = -1.0  # normalisation never pushes a sample above this
BS1770_BLOCK_S = 0.4  # pyloudnorm's gating block; shorter clips are padded with silence
# The level the site stores catalogue clips at and brings queries to (a study's default loudness
# target, EBU R 128's -23 LUFS) [choice: the paper does not say how its inputs were levelled].
DEFAULT_TARGET_LUFS = -23.0
# A loudness target's range (LUFS), as the study settings, `import_slakh --lufs` and
# `csn embed --target-lufs` accept it.
LOUDNESS_TARGET_LUFS: tuple[float, float] = (-70, 0)
# Audio already this close to the target is left as it is (a stored clip is not re-gained).
TARGET_TOLERANCE_LU = 0.1


class LevelError(ValueError):
    """A gain toward a loudness target that is not a finite number."""


def loudness_lufs(data: np.ndarray, sr: int) -> float:
    """Integrated loudness (BS.1770-4, pyloudnorm). data: (T, C) or (T,). -70 for silence."""
    x = data if data.ndim == 2 else data[:, None]  # (T, C)
    min_len = int(np.ceil(BS1770_BLOCK_S * sr)) + 1
    if x.shape[0] < min_len:
        x = np.pad(x, ((0, min_len - x.shape[0]), (0, 0)))
    # pyloudnorm loads scipy.signal and with it scipy.stats (~1 s): imported where loudness is
    # measured, not by every process that imports this module (tests/test_startup_imports.py).
    import pyloudnorm

    value = pyloudnorm.Meter(sr).integrated_loudness(x.astype(np.float64))
    return float(value) if np.isfinite(value) else -70.0


def playback_lufs(measured_lufs: float, channels: int) -> float:
    """Loudness as played: BS.1770 measures a mono file as one channel, but a browser plays it
    on both speakers, so it is measured as dual-mono (+3.01 LU, as ffmpeg's ebur128 `dualmono`).
    Gain toward a target is decided on this."""
    return measured_lufs + (DUAL_MONO_LU if channels == 1 else 0.0)


def target_gain_db(data: np.ndarray, sr: int, target_lufs: float) -> float:
    """The gain (dB) that brings data (T, C) or (T,) to `target_lufs` as played, reduced so the
    peak stays under PEAK_CEILING_DBFS. LevelError naming the target when it is not finite."""
    return _gain_db(data, _played(data, sr), target_lufs)


def _played(data: np.ndarray, sr: int) -> float:
    return playback_lufs(loudness_lufs(data, sr), data.shape[1] if data.ndim == 2 else 1)


def _gain_db(data: np.ndarray, played_lufs: float, target_lufs: float) -> float:
    if not np.isfinite(target_lufs):  # NaN gain would be written as full-scale -1.0 samples
        raise LevelError(f"loudness target {target_lufs} LUFS; expected a finite number")
    gain_db = target_lufs - played_lufs
    peak = float(np.max(np.abs(data), initial=0.0))
    if peak > 0:
        gain_db = min(gain_db, PEAK_CEILING_DBFS - 20 * np.log10(peak))
    if not np.isfinite(gain_db):
        raise LevelError(
            f"gain {gain_db} dB toward the loudness target {target_lufs:g} LUFS; expected a "
            "finite gain (is the audio finite?)"
        )
    return float(gain_db)


def normalise(data: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """data brought to `target_lufs` (`target_gain_db`): (audio float32, gain_db applied)."""
    gain_db = target_gain_db(data, sr, target_lufs)
    return (data * _stored_gain(data, gain_db)).astype(np.float32), gain_db


def _stored_gain(data: np.ndarray, gain_db: float) -> float:
    """The linear gain as the site multiplied by it before this module existed (ca34375^1):
    a NumPy float64, so float32 audio times it is computed in float64, where the gain came out
    of float64 arithmetic (a mono file's, through DUAL_MONO_LU, or one the peak ceiling held
    down), and a Python float, so the product is float32 under NumPy 2, where it did not. The
    stored bytes must not change: the catalogue's duplicate check compares their sha256, and a
    few samples 1 LSB off make a file uploaded before and after a change two clips
    (tests/evalsite/stimuli/test_stored_bytes.py pins the hashes)."""
    gain = 10 ** (gain_db / 20)
    mono = data.ndim == 1 or data.shape[1] == 1
    peak = float(np.max(np.abs(data), initial=0.0))
    held = peak > 0 and gain_db == PEAK_CEILING_DBFS - 20 * np.log10(peak)
    return np.float64(gain) if mono or held else gain


def fit_gain(data: np.ndarray, sr: int, target_lufs: float) -> float:
    """The linear gain the embedding paths apply: 1.0 where the audio already plays within
    TARGET_TOLERANCE_LU of the target (a clip the site stored at it is embedded as stored),
    else `target_gain_db`'s."""
    played = _played(data, sr)
    if abs(played - target_lufs) < TARGET_TOLERANCE_LU:
        return 1.0
    return float(10 ** (_gain_db(data, played, target_lufs) / 20))
