"""Level: Embedder and `csn embed` bring audio to the site's loudness target before embedding
(the model's log-mel is not level-invariant), unless told not to."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from csn_model.cli import main
from csn_model.inference import Embedder
from csn_model.loudness import DEFAULT_TARGET_LUFS, loudness_lufs, playback_lufs


@pytest.fixture(scope="module")
def embedder(smoke_run):
    return Embedder.from_checkpoint(smoke_run, device="cpu")


@pytest.fixture(scope="module")
def raw(smoke_run):
    return Embedder.from_checkpoint(smoke_run, device="cpu", target_lufs=None)


def _two_levels(tiny_dataset, tmp_path):
    """A stereo 44.1 kHz copy of a test mix, and the same 6 dB quieter."""
    mix, sr = sf.read(sorted(tiny_dataset.glob("test/*/mix.*"))[0], dtype="float32")  # (T,)
    loud = np.stack([mix, 0.8 * mix], axis=1) * 0.5  # (T, 2)
    paths = [tmp_path / "loud.wav", tmp_path / "quiet.wav"]
    sf.write(paths[0], loud, sr, subtype="FLOAT")
    sf.write(paths[1], loud * 0.5, sr, subtype="FLOAT")
    return paths


def test_it_embeds_the_same_file_at_two_levels_alike_by_default(embedder, raw, tiny_dataset,
                                                                  tmp_path):  # fmt: skip
    loud, quiet = embedder.embed_files(_two_levels(tiny_dataset, tmp_path))
    np.testing.assert_allclose(loud, quiet, rtol=1e-4, atol=1e-5)
    assert embedder.target_lufs == DEFAULT_TARGET_LUFS == -23.0
    unlevelled = raw.embed_files(_two_levels(tiny_dataset, tmp_path))
    assert np.linalg.norm(unlevelled[0] - unlevelled[1]) > 100 * np.linalg.norm(loud - quiet)


def test_it_embeds_audio_as_the_site_would_after_levelling_it_to_the_target(
    embedder, raw, tiny_dataset, tmp_path
):
    from csn_model.loudness import normalise

    path = _two_levels(tiny_dataset, tmp_path)[1]
    data, sr = sf.read(path, dtype="float32", always_2d=True)  # (T, 2)
    levelled, _ = normalise(data, sr, -23.0)  # as the site's query path: level, then mono
    assert playback_lufs(loudness_lufs(levelled, sr), 2) == pytest.approx(-23.0, abs=0.05)
    site = raw.embed_waveforms([levelled.mean(axis=1)], sr)
    np.testing.assert_allclose(embedder.embed_files([path]), site, rtol=1e-5, atol=1e-6)


def test_it_levels_waveforms_as_mono_files(embedder, raw, tiny_dataset):
    mix, sr = sf.read(sorted(tiny_dataset.glob("test/*/mix.*"))[0], dtype="float32")
    a, b = embedder.embed_waveforms([mix, 0.25 * mix], sr)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_command_line_levels_by_default_and_not_with_no_level(smoke_run, tiny_dataset,
                                                                   tmp_path, capsys):  # fmt: skip
    paths = [str(p) for p in _two_levels(tiny_dataset, tmp_path)]
    ckpt = ["--checkpoint", str(smoke_run)]
    assert main(["embed", *paths, *ckpt]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["target_lufs"] == -23.0
    loud, quiet = np.asarray(doc["embeddings"])
    np.testing.assert_allclose(loud, quiet, rtol=1e-4, atol=1e-5)
    assert main(["embed", *paths, *ckpt, "--no-level"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["target_lufs"] is None
    loud, quiet = np.asarray(doc["embeddings"])
    assert np.linalg.norm(loud - quiet) > 1e-3
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    assert "--no-level" in capsys.readouterr().out
