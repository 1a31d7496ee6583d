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
    index = json.loads((run / "checkpoints.json").read_text())
    assert index["csn"] == "systems/csn/final.pt"  # relative to the run folder, not the cwd
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
    index = json.loads((run / "checkpoints.json").read_text())
    assert index["csn"] == "systems/csn/final.pt"  # relative to the run folder, not the cwd


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


def test_it_scores_and_resumes_a_moved_run_folder_from_the_moved_files(
    tiny_dataset, other_dataset, tmp_path, capsys, caplog
):
    import shutil

    args = [*_csn_only(tmp_path), "--data", str(tiny_dataset)]
    assert main(args) == 0
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "run", moved)  # the original folder is gone
    index = json.loads((moved / "checkpoints.json").read_text())
    assert index == {"csn": "systems/csn/final.pt"}  # relative to the run folder
    out = tmp_path / "elsewhere"
    capsys.readouterr()
    from_moved = ["bench", "--from", str(moved), "--data", str(other_dataset), "--out", str(out)]
    assert main(from_moved) == 0, capsys.readouterr().err
    caplog.set_level("INFO", logger="csn.bench")
    caplog.clear()
    args[args.index("--out") + 1] = str(moved)
    assert main(args) == 0, capsys.readouterr().err
    assert "training csn" not in caplog.text  # resumed from the moved final.pt
    assert json.loads((moved / "checkpoints.json").read_text()) == index


def test_it_scores_a_copied_run_folder_from_the_copy_not_the_original(
    tiny_dataset, other_dataset, tmp_path, capsys
):
    import shutil

    assert main([*_csn_only(tmp_path), "--data", str(tiny_dataset)]) == 0
    copy = shutil.copytree(tmp_path / "run", tmp_path / "copy")
    original = tmp_path / "run" / "systems" / "csn" / "final.pt"
    original.write_bytes(original.read_bytes()[:100])  # loading it would fail
    out = tmp_path / "elsewhere"
    capsys.readouterr()
    from_copy = ["bench", "--from", str(copy), "--data", str(other_dataset), "--out", str(out)]
    assert main(from_copy) == 0
    assert str(original) not in capsys.readouterr().err


def test_it_reads_an_index_written_with_absolute_paths(tiny_dataset, other_dataset, tmp_path):
    assert main([*_csn_only(tmp_path), "--data", str(tiny_dataset)]) == 0
    run = tmp_path / "run"
    final = (run / "systems" / "csn" / "final.pt").resolve()
    (run / "checkpoints.json").write_text(json.dumps({"csn": str(final)}))  # as written before
    out = tmp_path / "elsewhere"
    assert main(["bench", "--from", str(run), "--data", str(other_dataset), "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["systems"]


def test_the_index_names_files_in_the_run_folder_relative_to_it_and_others_absolute(tmp_path):
    from csn_model.bench import read_index, write_index

    run = tmp_path / "run"
    run.mkdir()
    outside = tmp_path / "elsewhere" / "separator.pt"
    checkpoints = {
        "individual_clean": {"drums": run / "systems" / "individual_drums" / "final.pt"},
        "separator": outside,
        "csn": run / "systems" / "csn" / "final.pt",
        "csn_no_aux_loss": None,
    }
    write_index(run, checkpoints)
    assert json.loads((run / "checkpoints.json").read_text()) == {
        "individual_clean": {"drums": "systems/individual_drums/final.pt"},
        "separator": str(outside.resolve()),
        "csn": "systems/csn/final.pt",
        "csn_no_aux_loss": None,
    }
    assert read_index(run) == {**checkpoints, "separator": outside.resolve()}
