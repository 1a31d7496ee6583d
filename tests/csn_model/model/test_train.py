"""Training on the tiny dataset: the smoke config learns, reloads, resumes and is deterministic."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from csn_model import CONDITIONS
from csn_model.checkpoint import load_model, make_payload, save_checkpoint
from csn_model.config import ConfigError, to_dict
from csn_model.model import build_model, model_args_from_config
from csn_model.train import make_datasets, train_run
from csn_model.train_errors import TrainError
from csn_model.train_loop import RunContext


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _fast(cfg, **train):
    return replace(cfg, train=replace(cfg.train, **train))


def test_it_trains_the_smoke_config_and_the_loss_goes_down(smoke_run):
    run = smoke_run.parent
    rows = _metrics(run)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    first, last = rows[0]["triplet"], (rows[-1]["triplet"] + rows[-2]["triplet"]) / 2
    assert last < first
    for name in ("config.yaml", "train.log", "summary.json", "checkpoint.pt"):
        assert (run / name).exists()
    assert "absent_peak: 0.0001" in (run / "config.yaml").read_text()  # every [choice] recorded
    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 <= summary["data_wait_share"] <= 1.0 and summary["steps"] == 30


def test_it_reloads_a_checkpoint_to_identical_outputs(smoke_run, tmp_path):
    raw = torch.load(smoke_run, weights_only=True)
    assert set(raw) >= {"model_name", "model_args", "state_dict", "config", "versions"}
    model, payload = load_model(smoke_run)
    copy = save_checkpoint(
        tmp_path / "copy.pt",
        make_payload(payload["model_name"], payload["model_args"], model, payload["config"]),
    )
    again, _ = load_model(copy)
    wave = torch.randn(3, 22050, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(wave), again(wave))
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary file


def test_it_resumes_to_the_same_weights_as_an_uninterrupted_run(
    smoke_cfg, tiny_dataset, smoke_run, tmp_path, monkeypatch
):
    calls = {"n": 0}
    step = RunContext._step

    def interrupted(self, loss_fn, batch):
        calls["n"] += 1
        if calls["n"] > 15:
            raise KeyboardInterrupt  # a crash after the step-10 checkpoint
        return step(self, loss_fn, batch)

    monkeypatch.setattr(RunContext, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_run(smoke_cfg, tiny_dataset, tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 10
    monkeypatch.setattr(RunContext, "_step", step)
    # resumed with DataLoader worker processes this time: batches depend only on the step
    final = train_run(_fast(smoke_cfg, num_workers=2), tiny_dataset, tmp_path, progress=False)
    a = torch.load(final, weights_only=True)["state_dict"]
    b = torch.load(smoke_run, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_it_returns_a_finished_run_without_training_again(smoke_cfg, tiny_dataset, smoke_run):
    before = smoke_run.stat().st_mtime_ns
    assert train_run(smoke_cfg, tiny_dataset, smoke_run.parent, progress=False) == smoke_run
    assert smoke_run.stat().st_mtime_ns == before


def test_it_refuses_to_continue_a_run_with_another_config(smoke_cfg, tiny_dataset, smoke_run):
    with pytest.raises(ConfigError, match="another config"):
        train_run(_fast(smoke_cfg, lr=0.5), tiny_dataset, smoke_run.parent, progress=False)


def test_it_names_the_fields_that_differ_when_it_refuses_another_config(
    smoke_cfg, tiny_dataset, smoke_run
):
    # the demo config now sets features.db_ref max: a run folder of the older config holds one
    cfg = replace(smoke_cfg, features=replace(smoke_cfg.features, db_ref="max"))
    with pytest.raises(ConfigError) as refused:
        train_run(_fast(cfg, lr=0.5), tiny_dataset, smoke_run.parent, progress=False)
    message = str(refused.value)
    assert "features.db_ref 'one' (expected 'max')" in message, message
    assert f"train.lr {smoke_cfg.train.lr!r} (expected 0.5)" in message, message


def test_it_asks_for_teachers_when_the_aux_loss_is_on(smoke_cfg, tiny_dataset, tmp_path):
    with pytest.raises(TrainError, match="teachers"):
        train_run(_fast(smoke_cfg, aux_loss=1.0), tiny_dataset, tmp_path, progress=False)


def test_it_refuses_a_teacher_trained_on_another_instrument(smoke_cfg, tiny_dataset, tmp_path):
    teachers = {}
    for c in CONDITIONS:
        cfg = _fast(smoke_cfg, system="individual", condition=c)
        args = model_args_from_config(cfg)
        payload = make_payload("individual", args, build_model("individual", args), to_dict(cfg))
        teachers[c] = save_checkpoint(tmp_path / f"{c}.pt", payload)
    swapped = {**teachers, "drums": teachers["bass"]}  # --teacher drums=bass.pt
    with pytest.raises(TrainError, match=r"bass\.pt.*drums"):
        train_run(
            _fast(smoke_cfg, aux_loss=1.0), tiny_dataset, tmp_path / "csn", swapped, progress=False
        )


def test_it_trains_teachers_then_a_csn_with_aux_loss_and_pretraining(
    smoke_cfg, tiny_dataset, tmp_path
):
    teachers = {
        c: train_run(
            _fast(smoke_cfg, system="individual", condition=c, steps=2),
            tiny_dataset,
            tmp_path / c,
            progress=False,
        )
        for c in CONDITIONS
    }
    cfg = _fast(smoke_cfg, aux_loss=1.0, pretrain=2, steps=2, log_every=1, pseudo_mix=False)
    final = train_run(cfg, tiny_dataset, tmp_path / "csn", teachers, progress=False)
    rows = _metrics(final.parent)
    assert [r["phase"] for r in rows] == ["pretrain", "pretrain", "main", "main"]
    assert "pretrain" in rows[0] and "aux" in rows[-1] and rows[-1]["aux"] > 0


def test_it_trains_from_the_command_line_and_names_bad_config_fields(
    tiny_dataset, tmp_path, capsys
):
    from csn_model.cli import main

    smoke = Path(__file__).resolve().parents[3] / "experiments" / "configs" / "smoke.yaml"
    args = ["train", "--config", str(smoke), "--data", str(tiny_dataset), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "ok"), "--set", "train.steps=2"]) == 0
    assert capsys.readouterr().out.strip().endswith("final.pt")
    assert main([*args, "--out", str(tmp_path / "bad"), "--set", "train.stepz=2"]) == 2
    err = capsys.readouterr().err
    assert "smoke.yaml" in err and "train.stepz" in err


@pytest.mark.gpu
def test_it_trains_with_mixed_precision_on_cuda(smoke_cfg, tiny_dataset, tmp_path):
    from csn_model.inference import Embedder

    cfg = _fast(smoke_cfg, device="cuda", amp=True, steps=10)
    final = train_run(cfg, tiny_dataset, tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text())["device"].startswith("cuda")
    emb = Embedder.from_checkpoint(final)
    assert emb.device.type == "cuda"
    assert emb.embed_waveforms([torch.randn(22050).numpy()], 22050).shape == (1, 40)


def test_it_trains_learned_masks_that_stay_non_negative(smoke_cfg, tiny_dataset, tmp_path):
    cfg = replace(smoke_cfg, model=replace(smoke_cfg.model, learned_masks=True))
    final = train_run(_fast(cfg, steps=3), tiny_dataset, tmp_path, progress=False)
    model, _ = load_model(final)
    assert model.learned_masks and (model.masks() >= 0).all()
    assert "mask_l1" in _metrics(tmp_path)[-1]


def test_it_accepts_a_finished_run_from_before_a_new_config_field(
    smoke_cfg, tiny_dataset, tmp_path
):
    final = train_run(_fast(smoke_cfg, steps=1), tiny_dataset, tmp_path, progress=False)
    payload = torch.load(final, weights_only=True)
    del payload["config"]["train"]["embed_norm"]  # as if written before the field existed
    save_checkpoint(final, payload)
    assert train_run(_fast(smoke_cfg, steps=1), tiny_dataset, tmp_path, progress=False) == final


def test_it_refuses_an_out_folder_that_is_not_a_training_run(smoke_cfg, tiny_dataset, tmp_path):
    bench_run = tmp_path / "bench_run"  # e.g. a `csn bench` run folder
    bench_run.mkdir()
    (bench_run / "config.yaml").write_text("bench: {per_condition: 2}\n")
    (bench_run / "dataset.json").write_text("{}\n")
    mine = tmp_path / "mine"  # only the user's own config so far
    mine.mkdir()
    (mine / "config.yaml").write_text("train: {steps: 1}\n")
    for folder in (bench_run, mine):
        before = {p.name: p.read_text() for p in folder.iterdir()}
        with pytest.raises(TrainError, match=f"{folder}: .*not a training run"):
            train_run(_fast(smoke_cfg, steps=1), tiny_dataset, folder, progress=False)
        assert {p.name: p.read_text() for p in folder.iterdir()} == before


def test_it_resumes_a_run_folder_from_before_the_run_marker(smoke_cfg, tiny_dataset, tmp_path):
    from csn_model.train_folder import RUN_MARKER

    cfg = _fast(smoke_cfg, steps=1)
    final = train_run(cfg, tiny_dataset, tmp_path, progress=False)
    assert (tmp_path / RUN_MARKER).is_file()
    (tmp_path / RUN_MARKER).unlink()
    assert train_run(cfg, tiny_dataset, tmp_path, progress=False) == final


def _interrupt_after(monkeypatch, steps: int) -> None:
    calls = {"n": 0}
    step = RunContext._step

    def interrupted(self, loss_fn, batch):
        calls["n"] += 1
        if calls["n"] > steps:
            raise KeyboardInterrupt
        return step(self, loss_fn, batch)

    monkeypatch.setattr(RunContext, "_step", interrupted)


@pytest.mark.parametrize("interrupted_after", [9, 4])  # after the step-5 checkpoint; before it
def test_it_logs_each_step_once_when_a_run_resumes(
    smoke_cfg, tiny_dataset, tmp_path, monkeypatch, interrupted_after
):
    cfg = _fast(smoke_cfg, steps=12, checkpoint_every=5, log_every=3)
    with monkeypatch.context() as m:
        _interrupt_after(m, interrupted_after)
        with pytest.raises(KeyboardInterrupt):
            train_run(cfg, tiny_dataset, tmp_path, progress=False)
    assert [r["step"] for r in _metrics(tmp_path)] == [3, 6, 9][: interrupted_after // 3]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 10, "pha')  # a row torn by the interruption
    train_run(cfg, tiny_dataset, tmp_path, progress=False)
    assert [r["step"] for r in _metrics(tmp_path)] == [3, 6, 9, 12]


def test_it_stops_a_run_whose_loss_is_not_finite_naming_the_step(
    smoke_cfg, tiny_dataset, tmp_path, monkeypatch
):
    calls = {"n": 0}
    step = RunContext._step

    def diverging(self, loss_fn, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # the weights diverge before the third step
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return step(self, loss_fn, batch)

    monkeypatch.setattr(RunContext, "_step", diverging)
    cfg = _fast(smoke_cfg, steps=5, checkpoint_every=100, log_every=100)
    with pytest.raises(TrainError, match=r"^step 3 \(\w+\): loss became nan"):
        train_run(cfg, tiny_dataset, tmp_path, progress=False)
    assert not (tmp_path / "final.pt").exists()


def _own_segments(t) -> tuple:
    """What an item takes of its own instrument: condition and the three c segments."""
    c = t.condition
    return (c, t.anchor.part(c), t.positive.part(c), t.negative.part(c))


def test_it_draws_pretraining_and_main_phase_items_from_their_own_random_streams(
    smoke_cfg, tiny_dataset
):
    cfg = _fast(smoke_cfg, pretrain=8)
    first, again = make_datasets(cfg, tiny_dataset), make_datasets(cfg, tiny_dataset)
    n = len(first["pretrain"])
    pre = [_own_segments(first["pretrain"].src.get(i)) for i in range(n)]
    main = [_own_segments(first["main"].src.get(i)) for i in range(n)]
    assert sum(p == m for p, m in zip(pre, main, strict=True)) == 0
    # deterministic: the same seed gives the same items in each phase
    assert pre == [_own_segments(again["pretrain"].src.get(i)) for i in range(n)]
    assert main == [_own_segments(again["main"].src.get(i)) for i in range(n)]
