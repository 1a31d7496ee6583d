"""Ctrl-C during `csn bench` is one line, exit status 130: the stage it stopped in, the finished
systems that a rerun keeps, and the command that resumes it (experiments/README.md)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csn_model import CONDITIONS
from tests.csn_model.bench.conftest import TINY

ROOT = Path(__file__).resolve().parents[3]  # this checkout's csn_model, not an installed one


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    """Until path exists (the run wrote it), or fail if the process ends first or never does.
    The bound is generous (about 13 s here alone, far more beside other test runs on 2 cores):
    a stuck run fails the test instead of hanging it. A run still going is killed before its
    output is read (it would train on for its 100000 steps)."""
    deadline = time.monotonic() + 900
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if not path.exists():
        process.kill()
        raise AssertionError(f"{path} never written; the run said: {process.communicate()}")


@pytest.mark.slow  # a benchmark run interrupted in training
def test_ctrl_c_names_the_system_in_training_the_kept_systems_and_the_command_to_resume(
    tiny_dataset, tmp_path
):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "run"
    # The teachers finish in 2 steps; the CSN (which needs them) would run for ever.
    settings = ["bench.systems=[csn]", "bench.individual_steps=2", "train.steps=100000",
                "train.checkpoint_every=2"]  # fmt: skip
    argv = ["bench", "--config", str(config), "--set", *settings,
            "--data", str(tiny_dataset), "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "csn_model", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, signalled as a terminal's Ctrl-C is
    )
    try:
        _wait_for(out / "systems" / "csn" / "checkpoint.pt", process)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("csn bench: interrupted while training csn (interrupted after step ")
    teachers = ", ".join(f"individual_{c}" for c in sorted(CONDITIONS))
    assert f"finished systems kept: {teachers}" in stderr, stderr
    assert f"rerun to resume: {shlex.join(['csn', *argv])}" in stderr, stderr


def test_ctrl_c_while_scoring_another_dataset_says_so_and_how_to_score_again(monkeypatch):
    import argparse

    from csn_model import bench
    from csn_model.bench_cli import interrupted

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt  # as Ctrl-C lands while evaluate reads the test triplets

    monkeypatch.setattr(bench, "eval_triplets", ctrl_c)
    args = argparse.Namespace(from_run="runs/cpu", data="other", out=None, config=None, set=[],
                              duplicates="omit")  # fmt: skip
    try:
        bench.evaluate(None, None, {}, Path("unused"))
    except KeyboardInterrupt as exc:
        line = interrupted(exc, args)
    assert line == (
        "interrupted while scoring the systems on the test triplets; nothing scored was kept; "
        "rerun: csn bench --data other --from runs/cpu --duplicates omit"
    )
