"""A training run is tied to its dataset and teachers: resuming or reusing it on other data (or
the same path changed since), or with other teachers, is refused rather than silently mixed."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from csn_model import CONDITIONS
from csn_model.checkpoint import make_payload, save_checkpoint
from csn_model.config import to_dict
from csn_model.data.fingerprint import dataset_fingerprint
from csn_model.model import build_model, model_args_from_config
from csn_model.train import ITEMS_VERSIONS, train_run
from csn_model.train_errors import TrainError
from csn_model.train_loop import RunContext


def _fast(cfg, **train):
    return replace(cfg, train=replace(cfg.train, **train))


def _changed_copy(dataset, folder):
    """A copy of `dataset` whose first training track's metadata.yaml is edited."""
    copy = shutil.copytree(dataset, folder)
    meta = sorted((copy / "train").iterdir())[0] / "metadata.yaml"
    meta.write_text(meta.read_text() + "# edited\n")
    return copy


def test_it_refuses_to_resume_an_interrupted_run_on_another_dataset(
    smoke_cfg, tiny_dataset, tmp_path, monkeypatch
):
    cfg = _fast(smoke_cfg, steps=4, checkpoint_every=2)
    step, calls = RunContext._step, {"n": 0}

    def interrupted(self, loss_fn, batch):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return step(self, loss_fn, batch)

    with monkeypatch.context() as m:
        m.setattr(RunContext, "_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train_run(cfg, tiny_dataset, tmp_path / "run", progress=False)
    other = _changed_copy(tiny_dataset, tmp_path / "other")
    marker = json.loads((tmp_path / "run" / "csn_train.json").read_text())
    assert marker["dataset"]["fingerprint"] == dataset_fingerprint(tiny_dataset)
    with pytest.raises(TrainError) as err:
        train_run(cfg, other, tmp_path / "run", progress=False)
    for part in (
        "checkpoint.pt", str(tiny_dataset.resolve()), str(other.resolve()),
        dataset_fingerprint(tiny_dataset), dataset_fingerprint(other), "another out_dir",
    ):  # fmt: skip
        assert part in str(err.value)
    assert not (tmp_path / "run" / "final.pt").exists()
    # The same data at another path is the same run: it resumes and finishes.
    same = shutil.copytree(tiny_dataset, tmp_path / "same")
    assert train_run(cfg, same, tmp_path / "run", progress=False).is_file()


def test_it_refuses_a_finished_run_whose_dataset_changed_at_the_same_path(
    smoke_cfg, tiny_dataset, tmp_path
):
    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    cfg = _fast(smoke_cfg, steps=1)
    final = train_run(cfg, data, tmp_path / "run", progress=False)
    assert torch.load(final, weights_only=True)["dataset"] == {
        "root": str(data.resolve()),
        "fingerprint": dataset_fingerprint(data),
    }
    shutil.rmtree(data)
    _changed_copy(tiny_dataset, data)  # regenerated in place
    with pytest.raises(TrainError, match="final.pt: this run was trained on the dataset"):
        train_run(cfg, data, tmp_path / "run", progress=False)


def test_it_refuses_a_checkpoint_from_before_dataset_fingerprints(
    smoke_cfg, tiny_dataset, tmp_path
):
    cfg = _fast(smoke_cfg, steps=1)
    final = train_run(cfg, tiny_dataset, tmp_path, progress=False)
    payload = torch.load(final, weights_only=True)
    del payload["dataset"], payload["teachers"]  # as written before they were recorded
    save_checkpoint(final, payload)
    with pytest.raises(TrainError, match="predates dataset fingerprints"):
        train_run(cfg, tiny_dataset, tmp_path, progress=False)


def test_it_refuses_a_finished_csn_run_given_other_teachers(smoke_cfg, tiny_dataset, tmp_path):
    teachers = {}
    for c in CONDITIONS:
        icfg = _fast(smoke_cfg, system="individual", condition=c)
        args = model_args_from_config(icfg)
        payload = make_payload("individual", args, build_model("individual", args), to_dict(icfg))
        teachers[c] = save_checkpoint(tmp_path / f"{c}.pt", payload)
    cfg = _fast(smoke_cfg, aux_loss=1.0, steps=1, pseudo_mix=False)
    final = train_run(cfg, tiny_dataset, tmp_path / "csn", teachers, progress=False)
    assert train_run(cfg, tiny_dataset, tmp_path / "csn", teachers, progress=False) == final
    torch.manual_seed(1)
    args = model_args_from_config(_fast(smoke_cfg, system="individual", condition="bass"))
    retrained = build_model("individual", args)  # another bass teacher: other weights
    payload = make_payload("individual", args, retrained, to_dict(smoke_cfg))
    save_checkpoint(tmp_path / "bass2.pt", payload)
    with pytest.raises(TrainError, match=r"other teachers \(bass [0-9a-f]{16} -> [0-9a-f]{16}"):
        train_run(
            cfg, tiny_dataset, tmp_path / "csn", {**teachers, "bass": tmp_path / "bass2.pt"},
            progress=False,
        )  # fmt: skip


def test_it_refuses_a_csn_run_whose_items_were_drawn_by_an_older_sampler(
    smoke_cfg, tiny_dataset, tmp_path
):
    """Pre-training's own stream and the D = B negative (2026-12-06) changed what a CSN run's
    seed draws; the individual networks' items did not change, so their runs are kept."""
    cfg = _fast(smoke_cfg, steps=1)
    final = train_run(cfg, tiny_dataset, tmp_path / "csn", progress=False)
    payload = torch.load(final, weights_only=True)
    assert payload["items"] == ITEMS_VERSIONS["csn"]
    del payload["items"]  # as written before the items were versioned
    save_checkpoint(final, payload)
    with pytest.raises(TrainError, match="items drawn by older code"):
        train_run(cfg, tiny_dataset, tmp_path / "csn", progress=False)
    icfg = _fast(smoke_cfg, steps=1, system="individual", condition="bass")
    final = train_run(icfg, tiny_dataset, tmp_path / "bass", progress=False)
    payload = torch.load(final, weights_only=True)
    del payload["items"]
    save_checkpoint(final, payload)
    assert train_run(icfg, tiny_dataset, tmp_path / "bass", progress=False) == final
