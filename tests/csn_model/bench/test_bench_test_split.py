"""`csn bench` checks its test split before it trains anything: a split that cannot give the
evaluation triplets fails at once, records nothing in the run folder (so the same --out works once
the data is fixed), and a resumed run scores only checkpoints trained for it."""

from __future__ import annotations

import shutil

import pytest
import torch

from csn_model.cli import main
from tests.csn_model.bench.conftest import TINY, _csn_only

pytestmark = pytest.mark.usefixtures("one_thread")


def _bench_args(tmp_path, data) -> list[str]:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = str(tmp_path / "run")
    return ["bench", "--config", str(config), "--data", str(data), "--out", out]


def _with_test_tracks(tiny_dataset, tmp_path, keep: int):
    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    tracks = sorted((data / "test").iterdir())
    for track in tracks[keep:]:
        shutil.rmtree(track)
    if keep == 0:
        shutil.rmtree(data / "test")
    return data


def _nothing_recorded(run) -> None:
    assert not (run / "systems").exists()  # nothing trained
    assert not (run / "config.yaml").exists() and not (run / "dataset.json").exists()


def test_it_fails_before_training_when_the_dataset_has_no_test_split(
    tiny_dataset, tmp_path, capsys
):
    data = _with_test_tracks(tiny_dataset, tmp_path, 0)
    assert main(_bench_args(tmp_path, data)) == 2
    err = capsys.readouterr().err
    assert "test split" in err and "before training" in err, err
    _nothing_recorded(tmp_path / "run")


def test_it_fails_before_training_when_the_test_split_is_too_small_for_pseudo_triplets(
    tiny_dataset, tmp_path, capsys
):
    data = _with_test_tracks(tiny_dataset, tmp_path, 2)
    assert main(_bench_args(tmp_path, data)) == 2
    err = capsys.readouterr().err
    assert "2 test tracks" in err and "at least 3 tracks" in err, err
    _nothing_recorded(tmp_path / "run")


@pytest.mark.parametrize(
    ("field", "change", "names"),
    [
        ("config", lambda p: p["config"]["model"].update(hidden=[17]), ["another config"]),
        ("dataset", lambda p: p["dataset"].update(fingerprint="0" * 16), ["0" * 16]),
        # a checkpoint from before dataset records is still compared by its config
        (
            "unrecorded",
            lambda p: (p.pop("dataset"), p["config"]["model"].update(hidden=[17])),
            ["another config"],
        ),  # fmt: skip
    ],
)
def test_it_refuses_to_score_a_finished_system_whose_checkpoint_is_not_this_runs(
    tiny_dataset, tmp_path, capsys, field, change, names
):
    args = [*_csn_only(tmp_path), "--data", str(tiny_dataset)]
    assert main(args) == 0
    final = tmp_path / "run" / "systems" / "csn" / "final.pt"
    payload = torch.load(final, weights_only=True)
    change(payload)  # as if another run's final.pt had been put there
    torch.save(payload, final)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    for name in [str(final), *names, f"delete {final.parent} to train csn again"]:
        assert name in err, err
    # csn train's remedies do not apply to a bench run folder (no out_dir of its own; deleting
    # final.pt alone leaves done.json naming it)
    for remedy in ("out_dir", "checkpoint.pt", "pass the teachers"):
        assert remedy not in err, err
