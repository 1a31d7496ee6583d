"""The separator baseline: shapes, the SDR definition, bounds, a short training run."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from csn_model import CONDITIONS
from csn_model.data.slakh import SlakhDataset
from csn_model.separation import (
    BATCHES_VERSION,
    MaskSeparator,
    SeparatorConfig,
    TrainedSeparator,
    ideal_ratio_mask,
    sdr,
    sdr_table,
    summarise_sdr,
    train_separator,
)


def test_it_maps_a_mixture_batch_to_five_stems_that_sum_to_it():
    torch.manual_seed(0)
    model = MaskSeparator(n_fft=256, hop=64, hidden=16, lstm_layers=1).eval()
    mix = torch.randn(3, 4000)  # (B, T)
    with torch.no_grad():
        est = model(mix)  # (B, K, T)
    assert est.shape == (3, len(CONDITIONS), 4000)
    # Softmax masks over sources: the estimates add back up to the mixture (up to iSTFT edges).
    np.testing.assert_allclose(est.sum(1)[:, 256:-256], mix[:, 256:-256], atol=1e-4)


def test_it_computes_sdr_as_the_mdx_definition():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(10000)
    noise = rng.standard_normal(10000)
    # Error at one tenth the amplitude of the signal: 20 dB (10 log10 of the energy ratio 100).
    assert sdr(s, s + 0.1 * noise * np.linalg.norm(s) / np.linalg.norm(noise)) == pytest.approx(
        20.0, abs=1e-6
    )
    assert sdr(s, s) > 80


def test_it_recovers_disjoint_sources_with_the_ideal_mask():
    # Two sinusoids far apart in frequency: the ideal ratio mask separates them almost perfectly.
    t = np.arange(22050) / 22050
    stems = np.zeros((1, len(CONDITIONS), t.size), dtype=np.float32)
    stems[0, 0] = np.sin(2 * np.pi * 220 * t)
    stems[0, 1] = 0.5 * np.sin(2 * np.pi * 3000 * t)
    est = ideal_ratio_mask(torch.from_numpy(stems), MaskSeparator())[0].numpy()  # (K, T)
    assert sdr(stems[0, 0], est[0]) > 25
    assert sdr(stems[0, 1], est[1]) > 25


def test_it_trains_saves_reloads_and_scores_on_the_tiny_dataset(tiny_dataset, tmp_path):
    ds = SlakhDataset(tiny_dataset)
    cfg = SeparatorConfig(n_fft=512, hop=128, hidden=32, lstm_layers=1, steps=6, batch_size=2,
                          segment_seconds=1.0)  # fmt: skip
    path = train_separator(ds, cfg, tmp_path / "sep.pt", log=lambda _m: None)
    made = path.stat().st_ino  # a retrained checkpoint is written anew (temporary file, rename)
    assert train_separator(ds, cfg, path) == path and path.stat().st_ino == made  # kept as is
    sep = TrainedSeparator(path, device="cpu")
    table = sdr_table(ds, sep, "test", chunk_seconds=4.0)
    summary = {(r["method"], r["condition"]): r for r in summarise_sdr(table)}
    assert set(table["method"]) == {"separator", "ideal_ratio_mask", "mixture"}
    present = {c for t in ds.tracks("test") for c in t.conditions}
    assert {c for (_m, c) in summary} == present
    for cond in present:  # the oracle mask beats using the mixture as every stem
        assert summary[("ideal_ratio_mask", cond)]["mean"] > summary[("mixture", cond)]["mean"]


TINY_SEPARATOR = SeparatorConfig(
    n_fft=256, hop=64, hidden=16, lstm_layers=1, steps=3, batch_size=2, segment_seconds=1.0
)


def test_it_resumes_training_from_its_partial_file(tiny_dataset, tmp_path, monkeypatch):
    import csn_model.separation as separation

    ds = SlakhDataset(tiny_dataset)
    path = tmp_path / "sep.pt"
    save = separation._atomic_save

    def crash_at_the_end(obj, target):
        if target == path:
            raise KeyboardInterrupt  # after the last step's partial file, before the checkpoint
        save(obj, target)

    with monkeypatch.context() as m:
        m.setattr(separation, "_atomic_save", crash_at_the_end)
        with pytest.raises(KeyboardInterrupt):
            train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    partial = path.with_suffix(".partial")
    state = torch.load(partial, weights_only=True)
    assert state["step"] == TINY_SEPARATOR.steps
    # Training is deterministic, so a run from scratch would give the same weights as a resumed
    # one. Mark the saved state (+1.0 on one tensor) so that only a resume can produce it: the
    # partial file is at the last step, so resuming trains no further and writes it out as is.
    crashed = {k: v.clone() for k, v in state["state_dict"].items()}
    state["state_dict"]["fc3.bias"] += 1.0
    marked = state["state_dict"]
    torch.save(state, partial)
    assert train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None) == path
    again = train_separator(ds, TINY_SEPARATOR, tmp_path / "again.pt", log=lambda _m: None)
    a = torch.load(path, weights_only=True)["state_dict"]
    b = torch.load(again, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() == marked.keys() and not partial.exists()
    assert all(torch.equal(a[k], marked[k]) for k in a)  # the resumed run kept the mark
    assert all(torch.equal(b[k], crashed[k]) for k in b)  # an uninterrupted run has no mark
    assert torch.allclose(a["fc3.bias"] - b["fc3.bias"], torch.ones_like(b["fc3.bias"]))


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_it_refuses_a_partial_file_that_would_run_code(tiny_dataset, tmp_path):
    ds = SlakhDataset(tiny_dataset)
    path, marker = tmp_path / "sep.pt", tmp_path / "ran"
    torch.save({"step": 0, "payload": _RunsCodeWhenUnpickled(marker)}, path.with_suffix(".partial"))
    with pytest.raises(ValueError, match=r"sep\.partial"):
        train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    assert not marker.exists() and not path.exists()


def _untrained_separator(ds, path, device):
    cfg = SeparatorConfig(n_fft=512, hop=128, hidden=16, lstm_layers=1, steps=0)
    return TrainedSeparator(train_separator(ds, cfg, path, log=lambda _m: None), device=device)


def test_it_measures_sdr_without_moving_the_separators_model(tiny_dataset, tmp_path, monkeypatch):
    # On a GPU machine a model moved to the CPU under a separator whose device still says cuda
    # breaks its next separate() call; on CPU the move itself is what can be observed.
    ds = SlakhDataset(tiny_dataset)
    sep = _untrained_separator(ds, tmp_path / "sep.pt", "cpu")
    moved = []
    apply = torch.nn.Module._apply

    def spy(module, fn, *args, **kwargs):
        moved.append(module)
        return apply(module, fn, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "_apply", spy)
    assert len(sdr_table(ds, sep, "test", chunk_seconds=4.0)) > 0
    assert not any(m is sep.model for m in moved)


@pytest.mark.gpu
def test_it_separates_on_cuda_after_measuring_sdr(tiny_dataset, tmp_path):
    ds = SlakhDataset(tiny_dataset)
    sep = _untrained_separator(ds, tmp_path / "sep.pt", "cuda")
    sdr_table(ds, sep, "test", chunk_seconds=4.0)
    assert all(p.device.type == "cuda" for p in sep.model.parameters())
    assert sep.separate(np.zeros((1, 22050), np.float32)).shape == (1, len(CONDITIONS), 22050)


class _Reads:
    """A real track of the tiny dataset that notes where each condition is read from."""

    def __init__(self, track, log):
        self.track, self.log = track, log
        self.name, self.num_frames = track.name, track.num_frames

    def read_condition(self, condition, start, num_frames):
        self.log.append((self.name, start))
        return self.track.read_condition(condition, start, num_frames)


def _batch_reads(ds, remix: float) -> tuple[np.ndarray, list[list[tuple[str, int]]]]:
    from csn_model.separation import _batch

    log: list[tuple[str, int]] = []
    tracks = [_Reads(t, log) for t in ds.tracks("train")]
    cfg = SeparatorConfig(remix=remix, batch_size=6, segment_seconds=1.0)
    stems = _batch(tracks, np.random.default_rng(0), cfg, ds.sample_rate)  # (B, K, T)
    k = len(CONDITIONS)
    return stems, [log[i : i + k] for i in range(0, len(log), k)]


def test_it_trains_the_separator_on_real_aligned_mixtures_when_nothing_is_remixed(tiny_dataset):
    ds = SlakhDataset(tiny_dataset)
    stems, items = _batch_reads(ds, remix=0.0)
    assert len(items) == len(stems) == 6
    for item, reads in zip(stems, items, strict=True):
        assert len(set(reads)) == 1, f"stems of one item read from {reads}"  # same piece, start
        name, start = reads[0]
        real = ds.track(name).read_mix(start, ds.sample_rate)  # (T,)
        np.testing.assert_allclose(item.sum(axis=0), real, atol=1e-3)


def test_it_takes_remixed_stems_from_other_pieces_at_their_own_starts(tiny_dataset):
    _stems, items = _batch_reads(SlakhDataset(tiny_dataset), remix=1.0)
    assert any(len({name for name, _ in reads}) > 1 for reads in items)
    assert any(len({start for _, start in reads}) > 1 for reads in items)


def test_it_refuses_a_separator_trained_on_unaligned_batches(tiny_dataset, tmp_path):
    ds = SlakhDataset(tiny_dataset)
    path = train_separator(ds, TINY_SEPARATOR, tmp_path / "sep.pt", log=lambda _m: None)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["versions"]["batches"] == BATCHES_VERSION
    del ckpt["versions"]["batches"]  # as written before the batches were versioned
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="batches version 1") as err:
        train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    assert str(path) in str(err.value) and "delete" in str(err.value)


def _interrupted_at_the_end(ds, path, monkeypatch, cfg=TINY_SEPARATOR):
    """separator.partial of a training of cfg on ds stopped after its last step, before the
    checkpoint."""
    import csn_model.separation as separation

    save = separation._atomic_save

    def crash_at_the_end(obj, target):
        if target == path:
            raise KeyboardInterrupt
        save(obj, target)

    with monkeypatch.context() as m:
        m.setattr(separation, "_atomic_save", crash_at_the_end)
        with pytest.raises(KeyboardInterrupt):
            train_separator(ds, cfg, path, log=lambda _m: None)
    return path.with_suffix(".partial")


def _changed_copy(tiny_dataset, tmp_path):
    import shutil

    changed = shutil.copytree(tiny_dataset, tmp_path / "changed")
    meta = next((changed / "validation").glob("*/metadata.yaml"))
    meta.write_text(meta.read_text() + "# edited\n")  # the same tracks, another fingerprint
    return changed


def test_it_records_the_training_datasets_fingerprint(tiny_dataset, tmp_path, monkeypatch):
    ds = SlakhDataset(tiny_dataset)
    partial = _interrupted_at_the_end(ds, tmp_path / "sep.pt", monkeypatch)
    want = {"root": str(tiny_dataset.resolve()), "fingerprint": ds.fingerprint}
    assert torch.load(partial, weights_only=True)["dataset"] == want
    path = train_separator(ds, TINY_SEPARATOR, tmp_path / "sep.pt", log=lambda _m: None)
    assert torch.load(path, weights_only=True)["dataset"] == want


def test_it_refuses_to_resume_a_partial_file_of_another_dataset(
    tiny_dataset, tmp_path, monkeypatch
):
    changed = _changed_copy(tiny_dataset, tmp_path)
    path = tmp_path / "sep.pt"
    partial = _interrupted_at_the_end(SlakhDataset(changed), path, monkeypatch)
    ds = SlakhDataset(tiny_dataset)
    with pytest.raises(ValueError) as err:
        train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    message = str(err.value)
    assert message.startswith(f"{partial}:") and "delete" in message, message
    assert SlakhDataset(changed).fingerprint in message and ds.fingerprint in message, message
    assert not path.exists()


def test_it_refuses_to_keep_a_checkpoint_of_another_dataset(tiny_dataset, tmp_path):
    changed = _changed_copy(tiny_dataset, tmp_path)
    path = train_separator(
        SlakhDataset(changed), TINY_SEPARATOR, tmp_path / "sep.pt", log=lambda _m: None
    )
    ds = SlakhDataset(tiny_dataset)
    with pytest.raises(ValueError) as err:
        train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    assert str(err.value).startswith(f"{path}:") and ds.fingerprint in str(err.value)


def test_a_partial_file_saved_before_dataset_records_is_resumed_only_when_vouched_for(
    tiny_dataset, tmp_path, monkeypatch
):
    ds = SlakhDataset(tiny_dataset)
    path = tmp_path / "sep.pt"
    partial = _interrupted_at_the_end(ds, path, monkeypatch)
    state = torch.load(partial, weights_only=True)
    state.pop("dataset")  # as saved before separators recorded their dataset
    torch.save(state, partial)
    with pytest.raises(ValueError, match="records no dataset") as err:
        train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    assert str(err.value).startswith(f"{partial}:") and "delete" in str(err.value)
    said: list[str] = []
    assert train_separator(ds, TINY_SEPARATOR, path, log=said.append, unrecorded_ok=True) == path
    assert any(str(partial) in m and "records no dataset" in m for m in said), said
    assert torch.load(path, weights_only=True)["dataset"]["fingerprint"] == ds.fingerprint


def test_it_records_the_settings_and_sample_rate_in_its_partial_file(
    tiny_dataset, tmp_path, monkeypatch
):
    ds = SlakhDataset(tiny_dataset)
    state = torch.load(
        _interrupted_at_the_end(ds, tmp_path / "sep.pt", monkeypatch), weights_only=True
    )
    assert state["config"] == asdict(TINY_SEPARATOR)
    assert state["versions"]["sample_rate"] == ds.sample_rate


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"lr": 0.01}, "separator.lr 0.001 (run: 0.01)"),  # would resume silently
        ({"hidden": 8}, "separator.hidden 16 (run: 8)"),  # would fail to load its weights
    ],
)
def test_it_refuses_to_resume_a_partial_file_of_other_settings(
    tiny_dataset, tmp_path, monkeypatch, changed, named
):
    ds = SlakhDataset(tiny_dataset)
    path = tmp_path / "sep.pt"
    partial = _interrupted_at_the_end(ds, path, monkeypatch)
    with pytest.raises(ValueError) as err:
        train_separator(ds, replace(TINY_SEPARATOR, **changed), path, log=lambda _m: None)
    message = str(err.value)
    assert message.startswith(f"{partial}:") and named in message, message
    assert f"delete {partial}" in message, message
    assert partial.exists() and not path.exists()


def test_it_refuses_to_resume_a_partial_file_of_another_sample_rate(
    tiny_dataset, tmp_path, monkeypatch
):
    ds = SlakhDataset(tiny_dataset)
    path = tmp_path / "sep.pt"
    partial = _interrupted_at_the_end(ds, path, monkeypatch)
    state = torch.load(partial, weights_only=True)
    state["versions"]["sample_rate"] = 2 * ds.sample_rate  # as one made from other audio
    torch.save(state, partial)
    with pytest.raises(ValueError) as err:
        train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    message = str(err.value)
    assert f"sample rate {2 * ds.sample_rate} (run: {ds.sample_rate}," in message, message
    assert message.startswith(f"{partial}:") and f"delete {partial}" in message, message


def test_a_partial_file_saved_before_settings_records_is_resumed_only_when_vouched_for(
    tiny_dataset, tmp_path, monkeypatch
):
    ds = SlakhDataset(tiny_dataset)
    path = tmp_path / "sep.pt"
    partial = _interrupted_at_the_end(ds, path, monkeypatch)
    state = torch.load(partial, weights_only=True)
    state.pop("config")  # as saved before partial files recorded their settings
    state["versions"].pop("sample_rate")
    torch.save(state, partial)
    with pytest.raises(ValueError, match="records no settings") as err:
        train_separator(ds, TINY_SEPARATOR, path, log=lambda _m: None)
    assert str(err.value).startswith(f"{partial}:") and f"delete {partial}" in str(err.value)
    said: list[str] = []
    assert train_separator(ds, TINY_SEPARATOR, path, log=said.append, unrecorded_ok=True) == path
    assert [m for m in said if str(partial) in m and "records no settings" in m], said
    assert torch.load(path, weights_only=True)["config"] == asdict(TINY_SEPARATOR)
