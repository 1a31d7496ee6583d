"""What the commands record as a split's skipped stems: that split's own, never another's.

A copy of tiny_dataset whose first train track has its first stem marked `audio_rendered: false`
(the test split skips nothing)."""

from __future__ import annotations

import logging
import shutil

import pytest

from csn_model.bench_report import dataset_info
from csn_model.cli import main
from csn_model.config import ExperimentConfig
from csn_model.data.slakh import SlakhDataset
from csn_model.data.triplets import load_triplets
from csn_model.train import make_datasets

UNRENDERED = "1 stems skipped: audio_rendered: false"


@pytest.fixture
def train_skips(tiny_dataset, tmp_path):
    root = shutil.copytree(tiny_dataset, tmp_path / "data")
    meta = sorted((root / "train").iterdir())[0] / "metadata.yaml"
    meta.write_text(meta.read_text().replace("audio_rendered: true", "audio_rendered: false", 1))
    ds = SlakhDataset(root)
    ds.tracks("train")
    assert ds.skip_summary("train") == UNRENDERED
    return root


def test_it_records_no_train_skip_in_a_test_triplet_file(train_skips, tmp_path, capsys):
    out = tmp_path / "t.json"
    argv = ["triplets", "--data", str(train_skips), "--out", str(out), "--split", "test"]
    assert main([*argv, "--per-condition", "1", "--segment-seconds", "1"]) == 0
    assert load_triplets(out)[1]["skipped_stems"] == "none"
    assert "skipped stems: none" in capsys.readouterr().out


def test_it_records_no_train_skip_in_the_bench_results_dataset(train_skips):
    assert dataset_info(SlakhDataset(train_skips))["skipped_stems"] == "none"


def test_it_logs_the_train_splits_own_skips(train_skips, tiny_dataset, tmp_path, caplog):
    test_skips = shutil.copytree(tiny_dataset, tmp_path / "test_skips")
    meta = sorted((test_skips / "test").iterdir())[0] / "metadata.yaml"
    meta.write_text(meta.read_text().replace("audio_rendered: true", "audio_rendered: false", 1))
    with caplog.at_level(logging.INFO, logger="skips"):
        make_datasets(ExperimentConfig(), test_skips, logging.getLogger("skips"))
        assert "train split: 6 tracks; none" in caplog.text
        caplog.clear()
        make_datasets(ExperimentConfig(), train_skips, logging.getLogger("skips"))
        assert f"train split: 6 tracks; {UNRENDERED}" in caplog.text
