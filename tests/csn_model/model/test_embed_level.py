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


def test_it_levels_a_file_of_more_channels_than_the_site_takes_as_its_mono_mix(
    embedder, tiny_dataset, tmp_path
):
    """A 5.1 export (six channels, more than BS.1770's five) is levelled on the mono mix the model
    embeds, measured as a mono file: six equal channels give the vector of the mono file."""
    mix, sr = sf.read(sorted(tiny_dataset.glob("test/*/mix.*"))[0], dtype="float32")  # (T,)
    mono, six = tmp_path / "mono.wav", tmp_path / "six.wav"
    sf.write(mono, 0.3 * mix, sr, subtype="FLOAT")
    sf.write(six, np.repeat(0.3 * mix[:, None], 6, axis=1), sr, subtype="FLOAT")  # (T, 6)
    a, b = embedder.embed_files([mono, six])
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_the_command_line_embeds_a_six_channel_file_among_others(smoke_run, tiny_dataset,
                                                                 tmp_path, capsys):  # fmt: skip
    mix, sr = sf.read(sorted(tiny_dataset.glob("test/*/mix.*"))[0], dtype="float32")  # (T,)
    paths = [tmp_path / "mono.wav", tmp_path / "six.wav", tmp_path / "stereo.wav"]
    for path, channels in zip(paths, (1, 6, 2), strict=True):
        sf.write(path, np.repeat(0.3 * mix[:, None], channels, axis=1), sr, subtype="PCM_16")
    assert main(["embed", *map(str, paths), "--checkpoint", str(smoke_run)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"] == list(map(str, paths)) and doc["failed"] == []


def test_levelling_a_long_file_holds_no_copy_of_it_at_its_own_rate_and_channels(embedder, tmp_path):
    """Loudness is measured in a streaming pass, so decoding a 120 s 44.1 kHz stereo file holds
    its mono clip at the model's rate and a few blocks, not the file (42 MB as float32, more
    than twice that as pyloudnorm's float64 copies)."""
    import tracemalloc

    from csn_model.inference import decode

    sr, seconds = 44100, 120
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((sr * seconds, 2))).astype(np.float32)  # (T, 2)
    path = tmp_path / "long.wav"
    sf.write(path, x, sr, subtype="PCM_16")
    native = x.nbytes
    del x
    tracemalloc.start()
    try:
        clip = decode(path, embedder.sample_rate, -23.0)  # (T',) at the model's rate
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - 2 * clip.nbytes < native / 2
