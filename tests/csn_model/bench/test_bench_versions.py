"""A run folder made by older code (csn_model 0.1.0: triplets without meta.sampler, a separator
without versions.batches, CSN checkpoints without items): `csn bench` refuses it once, before
training anything, naming every stale part; `csn bench --from` refuses to score its systems; and
results.json records the code versions that made them."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from csn_model.cli import main
from tests.csn_model.bench.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")
SYSTEMS = "bench.systems=[individual_separated, csn, csn_no_interchanged]"
SETTINGS = ["train.aux_loss=0", "train.pretrain=0", SYSTEMS]


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory):
    """A finished run of the separator, the individual networks and two CSN systems."""
    base = tmp_path_factory.mktemp("versions")
    (base / "tiny.yaml").write_text(TINY)
    before = torch.get_num_threads()
    assert main([*_args(base, base / "run", tiny_dataset)]) == 0
    torch.set_num_threads(before)
    return base / "run"


def _args(base, run, data) -> list[str]:
    config = str(base / "tiny.yaml")
    return ["bench", "--config", config, "--data", str(data), "--out", str(run), "--set", *SETTINGS]


def _made_by_old_code(run) -> None:
    """What csn_model 0.1.0 wrote: no meta.sampler, no versions.batches, no items in a CSN."""
    for t in (run / "triplets").glob("*.json"):
        d = json.loads(t.read_text())
        d["meta"].pop("sampler")
        t.write_text(json.dumps(d))
    sep = run / "separator" / "separator.pt"
    p = torch.load(sep, weights_only=True)
    p["versions"].pop("batches")
    torch.save(p, sep)
    for name in ("csn", "csn_no_interchanged"):
        f = run / "systems" / name / "final.pt"
        p = torch.load(f, weights_only=True)
        p.pop("items")
        torch.save(p, f)


def _copy(trained_run, tmp_path):
    """The trained run copied as it is: its checkpoints.json names the copy's own files, being
    relative to the run folder."""
    run = shutil.copytree(trained_run, tmp_path / "run")
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert str(trained_run.resolve()) not in (run / "checkpoints.json").read_text()
    return run


def test_it_records_the_code_versions_in_results(trained_run):
    import csn_model
    from csn_model.data.triplets import SAMPLER_VERSION
    from csn_model.separation import BATCHES_VERSION
    from csn_model.train import ITEMS_VERSIONS

    code = json.loads((trained_run / "results.json").read_text())["code"]
    assert code == {
        "csn_model": csn_model.__version__,
        "items": ITEMS_VERSIONS,
        "batches": BATCHES_VERSION,
        "sampler": SAMPLER_VERSION,
    }
    assert (
        f"Code: csn_model {csn_model.__version__} (items csn {ITEMS_VERSIONS['csn']}"
        in (trained_run / "results.md").read_text()
    )


def test_it_refuses_every_part_made_by_older_code_at_once_and_reuses_the_rest_once_deleted(
    trained_run, tiny_dataset, tmp_path, capsys, caplog
):
    run = _copy(trained_run, tmp_path)
    _made_by_old_code(run)
    args = _args(tmp_path, run, tiny_dataset)
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    caplog.set_level("INFO", logger="csn.bench")
    assert main(args) == 2
    err = capsys.readouterr().err
    stale = [run / "triplets", run / "separator"]
    stale += [run / "systems" / n for n in ("csn", "csn_no_interchanged")]
    for part in stale:
        assert str(part) in err, err
    assert str(run / "systems" / "individual_drums") not in err, err
    assert "other data or settings" not in err and "new --out" not in err, err
    assert "sampler version 1" in err and "same --out" in err, err
    assert "training" not in caplog.text  # refused before anything trained
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == stamps

    for part in stale:  # what the error says
        shutil.rmtree(part)
    caplog.clear()
    assert main(args) == 0, capsys.readouterr().err
    said = [r.getMessage() for r in caplog.records]
    trained = {m.split()[1] for m in said if m.startswith("training ")}
    assert trained == {"csn", "csn_no_interchanged"}  # the individual networks were reused


def test_it_names_an_old_sampler_as_the_codes_not_other_data(tmp_path):
    from csn_model.bench_score import _check_meta

    path = tmp_path / "test_pseudo.json"
    with pytest.raises(ValueError) as info:
        _check_meta(path, {"fingerprint": "f", "sampler": None}, {"fingerprint": "f", "sampler": 2})
    msg = str(info.value)
    assert str(path) in msg and "older code" in msg and "other data or settings" not in msg


def test_it_refuses_to_score_systems_made_by_older_code(
    trained_run, other_dataset, tmp_path, capsys
):
    run = _copy(trained_run, tmp_path)
    _made_by_old_code(run)
    out = tmp_path / "generalisation"
    capsys.readouterr()
    assert main(["bench", "--from", str(run), "--data", str(other_dataset), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for f in ("separator/separator.pt", "systems/csn/final.pt", "systems/csn_no_interchanged"):
        assert str(run / f) in err, err
    assert str(run / "systems" / "individual_drums") not in err, err
    assert not (out / "results.json").exists()


def _truncate(path) -> None:
    """A checkpoint damaged on disk or in a copy (saves are atomic: a crash leaves none)."""
    path.write_bytes(path.read_bytes()[:100])


def test_a_damaged_checkpoint_in_the_run_folder_is_named_in_one_line(
    trained_run, tiny_dataset, tmp_path, capsys
):
    run = _copy(trained_run, tmp_path)
    damaged = run / "systems" / "csn" / "final.pt"
    _truncate(damaged)
    capsys.readouterr()
    assert main(_args(tmp_path, run, tiny_dataset)) == 2
    err = capsys.readouterr().err
    assert f"{damaged}: truncated or damaged" in err and "Traceback" not in err, err


def test_a_damaged_checkpoint_to_score_is_named_in_one_line(
    trained_run, other_dataset, tmp_path, capsys
):
    run = _copy(trained_run, tmp_path)
    damaged = run / "separator" / "separator.pt"
    _truncate(damaged)
    out = tmp_path / "generalisation"
    capsys.readouterr()
    assert main(["bench", "--from", str(run), "--data", str(other_dataset), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{damaged}: truncated or damaged" in err, err


def test_a_system_file_that_is_not_a_dict_is_named_as_load_checkpoint_names_it(tmp_path):
    from csn_model.bench_versions import old_checkpoint
    from csn_model.checkpoint import CheckpointError, load_checkpoint

    path = tmp_path / "final.pt"
    torch.save([1, 2], path)  # loads with weights_only=True, but is no checkpoint
    with pytest.raises(CheckpointError) as info:
        old_checkpoint(path)
    assert str(info.value) == f"{path}: not a csn checkpoint (holds a list, not a dict)"
    with pytest.raises(CheckpointError) as loaded:
        load_checkpoint(path)
    assert str(info.value) == str(loaded.value)  # one wording for one case


@pytest.mark.parametrize(
    ("name", "expected"),
    [("separator.pt", "separator checkpoint"), ("separator.partial", "separator training state")],
)
def test_a_separator_file_that_is_not_a_dict_says_what_it_holds_and_what_was_expected(
    tmp_path, name, expected
):
    from csn_model.bench_versions import old_separator
    from csn_model.checkpoint import CheckpointError

    path = tmp_path / name
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError) as info:
        old_separator(path)
    assert str(info.value) == f"{path}: not a {expected} (holds a Tensor, not a dict)"
