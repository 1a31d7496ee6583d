"""`csn bench` resuming a run folder: refused for another config or dataset, asked which dataset
an old folder was made from, and resumed from another working directory."""

from __future__ import annotations

import json

import pytest

from csn_model.cli import main
from tests.csn_model.bench.conftest import TINY, _csn_only

pytestmark = pytest.mark.usefixtures("one_thread")


def test_it_refuses_to_resume_a_run_with_another_config(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: something-else\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    args = ["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(run)]
    assert main(args) == 2
    assert "another config" in capsys.readouterr().err


def test_it_refuses_to_resume_a_run_with_another_dataset(tiny_dataset, tmp_path, capsys):
    import shutil

    other = shutil.copytree(tiny_dataset, tmp_path / "other")  # same content, another dataset
    args = _csn_only(tmp_path)
    assert main([*args, "--data", str(tiny_dataset)]) == 0
    capsys.readouterr()
    assert main([*args, "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert str(tiny_dataset.resolve()) in err and str(other.resolve()) in err


def test_it_asks_which_dataset_an_old_run_folder_was_made_from(tiny_dataset, tmp_path, capsys):
    args = [*_csn_only(tmp_path), "--data", str(tiny_dataset)]
    assert main(args) == 0
    record = tmp_path / "run" / "dataset.json"
    record.unlink()  # as written before run folders recorded their dataset
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(record) in err and str(tiny_dataset.resolve()) in err
    from csn_model.data.fingerprint import dataset_fingerprint

    line = {"root": str(tiny_dataset.resolve()), "fingerprint": dataset_fingerprint(tiny_dataset)}
    assert json.dumps(line) in err
    record.write_text(json.dumps(line))  # what the error says
    assert main(args) == 0


def _relative_run(tmp_path, monkeypatch, tiny_dataset) -> tuple[list[str], object]:
    """A finished csn-only run made with `--out run` from the working directory tmp_path/a."""
    args = _csn_only(tmp_path)
    args[args.index("--out") + 1] = "run"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert main([*args, "--data", str(tiny_dataset)]) == 0
    return args, tmp_path / "a" / "run"


def test_it_resumes_and_scores_a_run_from_another_working_directory(
    tiny_dataset, other_dataset, tmp_path, monkeypatch
):
    args, run = _relative_run(tmp_path, monkeypatch, tiny_dataset)
    monkeypatch.chdir(tmp_path / "b")
    args[args.index("--out") + 1] = "../a/run"
    assert main([*args, "--data", str(tiny_dataset)]) == 0
    assert json.loads((run / "checkpoints.json").read_text())["csn"] == str(
        (run / "systems" / "csn" / "final.pt").resolve()
    )
    out = str(tmp_path / "elsewhere")
    assert main(["bench", "--from", "../a/run", "--data", str(other_dataset), "--out", out]) == 0


def test_it_reads_a_done_json_written_before_its_path_was_relative_to_the_run(
    tiny_dataset, tmp_path, monkeypatch
):
    args, run = _relative_run(tmp_path, monkeypatch, tiny_dataset)
    done = run / "systems" / "csn" / "done.json"
    # written by earlier versions: the path as the first run's working directory saw it
    done.write_text(json.dumps({"checkpoint": "run/systems/csn/final.pt", "seconds": 1.0}))
    monkeypatch.chdir(tmp_path / "b")
    args[args.index("--out") + 1] = "../a/run"
    assert main([*args, "--data", str(tiny_dataset)]) == 0
    assert json.loads((run / "checkpoints.json").read_text())["csn"] == str(
        (run / "systems" / "csn" / "final.pt").resolve()
    )


def test_it_names_a_done_json_without_its_checkpoint_and_keeps_the_index(
    tiny_dataset, tmp_path, monkeypatch, capsys
):
    args, run = _relative_run(tmp_path, monkeypatch, tiny_dataset)
    done = run / "systems" / "csn" / "done.json"
    done.write_text(json.dumps({"checkpoint": "systems/csn/gone.pt", "seconds": 1.0}))
    index = (run / "checkpoints.json").read_text()
    capsys.readouterr()
    assert main([*args, "--data", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert "run/systems/csn/done.json" in err and "field checkpoint" in err and "gone.pt" in err
    assert (run / "checkpoints.json").read_text() == index  # --from still works


def test_it_resumes_a_folder_from_before_fingerprints_once_its_dataset_json_names_the_data(
    tiny_dataset, tmp_path, capsys, caplog
):
    import torch

    from csn_model.data.fingerprint import dataset_fingerprint

    args = [*_csn_only(tmp_path), "--data", str(tiny_dataset)]
    assert main(args) == 0
    run = tmp_path / "run"
    final = run / "systems" / "csn" / "final.pt"
    payload = torch.load(final, weights_only=True)
    payload.pop("dataset")  # as csn train wrote final.pt before 80d05ba
    payload.pop("teachers", None)
    torch.save(payload, final)
    record = run / "dataset.json"
    record.write_text(json.dumps({"root": str(tiny_dataset.resolve())}))  # as written then
    capsys.readouterr()
    assert main(args) == 2
    line = {"root": str(tiny_dataset.resolve()), "fingerprint": dataset_fingerprint(tiny_dataset)}
    assert json.dumps(line) in capsys.readouterr().err
    record.write_text(json.dumps(line))  # what the error says to write
    caplog.set_level("INFO", logger="csn.bench")
    caplog.clear()
    assert main(args) == 0, capsys.readouterr().err
    notes = [r.getMessage() for r in caplog.records if "records no dataset" in r.getMessage()]
    assert len(notes) == 1 and str(final) in notes[0] and str(record) in notes[0], notes
    assert "training csn" not in caplog.text  # scored as it is, not trained again
