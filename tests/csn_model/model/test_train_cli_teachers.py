"""`csn train` without teachers for a config that needs them says how to pass them on the command
line, or how to train without them."""

from __future__ import annotations

from pathlib import Path

from csn_model.cli import main

SMOKE = Path(__file__).resolve().parents[3] / "experiments" / "configs" / "smoke.yaml"


def test_it_tells_a_command_line_user_how_to_pass_teachers_or_do_without(
    tiny_dataset, tmp_path, capsys
):
    args = ["train", "--config", str(SMOKE), "--data", str(tiny_dataset), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "run"), "--set", "train.aux_loss=1.0"]) == 2
    err = capsys.readouterr().err
    assert "--teacher drums=CHECKPOINT" in err, err
    assert "--set train.aux_loss=0 train.pretrain=0" in err, err
    assert "teachers={" not in err  # Python syntax means nothing on the command line
