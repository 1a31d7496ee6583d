"""The demo's model stage, its longest (minutes on a CPU), says where its progress goes and shows a
line per logged step, so a newcomer can tell slow from hung (review nb, F6)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from evalsite.demo import build_parser, options
from evalsite.demo_stages import stage_model


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
