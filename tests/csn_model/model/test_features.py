"""The torch log-mel front end against librosa (the reference the whole project relies on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csn_model.config import FeatureConfig
from csn_model.features import frontend_from_config, reference_logmel


def _clips(n: int, length: int, sr: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(length) / sr
    clips = [
        0.3 * np.sin(2 * np.pi * (110 + 200 * i) * t) + 0.05 * rng.standard_normal(length)
        for i in range(n)
    ]
    clips[0][: length // 3] = 0.0  # silence: exercises amin and the top_db floor
    return np.stack(clips).astype(np.float32)  # (n, T)


@pytest.mark.parametrize("top_db", [80.0, None])
def test_it_matches_librosa_log_mel(top_db):
    cfg = FeatureConfig(top_db=top_db)
    fe = frontend_from_config(cfg)
    x = _clips(3, 22050 + 123, cfg.sample_rate)  # not a multiple of the hop
    with torch.no_grad():
        ours = fe(torch.from_numpy(x)).numpy()  # (3, M, F)
    for i in range(3):
        ref = reference_logmel(x[i], cfg)  # (M, F)
        assert ours[i].shape == ref.shape
        np.testing.assert_allclose(ours[i], ref, rtol=0, atol=1e-4)  # dB; measured ~1e-5


def test_it_matches_librosa_mel_power_to_float32_precision():
    import librosa

    cfg = FeatureConfig()
    fe = frontend_from_config(cfg)
    x = _clips(2, 3 * 22050, cfg.sample_rate)
    with torch.no_grad():
        ours = fe.power_mel(torch.from_numpy(x)).numpy().transpose(0, 2, 1)  # (2, M, F)
    ref = librosa.feature.melspectrogram(y=x, sr=cfg.sample_rate, n_fft=2048, hop_length=512)
    rel = np.abs(ours - ref).max() / np.abs(ref).max()
    assert rel < 1e-6  # measured 1.7e-7


def test_it_gives_the_same_features_in_cpu_chunks_as_one_by_one():
    fe = frontend_from_config(FeatureConfig())
    x = torch.from_numpy(_clips(11, 8000, 22050))  # 11 > CPU_CHUNK: chunked path
    with torch.no_grad():
        batched = fe(x)
        single = torch.cat([fe(x[i : i + 1]) for i in range(11)])
    torch.testing.assert_close(batched, single)


def test_it_gives_the_paper_config_the_mel_bands_of_method_md_at_44_1_khz():
    """paper.yaml doubles n_fft and hop at 44.1 kHz to keep METHOD.md's 22.05 kHz / 2048 / 512
    front end: the same bins (10.77 Hz apart) must feed the same 128 bands."""
    from pathlib import Path

    from csn_model.bench_config import load_bench_config

    paper = Path(__file__).resolve().parents[3] / "experiments" / "configs" / "paper.yaml"
    fe_paper = frontend_from_config(load_bench_config(paper).features)
    fe_method = frontend_from_config(FeatureConfig())  # 22.05 kHz, n_fft 2048, hop 512
    assert fe_paper.hop_length / fe_paper.sample_rate == fe_method.hop_length / 22050
    fb_paper = fe_paper.mel_fb2_t[::2].numpy()  # (2049, 128): one row per bin
    fb_method = fe_method.mel_fb2_t[::2].numpy()  # (1025, 128)
    hz_paper = np.arange(len(fb_paper)) * fe_paper.sample_rate / fe_paper.n_fft  # (2049,)
    hz_method = np.arange(len(fb_method)) * 22050 / 2048  # (1025,)
    centres_paper = hz_paper @ fb_paper / fb_paper.sum(axis=0)  # (128,)
    centres_method = hz_method @ fb_method / fb_method.sum(axis=0)  # (128,)
    np.testing.assert_allclose(centres_paper, centres_method, rtol=1e-6)
    np.testing.assert_allclose(fb_paper[: len(fb_method)], fb_method, rtol=1e-6, atol=0)
    assert not fb_paper[len(fb_method) :].any()  # nothing above 11,025 Hz
