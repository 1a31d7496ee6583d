"""Loudness measured block by block (csn_model.loudness.LoudnessMeter) equals pyloudnorm's
integrated loudness of the whole signal: the Embedder measures long files in a streaming pass,
the site measures its clips whole, and their vectors must match."""

from __future__ import annotations

import numpy as np
import pytest

from csn_model.loudness import LoudnessMeter, loudness_lufs


def _music(seconds: float, sr: int, channels: int, seed: int, quiet: float = 0.001) -> np.ndarray:
    """Tones and noise with a passage `quiet` times as loud (so both gates cut blocks), (T, C)
    float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.stack([np.sin(2 * np.pi * (110 + 50 * c) * t) + 0.3 * rng.standard_normal(t.size)
                  for c in range(channels)], axis=1)  # fmt: skip  # (T, C)
    x *= np.where((t > seconds / 3) & (t < seconds / 2), quiet, 1.0)[:, None] * 0.2
    return x.astype(np.float32)


@pytest.mark.parametrize(
    ("seconds", "sr", "channels", "block"),
    [(7.3, 44100, 2, 4096), (5.0, 22050, 1, 1000), (6.1, 11025, 5, 777), (3.0, 48000, 3, 48000),
     (0.25, 44100, 2, 999), (2.0, 8000, 1, 1)],
)  # fmt: skip
def test_it_measures_in_blocks_what_pyloudnorm_measures_on_the_whole_signal(
    seconds, sr, channels, block
):
    x = _music(seconds, sr, channels, seed=channels)
    meter = LoudnessMeter(sr, channels)
    for s in range(0, len(x), block):
        meter.add(x[s : s + block])
    assert meter.lufs() == pytest.approx(loudness_lufs(x, sr), abs=1e-6)


def test_it_measures_silence_and_no_samples_as_minus_seventy():
    meter = LoudnessMeter(44100, 2)
    assert meter.lufs() == -70.0
    meter.add(np.zeros((44100, 2), np.float32))
    assert meter.lufs() == loudness_lufs(np.zeros((44100, 2), np.float32), 44100) == -70.0


@pytest.mark.parametrize("target", [-40.0, -23.0, -16.0, -5.0])
def test_it_leaves_a_clip_stored_at_the_target_as_it_is_and_levels_one_005_lu_off(target):
    """The site stores a clip normalised to its target as 16-bit PCM; the gain fit_gain finds
    for it is that storage error (under 0.001 dB; -5 LUFS: held by its peak at -1 dBFS), under
    EMBED_GAIN_TOLERANCE_DB: it is embedded as stored. A
    file 0.05 LU off is levelled (the site's uploads are, by the same rule). Not so for audio
    whose blocks cross BS.1770's -70 LUFS gate when normalised (the default quiet passage of
    _music: normalise lands 0.12 dB off, and the stored clip is levelled again)."""
    import io

    import soundfile as sf

    from csn_model.loudness import EMBED_GAIN_TOLERANCE_DB, fit_gain, normalise, target_gain_db

    for channels in (1, 2):
        music = _music(4.0, 22050, channels, seed=channels, quiet=0.3)
        x, _ = normalise(music, 22050, target)
        buf = io.BytesIO()
        sf.write(buf, x, 22050, format="WAV", subtype="PCM_16")
        buf.seek(0)
        stored, _ = sf.read(buf, dtype="float32", always_2d=True)  # (T, C)
        assert abs(target_gain_db(stored, 22050, target)) < EMBED_GAIN_TOLERANCE_DB / 10
        assert fit_gain(stored, 22050, target) == 1.0
        assert fit_gain(stored * np.float32(10 ** (-0.05 / 20)), 22050, target) > 1.0
