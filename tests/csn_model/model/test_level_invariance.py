"""Level: features.db_ref "max" references the log-mel to each segment's own maximum, so a clip
and the same clip at another gain embed alike; "one" (every checkpoint from before the field)
still embeds as before."""

from __future__ import annotations

from dataclasses import replace

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from csn_model.checkpoint import load_checkpoint, load_model, save_checkpoint
from csn_model.config import FeatureConfig
from csn_model.features import frontend_from_config, reference_logmel
from csn_model.inference import Embedder, embed_batch
from csn_model.model import build_model, model_args_from_config


def _clip(tiny_dataset) -> np.ndarray:
    mix, _sr = sf.read(sorted(tiny_dataset.glob("test/*/mix.*"))[0], dtype="float32")  # (T,)
    return mix[: 22050 * 2]


def _model(smoke_cfg, db_ref: str):
    cfg = replace(smoke_cfg, features=replace(smoke_cfg.features, db_ref=db_ref))
    torch.manual_seed(0)
    return build_model("csn", model_args_from_config(cfg)).eval()


def test_it_embeds_a_clip_and_the_same_clip_10_db_quieter_alike_with_db_ref_max(
    smoke_cfg, tiny_dataset
):
    clip = _clip(tiny_dataset)
    both = np.stack([clip, clip * 10 ** (-10 / 20)])  # (2, T)
    loud, quiet = embed_batch(_model(smoke_cfg, "max"), both)
    np.testing.assert_allclose(quiet, loud, rtol=1e-4, atol=1e-5)
    one_loud, one_quiet = embed_batch(_model(smoke_cfg, "one"), both)
    assert np.linalg.norm(one_loud - one_quiet) > 100 * np.linalg.norm(loud - quiet)


def test_it_embeds_silence_at_db_ref_max_without_nan(smoke_cfg):
    out = embed_batch(_model(smoke_cfg, "max"), np.zeros((2, 22050), np.float32))
    assert np.isfinite(out).all()


def test_it_matches_librosas_log_mel_referenced_to_the_maximum(tiny_dataset):
    cfg = FeatureConfig(db_ref="max")
    clip = _clip(tiny_dataset)
    got = frontend_from_config(cfg)(torch.from_numpy(clip)[None])[0].numpy()  # (n_mels, frames)
    mel = librosa.feature.melspectrogram(y=clip, sr=cfg.sample_rate)
    want = librosa.power_to_db(mel, ref=np.max, top_db=cfg.top_db)
    np.testing.assert_allclose(got, want, atol=2e-3)
    np.testing.assert_allclose(got, reference_logmel(clip, cfg), atol=2e-3)
    assert got.max() == 0.0


def test_it_loads_a_checkpoint_from_before_db_ref_as_referenced_to_one(
    smoke_run, tiny_dataset, tmp_path
):
    payload = load_checkpoint(smoke_run)
    assert payload["model_args"]["features"]["db_ref"] == "one"
    del payload["model_args"]["features"]["db_ref"]  # as every checkpoint before the field
    del payload["config"]["features"]["db_ref"]
    old = save_checkpoint(tmp_path / "old.pt", payload)
    model, _ = load_model(old)
    assert model.frontend.db_ref == "one"
    waves = [_clip(tiny_dataset)]
    before = Embedder.from_checkpoint(smoke_run, device="cpu").embed_waveforms(waves, 22050)
    after = Embedder.from_checkpoint(old, device="cpu").embed_waveforms(waves, 22050)
    np.testing.assert_array_equal(after, before)


def test_it_refuses_an_unknown_db_ref_in_a_checkpoint(smoke_run, tmp_path):
    from csn_model.checkpoint import CheckpointError

    payload = load_checkpoint(smoke_run)
    payload["model_args"]["features"]["db_ref"] = "peak"
    bad = save_checkpoint(tmp_path / "bad.pt", payload)
    with pytest.raises(CheckpointError, match=r"model_args\.features\.db_ref must be 'one' or"):
        load_model(bad)
