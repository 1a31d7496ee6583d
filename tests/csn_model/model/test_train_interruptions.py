"""`csn train` stopping early says so in one line: a data error raised in a DataLoader worker
reads as it does without workers, and Ctrl-C says where the run stopped and how to resume it."""

from __future__ import annotations

import shutil

import pytest

from csn_model.cli import main
from tests.csn_model.model.conftest import SMOKE


@pytest.fixture
def two_train_tracks(tiny_dataset, tmp_path):
    """tiny_dataset with 2 of its train tracks: too few for pseudo triplets (3 are needed), which
    the items find when drawn, in the loader's workers if it has any."""
    root = shutil.copytree(tiny_dataset, tmp_path / "two_train")
    for track in sorted((root / "train").iterdir())[2:]:
        shutil.rmtree(track)
    return root


def _train(data, out, *settings) -> list[str]:
    return ["train", "--config", str(SMOKE), "--data", str(data), "--out", str(out),
            "--no-progress", "--set", "train.steps=2", *settings]  # fmt: skip


def test_a_data_error_in_a_loader_worker_is_the_same_one_line_as_without_workers(
    two_train_tracks, tmp_path, capsys
):
    assert main(_train(two_train_tracks, tmp_path / "w0", "train.num_workers=0")) == 2
    without = capsys.readouterr().err
    assert main(_train(two_train_tracks, tmp_path / "w1", "train.num_workers=1")) == 2
    within = capsys.readouterr().err
    assert "no pseudo triplets" in without and without.count("\n") == 1, without
    assert within == without
