"""`csn bench` checks its config before any work: it names the bad field, and says why a system
cannot train instead of a traceback."""

from __future__ import annotations

import pytest

from csn_model.cli import main
from tests.csn_model.bench.conftest import _csn_only

pytestmark = pytest.mark.usefixtures("one_thread")


def test_it_names_the_field_of_a_bad_bench_config(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("bench: {systems: [csn, nonsense]}\n")
    args = ["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(tmp_path)]
    assert main(args) == 2
    assert "bench.systems" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setting",
    [
        "bench.systems=[]",
        "bench.systems=[csn_no_aux_loss]",  # the config's aux_loss is 0 already: nothing to run
        "bench.kinds=[]",
        "bench.kinds=[pseudo,mixed]",
        "bench.per_condition=-1",
        "bench.per_condition=0",
        "bench.eval_seed=-1",
        "bench.individual_steps=-1",
        "bench.n_boot=0",
        "bench.batch_triplets=0",
        "bench.sdr_chunk_seconds=0",
        "bench.sdr_chunk_seconds=.nan",
    ],
)
def test_it_checks_the_bench_settings_before_any_work(tiny_dataset, tmp_path, capsys, setting):
    args = _csn_only(tmp_path)
    run = tmp_path / "run"
    assert main([*args, setting, "--data", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert "tiny.yaml" in err and f"field {setting.split('=')[0]} must be" in err
    assert not run.exists()


@pytest.mark.parametrize(
    "setting",
    [
        "separator.hop=0",
        "separator.hop=999",  # over n_fft
        "separator.n_fft=0",
        "separator.lstm_layers=0",
        "separator.steps=0",
        "separator.lr=-1",
        "separator.remix=1.5",
        "separator.segment_seconds=.inf",
        "separator.backend=spleeter",
        "separator.backend=demucs",  # without a folder of weights: names demucs_repo
    ],
)
def test_it_checks_the_separator_settings_before_training_the_other_systems(
    tiny_dataset, tmp_path, capsys, setting
):
    args = _csn_only(tmp_path)
    args[-1] = "bench.systems=[csn,individual_separated]"
    assert main([*args, setting, "--data", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    field = "separator.demucs_repo" if setting.endswith("demucs") else setting.split("=")[0]
    assert "tiny.yaml" in err and f"field {field} must be" in err
    assert not (tmp_path / "run").exists()


def test_it_says_why_a_system_cannot_train_instead_of_a_traceback(
    tiny_dataset, tmp_path, capsys, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine with CUDA
    args = [*_csn_only(tmp_path), "train.device=cuda", "--data", str(tiny_dataset)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("csn bench: ") and "train.device is 'cuda'" in err
