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


def _wait_for(path, process) -> None:
    """Until path exists (the run wrote it), or fail if the process ends first or never does."""
    import time

    for _ in range(1200):  # a generous bound: a stuck run fails the test instead of hanging it
        if path.exists() or process.poll() is not None:
            break
        time.sleep(0.1)
    assert path.exists(), process.communicate(timeout=60)


def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume_it(tiny_dataset, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import torch

    root = SMOKE.parents[2]  # this checkout's csn_model, not an installed one
    out = tmp_path / "run"
    more = ["train.steps=100000", "train.checkpoint_every=3", "train.num_workers=1"]
    argv = [*_train(tiny_dataset, out), *more]
    process = subprocess.Popen(
        [sys.executable, "-m", "csn_model", *argv],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, signalled as a terminal's Ctrl-C is
    )
    try:
        _wait_for(out / "checkpoint.pt", process)
        os.killpg(process.pid, signal.SIGINT)  # the run and its loader worker
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for part in ("csn train: interrupted after step ", f"{out / 'checkpoint.pt'} at step {saved}",
                 f"--out {out}", "--set train.steps=2 train.steps=100000"):  # fmt: skip
        assert part in stderr, stderr
    log = (out / "train.log").read_text()
    assert "interrupted after step " in log and f"at step {saved}" in log, log
