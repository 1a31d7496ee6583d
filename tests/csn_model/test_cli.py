"""The `csn` command line: arguments a subcommand cannot use are refused before any work."""

from __future__ import annotations

import pytest

from csn_model.cli import main


@pytest.fixture
def place(tmp_path, monkeypatch):
    """An empty working folder holding one file (`afile`) and one folder (`adir`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    return tmp_path


SYNTH = ["synth", "--out", "d", "--tracks", "1", "--no-progress"]
TRIPLETS = ["triplets", "--data", "d", "--out", "t.json"]
EMBED = ["embed", "a.wav", "--checkpoint", "c.pt"]
SPEED = ["bench-speed", "--files", "2", "--naive-files", "1"]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        ([*SYNTH, "--seconds", "nan"], ["--seconds", "finite"]),
        ([*SYNTH, "--seconds", "inf"], ["--seconds", "finite"]),
        ([*SYNTH, "--seconds", "0"], ["--seconds", "above 0"]),
        ([*SYNTH, "--seconds", "abc"], ["--seconds", "abc"]),
        ([*SYNTH, "--seed", "-1"], ["--seed", "0 or more"]),
        ([*SYNTH, "--workers", "0"], ["--workers", "1 or more"]),
        ([*SYNTH, "--out", "afile"], ["--out", "afile", "not a folder"]),
        ([*SYNTH, "--out", "afile/sub"], ["--out", "afile", "not a folder"]),
        ([*TRIPLETS, "--seed", "-1"], ["--seed", "0 or more"]),
        ([*TRIPLETS, "--segment-seconds", "-1"], ["--segment-seconds", "above 0"]),
        ([*TRIPLETS, "--segment-seconds", "nan"], ["--segment-seconds", "finite"]),
        ([*TRIPLETS, "--segment-seconds", "0"], ["--segment-seconds", "above 0"]),
        ([*TRIPLETS, "--per-condition", "0"], ["--per-condition", "1 or more"]),
        ([*TRIPLETS, "--out", "adir"], ["--out", "adir", "is a folder"]),
        ([*TRIPLETS, "--out", "afile/t.json"], ["--out", "afile", "not a folder"]),
        ([*EMBED, "--batch-size", "0"], ["--batch-size", "1 or more"]),
        ([*EMBED, "--batch-size", "-1"], ["--batch-size", "1 or more"]),
        ([*EMBED, "--out", "nodir/x.npy"], ["--out", "nodir", "does not exist"]),
        ([*EMBED, "--out", "adir"], ["--out", "adir", "is a folder"]),
        ([*SPEED, "--files", "0"], ["--files", "1 or more"]),
        ([*SPEED, "--naive-files", "0"], ["--naive-files", "1 or more"]),
        ([*SPEED, "--seconds", "0"], ["--seconds", "above 0"]),
        ([*SPEED, "--seconds", "inf"], ["--seconds", "finite"]),
        ([*SPEED, "--rate", "0"], ["--rate", "1 or more"]),
        ([*SPEED, "--batch-size", "0"], ["--batch-size", "1 or more"]),
        ([*SPEED, "--threads", "-1"], ["--threads", "0 or more"]),
        ([*SPEED, "--json", "nodir/s.json"], ["--json", "nodir", "does not exist"]),
        (["bench", "--data", "d", "--out", "afile"], ["--out", "afile", "not a folder"]),
    ],
)
def test_it_refuses_unusable_arguments_before_doing_any_work(place, capsys, argv, names):
    before = sorted(p.name for p in place.iterdir())
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"csn {argv[0]}: error: argument" in err
    for name in names:
        assert name in err, err
    assert sorted(p.name for p in place.iterdir()) == before  # nothing written
