"""Embedding files and waveforms with a trained checkpoint; the `csn embed` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from csn_model.cli import main
from csn_model.embed_cli import EXIT_FILES_FAILED
from csn_model.inference import Embedder, EmbedError, embed_batch, segment_starts


@pytest.fixture(scope="module")
def embedder(smoke_run):
    return Embedder.from_checkpoint(smoke_run, device="cpu")


def test_it_describes_the_checkpoint(embedder):
    assert len(embedder.checkpoint_id) == 16
    assert embedder.sample_rate == 22050 and embedder.dim == 40
    assert list(embedder.subspace_slices) == list(embedder.conditions)
    assert embedder.subspace_slices["bass"] == slice(8, 16)


def test_it_cuts_long_clips_into_segments_by_the_documented_rule():
    assert segment_starts(100, 100) == [0]
    assert segment_starts(249, 100) == [0, 100]  # remainder 49 < 50: dropped
    assert segment_starts(250, 100) == [0, 100, 150]  # remainder 50: a last segment at the end


def test_it_averages_segment_embeddings_of_a_long_waveform(smoke_run):
    embedder = Embedder.from_checkpoint(smoke_run, device="cpu", target_lufs=None)  # as it is
    rng = np.random.default_rng(0)
    seg = embedder.segment
    long = (0.1 * rng.standard_normal(2 * seg)).astype(np.float32)
    whole = embedder.embed_waveforms([long], embedder.sample_rate)  # (1, D)
    parts = embed_batch(embedder.model, np.stack([long[:seg], long[seg:]]))  # (2, D)
    np.testing.assert_allclose(whole[0], parts.mean(0), rtol=1e-5, atol=1e-6)


def test_it_embeds_files_like_the_same_waveforms(embedder, tiny_dataset, tmp_path):
    files = sorted(tiny_dataset.glob("test/*/mix.*"))[:2]
    waves = [sf.read(f, dtype="float32")[0] for f in files]
    mono_44k = np.repeat(waves[0][:22050], 2)  # (44100,) one second at 44.1 kHz
    stereo_44k = tmp_path / "stereo.wav"  # decode -> mono -> resample path
    sf.write(stereo_44k, np.stack([mono_44k] * 2, axis=1), 44100, subtype="FLOAT")
    v = embedder.embed_files([*files, stereo_44k])
    w = embedder.embed_waveforms(waves, 22050)
    w44 = embedder.embed_waveforms([mono_44k], 44100)
    assert v.shape == (3, 40) and v.dtype == np.float32
    np.testing.assert_allclose(v, np.concatenate([w, w44]), rtol=1e-4, atol=1e-5)
    assert embedder.subspace(v, "piano").shape == (3, 8)
    np.testing.assert_array_equal(embedder.subspace(v, "piano"), v[:, 16:24])


def test_it_returns_one_subspace_from_embed_batch(embedder):
    x = np.zeros((3, 4096), np.float32)
    assert embed_batch(embedder.model, x, condition="guitar").shape == (3, 8)


def test_it_names_a_file_it_cannot_decode(embedder, tmp_path):
    bad = tmp_path / "not_audio.wav"
    bad.write_text("hello")
    with pytest.raises(EmbedError, match="not_audio.wav"):
        embedder.embed_files([bad])


def test_it_raises_the_os_error_for_a_file_it_cannot_open(embedder, tmp_path):
    # Not "cannot decode": a missing or unreadable file says nothing about its audio, and the
    # caller (the site's embedding task) retries it.
    with pytest.raises(FileNotFoundError):
        embedder.embed_files([tmp_path / "gone.wav"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_it_names_a_file_whose_samples_are_not_finite(embedder, tmp_path, bad):
    # One NaN sample makes the whole log-mel, and so the embedding, NaN.
    wave = np.zeros(22050, np.float32)
    wave[100] = bad
    path = tmp_path / "broken.wav"
    sf.write(path, wave, 22050, subtype="FLOAT")
    with pytest.raises(EmbedError, match=r"broken\.wav.*NaN or infinity"):
        embedder.embed_files([path])


def test_it_writes_embeddings_from_the_command_line(smoke_run, tiny_dataset, tmp_path, capsys):
    files = [str(f) for f in sorted(tiny_dataset.glob("test/*/mix.*"))[:2]]
    out = tmp_path / "e.npy"
    assert main(["embed", *files, "--checkpoint", str(smoke_run), "--out", str(out)]) == 0
    assert np.load(out).shape == (2, 40)
    assert main(["embed", files[0], "--checkpoint", str(smoke_run)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["subspace_slices"]["drums"] == [0, 8] and len(doc["embeddings"][0]) == 40
    assert main(["embed", files[0], "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_it_writes_each_conditions_learned_mask_to_the_json(smoke_cfg, tiny_dataset, tmp_path):
    # With learned masks a subspace is the whole vector times a mask: no slice describes it.
    from dataclasses import replace

    import torch

    from csn_model.checkpoint import load_model, make_payload, save_checkpoint
    from csn_model.config import to_dict
    from csn_model.model import build_model, model_args_from_config

    cfg = replace(smoke_cfg, model=replace(smoke_cfg.model, learned_masks=True))
    args = model_args_from_config(cfg)
    torch.manual_seed(0)  # masks from N(0.9, 0.7): some entries are zero after the ReLU
    payload = make_payload("csn", args, build_model("csn", args), to_dict(cfg))
    checkpoint = save_checkpoint(tmp_path / "learned.pt", payload)
    file = str(sorted(tiny_dataset.glob("test/*/mix.*"))[0])
    out = tmp_path / "e.json"
    assert main(["embed", file, "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert "subspace_slices" not in doc and list(doc["subspace_masks"]) == list(doc["conditions"])
    masks = load_model(checkpoint)[0].masks().detach().numpy()  # (K, D)
    for k, c in enumerate(doc["conditions"]):
        np.testing.assert_array_equal(doc["subspace_masks"][c], masks[k])
    assert len(doc["embeddings"][0]) == 40
    v = np.asarray(doc["embeddings"], np.float32)  # (1, D)
    embedder = Embedder.from_checkpoint(checkpoint, device="cpu")
    np.testing.assert_array_equal(embedder.subspace(v, "bass"), v * masks[1])


@pytest.mark.parametrize("peak_dbfs", [None, -70.0, -60.5])
def test_it_refuses_a_silent_file_naming_it(embedder, tmp_path, peak_dbfs):
    # The catalogue's rule (evalsite.stimuli.audio): a peak below -60 dBFS is silence.
    wave = np.zeros((22050, 2), np.float32)  # stereo: the peak is over every channel
    if peak_dbfs is not None:
        wave[100, 1] = 10 ** (peak_dbfs / 20)
    path = tmp_path / "silent.wav"
    sf.write(path, wave, 22050, subtype="FLOAT")
    with pytest.raises(EmbedError, match=r"silent\.wav: silent .*-60 dBFS"):
        embedder.embed_files([path])


def test_it_embeds_a_quiet_file_that_is_not_silent(embedder, tmp_path):
    wave = 10 ** (-55 / 20) * np.sin(np.arange(22050, dtype=np.float32) / 10)  # peak ~ -55 dBFS
    path = tmp_path / "quiet.wav"
    sf.write(path, wave.astype(np.float32), 22050, subtype="FLOAT")
    assert np.isfinite(embedder.embed_files([path])).all()


def test_it_names_a_silent_file_from_the_command_line(smoke_run, tmp_path, capsys):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(22050, np.float32), 22050)
    assert main(["embed", str(path), "--checkpoint", str(smoke_run)]) == EXIT_FILES_FAILED
    err = capsys.readouterr().err
    assert err.startswith("csn embed: error: ") and "silent.wav: silent" in err


def test_it_refuses_a_dc_offset_as_silent(embedder, tmp_path):
    # The catalogue's rule (csn_model.silence): judged above 20 Hz, a constant makes no sound.
    path = tmp_path / "dc.wav"
    sf.write(path, np.full((22050, 2), 0.5, np.float32), 22050, subtype="FLOAT")
    with pytest.raises(EmbedError, match=r"dc\.wav: silent \(peak -\d+\.\d dBFS above 20 Hz\)"):
        embedder.embed_files([path])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_it_refuses_a_waveform_whose_samples_are_not_finite(embedder, bad):
    good = (0.1 * np.random.default_rng(0).standard_normal(22050)).astype(np.float32)
    broken = good.copy()
    broken[5] = bad
    with pytest.raises(EmbedError, match=r"^waveform 1: samples contain NaN or infinity"):
        embedder.embed_waveforms([good, broken], 22050)


def test_it_refuses_a_silent_waveform(embedder):
    with pytest.raises(EmbedError, match=r"^waveform 0: silent \(peak .*-60 dBFS"):
        embedder.embed_waveforms([np.zeros(44100, np.float32)], 44100)


def test_it_refuses_a_stereo_file_whose_mono_mix_is_silent(embedder, tmp_path):
    # The model hears the mean of the channels: R = -L is silence, however loud each channel.
    left = 0.3 * np.sin(np.arange(22050, dtype=np.float32) / 5)
    path = tmp_path / "antiphase.wav"
    sf.write(path, np.stack([left, -left], axis=1), 22050, subtype="FLOAT")
    with pytest.raises(EmbedError, match=r"antiphase\.wav: silent"):
        embedder.embed_files([path])


def test_it_refuses_a_device_without_cuda_with_a_clear_error(smoke_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"^device 'cuda': .*without CUDA|not available"):
        Embedder.from_checkpoint(smoke_run, device="cuda")
    with pytest.raises(ValueError, match=r"^device 'auto': expected cpu, cuda or cuda:N"):
        Embedder.from_checkpoint(smoke_run, device="auto")


def test_it_refuses_a_gpu_index_this_process_does_not_see(monkeypatch):
    import torch

    from csn_model.inference import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == torch.device("cuda:0")
    assert check_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"^device 'cuda:5': this process sees 1 GPU"):
        check_device("cuda:5")


def test_it_embeds_a_chunk_in_groups_within_the_sample_budget(embedder, tmp_path, monkeypatch):
    # Memory: the decoded audio held at once is bounded by the budget plus one file, and no
    # array of more than batch_size segments is built, however many files a chunk holds.
    seg = embedder.segment
    rng = np.random.default_rng(2)
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], (0.1 * rng.standard_normal(2 * seg + i)).astype(np.float32), 22050)
    expected = embedder.embed_files(paths)
    import csn_model.inference as inference

    held, rows = [], []
    embed_clips, embed = Embedder._embed_clips, inference.embed_batch
    monkeypatch.setattr(
        Embedder,
        "_embed_clips",
        lambda s, c: held.append(sum(w.size for w in c)) or embed_clips(s, c),
    )
    monkeypatch.setattr(
        inference, "embed_batch", lambda m, x, **kw: rows.append(len(x)) or embed(m, x, **kw)
    )
    monkeypatch.setattr(embedder, "sample_budget", 3 * seg)
    monkeypatch.setattr(embedder, "batch_size", 2)
    np.testing.assert_allclose(embedder.embed_files(paths), expected, rtol=1e-5, atol=1e-6)
    assert len(held) >= 3 and max(held) < 3 * seg + (2 * seg + 5)
    assert max(rows) <= 2


def test_it_names_a_file_whose_sample_rate_is_too_low_to_judge_silence(embedder, tmp_path):
    # The silence rule's 20 Hz high-pass needs a rate above 40 Hz (scipy's traceback before).
    path = tmp_path / "sr30.wav"
    sf.write(path, (0.5 * np.sin(np.arange(300))).astype(np.float32), 30)
    with pytest.raises(EmbedError, match=r"sr30\.wav: sample rate 30 Hz; expected above 40 Hz"):
        embedder.embed_files([path])
