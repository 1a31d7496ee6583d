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
BS1770_STEP = 0.25  # gating blocks overlap by 75 %: one starts every quarter block
BS1770_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # channel weights, pyloudnorm's: L, R, C, Ls, Rs
# The level the site stores catalogue clips at and brings queries to (a study's default loudness
# target, EBU R 128's -23 LUFS) [choice: the paper does not say how its inputs were levelled].
DEFAULT_TARGET_LUFS = -23.0
# A loudness target's range (LUFS), as the study settings, `import_slakh --lufs` and
# `csn embed --target-lufs` accept it.
LOUDNESS_TARGET_LUFS: tuple[float, float] = (-70, 0)
# A stored clip already this close to a study's target is served as it is.
TARGET_TOLERANCE_LU = 0.1
# The embedding paths leave audio as it is when the gain toward the target is smaller than this,
# over twice the worst 16-bit storage error found for a clip the site stored at its target
# (under 0.001 dB for music at -40 to -5 LUFS; 0.009-0.021 dB for heavily clipped noise at -40 and
# -50, whose samples nearly all share one magnitude, so rounding does not average out; 0.18 dB
# at -60: tests/csn_model/test_loudness.py), so a stored clip is embedded as stored, while a
# file a user brings 0.1 LU off is levelled as the site's copy of it was [choice: one rule,
# fit_gain, for the Embedder and the site's uploads]. A clip whose blocks crossed the -70 LUFS
# gate when it was normalised can land further off its target (0.12 dB in that test) and is
# levelled again: embed the site's stored files with `--no-level` to get its vectors exactly.
EMBED_GAIN_TOLERANCE_DB = 0.05
# Files with at most this many channels are measured on their own channels, as the site measures
# the clips and queries it takes (1-2 channels); more are measured on the mono mix the model
# embeds, as a mono file [choice: BS.1770 weights only five channels, in a layout a file does not
# state; pyloudnorm refuses more].
OWN_CHANNELS_MAX = 2


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
    played = playback_lufs(loudness_lufs(data, sr), data.shape[1] if data.ndim == 2 else 1)
    return _gain_db(float(np.max(np.abs(data), initial=0.0)), played, target_lufs)


def _gain_db(peak: float, played_lufs: float, target_lufs: float) -> float:
    if not np.isfinite(target_lufs):  # NaN gain would be written as full-scale -1.0 samples
        raise LevelError(f"loudness target {target_lufs} LUFS; expected a finite number")
    gain_db = target_lufs - played_lufs
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
    """The linear gain every embedding path applies toward `target_lufs` (Embedder's files and
    waveforms, the site's uploaded queries): `LevelMeter.gain` of data (T, C) or (T,)."""
    x = data if data.ndim == 2 else data[:, None]  # (T, C)
    meter = LevelMeter(sr, x.shape[1])
    meter.add(x)
    return meter.gain(target_lufs)


class LevelMeter:
    """What the embedding paths level a file by, fed its (t, C) blocks in order: the loudness
    and peak of its own channels when it has at most OWN_CHANNELS_MAX (as the site measures what
    it takes), else of its mono mix (the signal the model embeds), counted as a mono file."""

    def __init__(self, sr: int, channels: int):
        self.mixed = channels > OWN_CHANNELS_MAX
        self.channels = 1 if self.mixed else channels
        self.meter = LoudnessMeter(sr, self.channels)
        self.peak = 0.0

    def add(self, block: np.ndarray) -> None:
        x = block.mean(axis=1, keepdims=True) if self.mixed else block  # (t, C'), as the mix
        self.peak = max(self.peak, float(np.max(np.abs(x), initial=0.0)))
        self.meter.add(x)

    def gain(self, target_lufs: float) -> float:
        """The linear gain to `target_lufs` as played (`target_gain_db`'s rule); 1.0 where it is
        under EMBED_GAIN_TOLERANCE_DB. LevelError for a target or gain that is not finite."""
        played = playback_lufs(self.meter.lufs(), self.channels)
        gain_db = _gain_db(self.peak, played, target_lufs)
        if abs(gain_db) < EMBED_GAIN_TOLERANCE_DB:
            return 1.0
        return float(10 ** (gain_db / 20))


class LoudnessMeter:
    """BS.1770-4 integrated loudness of (t, C) blocks fed in order, equal to pyloudnorm's
    `integrated_loudness` of the whole signal (as `loudness_lufs`: float64, padded with silence
    to one gating block) without holding it: the K-weighting filters run block by block with
    their state carried over, and the squares are summed per 100 ms hop; a 400 ms gating block
    (75 % overlap) is four hops, bounded at pyloudnorm's sample indices."""

    def __init__(self, sr: int, channels: int):
        if not 1 <= channels <= len(BS1770_WEIGHTS):
            raise ValueError(f"channels {channels}; expected 1-{len(BS1770_WEIGHTS)} (BS.1770)")
        import pyloudnorm  # and scipy with it, where loudness is measured (see loudness_lufs)
        from scipy.signal import lfilter

        self._lfilter = lfilter
        stages = pyloudnorm.Meter(sr)._filters.values()  # K-weighting: high shelf, high pass
        self._stages = [(f.b, f.a, f.passband_gain) for f in stages]
        self._state = [np.zeros((max(len(a), len(b)) - 1, channels)) for b, a, _ in self._stages]
        self.sr, self.count = sr, 0
        self._hops = [np.zeros(channels)]  # (C,) sum of squares of each 100 ms hop so far
        self._next = self._bound(1)

    def _bound(self, k: int) -> int:
        # pyloudnorm's lower bound of gating block k: int(T_g * (k * step) * rate)
        return int(BS1770_BLOCK_S * (k * BS1770_STEP) * self.sr)

    def add(self, block: np.ndarray) -> None:
        if not len(block):  # lfilter returns an uninitialised state for no samples
            return
        y = block.astype(np.float64)  # (t, C)
        for i, (b, a, gain) in enumerate(self._stages):
            y, self._state[i] = self._lfilter(b, a, y, axis=0, zi=self._state[i])
            y = gain * y
        sq = np.square(y)  # (t, C)
        start = 0
        while start < len(sq):
            stop = min(len(sq), start + self._next - self.count)
            self._hops[-1] += sq[start:stop].sum(axis=0)
            self.count += stop - start
            start = stop
            if self.count == self._next:
                self._hops.append(np.zeros(sq.shape[1]))
                self._next = self._bound(len(self._hops))

    def lufs(self) -> float:
        """The integrated loudness of what was added (-70 for silence or nothing)."""
        min_len = int(np.ceil(BS1770_BLOCK_S * self.sr)) + 1
        if self.count < min_len:  # as loudness_lufs pads a short clip
            self.add(np.zeros((min_len - self.count, len(self._hops[0]))))
        step = BS1770_BLOCK_S * BS1770_STEP
        blocks = int(np.round((self.count / self.sr - BS1770_BLOCK_S) / step)) + 1  # pyloudnorm's
        hops = np.zeros((blocks + 3, len(self._hops[0])))  # (J + 3, C); past the end: none
        kept = np.asarray(self._hops[: blocks + 3])
        hops[: len(kept)] = kept
        sums = hops[:-3] + hops[1:-2] + hops[2:-1] + hops[3:]  # (J, C): four hops a block
        z = sums.T / (BS1770_BLOCK_S * self.sr)  # (C, J) mean squares
        value = _gated(z, np.asarray(BS1770_WEIGHTS[: z.shape[0]]))
        return float(value) if np.isfinite(value) else -70.0


def _gated(z: np.ndarray, weights: np.ndarray) -> float:
    """pyloudnorm's gating of the blocks' mean squares z (C, J): absolute gate at -70 LUFS, then
    relative at 10 LU under the mean of the blocks that passed it (BS.1770-4, eq. 4-7)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        level = -0.691 + 10 * np.log10(weights @ z)  # (J,)
        above = level >= -70.0
        mean = z[:, above].mean(axis=1) if above.any() else np.full(len(weights), np.nan)
        relative = -0.691 + 10 * np.log10(weights @ mean) - 10
        kept = (level > relative) & (level > -70.0)
        mean = np.nan_to_num(z[:, kept].mean(axis=1)) if kept.any() else np.zeros(len(weights))
        return float(-0.691 + 10 * np.log10(weights @ mean))
