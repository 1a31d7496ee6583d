"""The demo's model stage, its longest (minutes on a CPU), says where its progress goes and shows a
line per logged step, so a newcomer can tell slow from hung (review nb, F6)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from evalsite.demo import build_parser, options
from evalsite.demo_options import DemoError
from evalsite.demo_stages import demo_config, stage_model


def test_the_model_stage_prints_where_its_log_is_and_each_step_it_logs(
    tmp_path, tiny_dataset: Path, capsys
):
    opts = replace(options(build_parser().parse_args([])), home=tmp_path, train_steps=3)
    opts.data_dir.parent.mkdir(parents=True)
    opts.data_dir.symlink_to(tiny_dataset)
    stage_model(opts)
    out = capsys.readouterr().out.splitlines()
    log = opts.run_dir / "train.log"
    assert out[0].strip().startswith("training 3 steps, a line every 25"), out
    assert f"(full log: {log})" in out[0], out
    steps = [line.strip() for line in out if line.strip().startswith("step ")]
    assert [line.split()[:3] for line in steps] == [["step", "3", "main"]], out
    assert steps[0] in log.read_text()  # the run's own log is written as before


def test_it_says_how_to_train_again_when_an_unfinished_run_has_an_older_config(
    tmp_path, tiny_dataset: Path
):
    from csn_model.train import train_run

    opts = replace(options(build_parser().parse_args([])), home=tmp_path, train_steps=3)
    opts.data_dir.parent.mkdir(parents=True)
    opts.data_dir.symlink_to(tiny_dataset)
    # a demo trained before demo.yaml set features.db_ref max, interrupted before its marker
    cfg = demo_config(opts)
    older = replace(cfg, features=replace(cfg.features, db_ref="one"))
    older = replace(older, train=replace(cfg.train, checkpoint_every=1))
    train_run(older, opts.data_dir, opts.run_dir, progress=False)
    (opts.run_dir / "final.pt").unlink()  # interrupted: its last checkpoint.pt is left
    with pytest.raises(DemoError) as refused:
        stage_model(opts)
    message = str(refused.value)
    assert "features.db_ref 'one' (expected 'max')" in message, message
    assert f"delete {opts.run_dir}" in message, message
    assert 'make demo ARGS="--reset"' in message, message
