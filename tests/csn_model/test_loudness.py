"""Loudness measured block by block (csn_model.loudness.LoudnessMeter) equals pyloudnorm's
integrated loudness of the whole signal: the Embedder measures long files in a streaming pass,
the site measures its clips whole, and their vectors must match."""

from __future__ import annotations

import numpy as np
import pytest

from csn_model.loudness import LoudnessMeter, loudness_lufs


def _music(seconds: float, sr: int, channels: int, seed: int) -> np.ndarray:
    """Tones and noise with a quiet passage (so both gates cut blocks), (T, C) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.stack([np.sin(2 * np.pi * (110 + 50 * c) * t) + 0.3 * rng.standard_normal(t.size)
                  for c in range(channels)], axis=1)  # fmt: skip  # (T, C)
    x *= np.where((t > seconds / 3) & (t < seconds / 2), 0.001, 0.2)[:, None]
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
