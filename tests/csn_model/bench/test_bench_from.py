"""`csn bench --from` scores only the run's own systems: a checkpoint swapped into the run folder
(another architecture, another dataset, another separator) is refused, naming the file and what
differs, as resuming the same folder refuses it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from csn_model.cli import main
from tests.csn_model.bench.conftest import TINY, _csn_only

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = ["train.aux_loss=0", "train.pretrain=0", "bench.systems=[individual_separated, csn]"]


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory):
    """A finished run of the individual networks, the separator and the CSN."""
    base = tmp_path_factory.mktemp("from")
    (base / "tiny.yaml").write_text(TINY)
    before = torch.get_num_threads()
    args = ["bench", "--config", str(base / "tiny.yaml"), "--data", str(tiny_dataset)]
    assert main([*args, "--out", str(base / "run"), "--set", *SETTINGS]) == 0
    torch.set_num_threads(before)
    return base / "run"


def _score(run, other_dataset, out, capsys) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["bench", "--from", str(run), "--data", str(other_dataset), "--out", str(out)])
    return rc, capsys.readouterr().err


def _csn_of(tmp_path, data, *settings) -> object:
    """systems/csn/final.pt of a quick CSN-only run on `data` with `settings`."""
    tmp_path.mkdir()
    args = _csn_only(tmp_path)
    assert main([*args, *settings, "--data", str(data)]) == 0
    return tmp_path / "run" / "systems" / "csn" / "final.pt"


def test_it_scores_the_runs_own_systems(trained_run, other_dataset, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "copy")
    rc, err = _score(run, other_dataset, tmp_path / "out", capsys)
    assert rc == 0, err


def test_it_refuses_a_checkpoint_of_another_architecture_swapped_in(
    trained_run, tiny_dataset, other_dataset, tmp_path, capsys
):
    run = shutil.copytree(trained_run, tmp_path / "copy")
    wider = _csn_of(tmp_path / "wider", tiny_dataset, "model.embedding_dim=80")
    swapped = run / "systems" / "csn" / "final.pt"
    shutil.copyfile(wider, swapped)
    out = tmp_path / "out"
    rc, err = _score(run, other_dataset, out, capsys)
    assert rc == 2, err
    assert f"{swapped}: not the csn of this run" in err and "another config" in err, err
    assert "model.embedding_dim 80 (expected 40)" in err, err
    assert "Traceback" not in err and not (out / "results.json").exists()


def test_it_refuses_a_checkpoint_trained_on_another_dataset(
    trained_run, tiny_dataset, other_dataset, tmp_path, capsys
):
    changed = shutil.copytree(tiny_dataset, tmp_path / "changed")
    meta = next((changed / "validation").glob("*/metadata.yaml"))
    meta.write_text(meta.read_text() + "# edited\n")  # the same tracks, another fingerprint
    run = shutil.copytree(trained_run, tmp_path / "copy")
    elsewhere = _csn_of(tmp_path / "elsewhere", changed, *SETTINGS[:2], "bench.systems=[csn]")
    swapped = run / "systems" / "csn" / "final.pt"
    shutil.copyfile(elsewhere, swapped)
    out = tmp_path / "out"
    rc, err = _score(run, other_dataset, out, capsys)
    assert rc == 2, err
    assert f"{swapped}: not the csn of this run" in err and str(changed.resolve()) in err, err
    assert not (out / "results.json").exists()


def test_it_refuses_a_separator_of_another_config_swapped_in(
    trained_run, tiny_dataset, other_dataset, tmp_path, capsys
):
    from dataclasses import replace

    from csn_model.bench_config import load_bench_config
    from csn_model.data.slakh import SlakhDataset
    from csn_model.separation import train_separator

    run = shutil.copytree(trained_run, tmp_path / "copy")
    cfg = load_bench_config(run / "config.yaml")
    swapped = run / "separator" / "separator.pt"
    swapped.unlink()
    other = replace(cfg.separator, hidden=8)
    train_separator(SlakhDataset(tiny_dataset), other, swapped, log=lambda _: None)
    out = tmp_path / "out"
    rc, err = _score(run, other_dataset, out, capsys)
    assert rc == 2, err
    assert f"{swapped}: not the separator of this run" in err and "hidden" in err, err
    assert not (out / "results.json").exists()


def _changed_copy(tiny_dataset, tmp_path):
    """tiny_dataset with one metadata.yaml edited: the same tracks, another fingerprint."""
    changed = shutil.copytree(tiny_dataset, tmp_path / "changed")
    meta = next((changed / "validation").glob("*/metadata.yaml"))
    meta.write_text(meta.read_text() + "# edited\n")
    return changed


def _separator_trained_on(data, run):
    """run's separator/separator.pt replaced by one of the run's settings trained on data."""
    from csn_model.bench_config import load_bench_config
    from csn_model.data.slakh import SlakhDataset
    from csn_model.separation import train_separator

    swapped = run / "separator" / "separator.pt"
    swapped.unlink()
    cfg = load_bench_config(run / "config.yaml")
    train_separator(SlakhDataset(data), cfg.separator, swapped, log=lambda _: None)
    return swapped


def _resume(run, tiny_dataset, capsys) -> tuple[int, str]:
    """`csn bench` again on the copied run folder, with the command that made trained_run."""
    capsys.readouterr()
    config = run.parent / "tiny.yaml"
    config.write_text(TINY)
    args = ["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(run)]
    rc = main([*args, "--set", *SETTINGS])
    return rc, capsys.readouterr().err


def test_it_refuses_a_separator_trained_on_another_dataset_swapped_in(
    trained_run, tiny_dataset, other_dataset, tmp_path, capsys
):
    from csn_model.data.fingerprint import dataset_fingerprint

    changed = _changed_copy(tiny_dataset, tmp_path)
    run = shutil.copytree(trained_run, tmp_path / "copy")
    swapped = _separator_trained_on(changed, run)
    out = tmp_path / "out"
    rc, err = _score(run, other_dataset, out, capsys)
    assert rc == 2, err
    assert f"{swapped}: not the separator of this run" in err, err
    assert dataset_fingerprint(changed) in err and dataset_fingerprint(tiny_dataset) in err, err
    assert not (out / "results.json").exists()


def test_resuming_refuses_a_separator_trained_on_another_dataset_swapped_in(
    trained_run, tiny_dataset, tmp_path, capsys
):
    from csn_model.data.fingerprint import dataset_fingerprint

    changed = _changed_copy(tiny_dataset, tmp_path)
    run = shutil.copytree(trained_run, tmp_path / "copy")
    swapped = _separator_trained_on(changed, run)
    results = (run / "results.json").read_text()
    rc, err = _resume(run, tiny_dataset, capsys)
    assert rc == 2, err
    assert f"{swapped}: not the separator of this run" in err, err
    assert dataset_fingerprint(changed) in err and dataset_fingerprint(tiny_dataset) in err, err
    assert (run / "results.json").read_text() == results  # nothing scored with it


def test_resuming_uses_the_runs_own_separator(trained_run, tiny_dataset, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "copy")
    own = torch.load(run / "separator" / "separator.pt", weights_only=True)
    assert (
        own["dataset"]["fingerprint"]
        == json.loads((run / "dataset.json").read_text())["fingerprint"]
    )
    rc, err = _resume(run, tiny_dataset, capsys)
    assert rc == 0, err


def _old_format_separator(run):
    """The run's separator.pt as saved before separators recorded their dataset."""
    path = run / "separator" / "separator.pt"
    state = torch.load(path, weights_only=True)
    state.pop("dataset")
    torch.save(state, path)
    return path


def test_a_separator_saved_before_dataset_records_is_scored_with_a_warning(
    trained_run, other_dataset, tmp_path, capsys, caplog
):
    run = shutil.copytree(trained_run, tmp_path / "copy")
    old = _old_format_separator(run)
    caplog.set_level("INFO", logger="csn.bench")
    caplog.clear()
    rc, err = _score(run, other_dataset, tmp_path / "out", capsys)
    assert rc == 0, err
    warned = [r for r in caplog.records if r.levelname == "WARNING" and str(old) in r.getMessage()]
    assert len(warned) == 1 and "records no dataset" in warned[0].getMessage(), caplog.text
    assert str(run / "dataset.json") in warned[0].getMessage()


def test_resuming_keeps_a_separator_saved_before_dataset_records_with_a_warning(
    trained_run, tiny_dataset, tmp_path, capsys, caplog
):
    run = shutil.copytree(trained_run, tmp_path / "copy")
    old = _old_format_separator(run)
    caplog.set_level("INFO", logger="csn.bench")
    caplog.clear()
    rc, err = _resume(run, tiny_dataset, capsys)
    assert rc == 0, err
    warned = [r for r in caplog.records if r.levelname == "WARNING" and str(old) in r.getMessage()]
    assert len(warned) == 1 and "records no dataset" in warned[0].getMessage(), caplog.text
    assert "separator step" not in caplog.text  # kept, not trained again


def _interrupted_separator(run, tiny_dataset, monkeypatch, **changed):
    """run's separator/ holding only separator.partial, of a training stopped after its last step
    with the run's separator settings but `changed`: as an interrupted run leaves it."""
    from dataclasses import replace

    import csn_model.separation as separation
    from csn_model.bench_config import load_bench_config
    from csn_model.data.slakh import SlakhDataset

    folder = run / "separator"
    shutil.rmtree(folder)
    folder.mkdir()
    path, save = folder / "separator.pt", separation._atomic_save

    def crash_at_the_end(obj, target):
        if target == path:
            raise KeyboardInterrupt
        save(obj, target)

    cfg = replace(load_bench_config(run / "config.yaml").separator, **changed)
    with monkeypatch.context() as m:
        m.setattr(separation, "_atomic_save", crash_at_the_end)
        with pytest.raises(KeyboardInterrupt):
            separation.train_separator(SlakhDataset(tiny_dataset), cfg, path, log=lambda _: None)
    return path.with_suffix(".partial")


def test_resuming_refuses_a_separator_partial_of_other_settings(
    trained_run, tiny_dataset, tmp_path, capsys, monkeypatch
):
    run = shutil.copytree(trained_run, tmp_path / "copy")
    partial = _interrupted_separator(run, tiny_dataset, monkeypatch, hidden=8)
    results = (run / "results.json").read_text()
    rc, err = _resume(run, tiny_dataset, capsys)
    assert rc == 2, err
    assert f"{partial}: an interrupted training of another separator" in err, err
    assert "separator.hidden 8 (run: 16)" in err and f"delete {partial}" in err, err
    assert not (run / "separator" / "separator.pt").exists()
    assert (run / "results.json").read_text() == results  # nothing scored


def test_resuming_continues_a_separator_partial_saved_before_settings_records_with_a_warning(
    trained_run, tiny_dataset, tmp_path, capsys, caplog, monkeypatch
):
    run = shutil.copytree(trained_run, tmp_path / "copy")
    partial = _interrupted_separator(run, tiny_dataset, monkeypatch)
    state = torch.load(partial, weights_only=True)
    state.pop("config")  # as saved before partial files recorded their settings
    state["versions"].pop("sample_rate")
    torch.save(state, partial)
    caplog.set_level("INFO", logger="csn.bench")
    caplog.clear()
    rc, err = _resume(run, tiny_dataset, capsys)
    assert rc == 0, err
    warned = [
        r for r in caplog.records if r.levelname == "WARNING" and str(partial) in r.getMessage()
    ]
    assert len(warned) == 1 and "records no settings" in warned[0].getMessage(), caplog.text
    assert (run / "separator" / "separator.pt").exists() and not partial.exists()


def test_it_names_the_missing_teachers_of_a_csn_and_how_to_restore_them(
    tiny_dataset, other_dataset, tmp_path, capsys
):
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = tmp_path / "run"  # a CSN trained with its teachers (the default aux loss, pre-training)
    args = ["bench", "--config", str(tmp_path / "tiny.yaml"), "--data", str(tiny_dataset),
            "--out", str(run), "--set", "bench.systems=[csn]"]  # fmt: skip
    assert main(args) == 0
    copy = shutil.copytree(run, tmp_path / "shared", ignore=shutil.ignore_patterns("individual_*"))
    rc, err = _score(copy, other_dataset, tmp_path / "out", capsys)
    assert rc == 2, err
    assert "teacher" in err and str(copy / "systems" / "individual_bass" / "final.pt") in err, err
    assert "restore" in err and "delete" not in err, err  # not: train the CSN again


@pytest.mark.parametrize("part", ["separator/separator.pt", "systems/csn/final.pt"])
def test_a_new_run_folder_holding_parts_of_another_run_is_refused(
    trained_run, tiny_dataset, tmp_path, capsys, part
):
    # without config.yaml nothing vouches for them: the dataset.json a new run writes is its own
    out = tmp_path / "new"
    (out / part).parent.mkdir(parents=True)
    shutil.copyfile(trained_run / part, out / part)
    (tmp_path / "tiny.yaml").write_text(TINY)
    capsys.readouterr()
    args = ["bench", "--config", str(tmp_path / "tiny.yaml"), "--data", str(tiny_dataset),
            "--out", str(out), "--set", *SETTINGS]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{out}: holds {part.split('/')[0]}/ but no config.yaml" in err, err
    assert not (out / "config.yaml").exists() and not (out / "dataset.json").exists()


def test_check_separator_refuses_one_trained_on_older_batches(trained_run, tmp_path):
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_train import check_separator

    run = shutil.copytree(trained_run, tmp_path / "copy")
    path = run / "separator" / "separator.pt"
    state = torch.load(path, weights_only=True)
    state["versions"].pop("batches")  # unrecorded: version 1, before aligned mixtures
    torch.save(state, path)
    cfg = load_bench_config(run / "config.yaml")
    dataset = json.loads((run / "dataset.json").read_text())
    with pytest.raises(ValueError, match="batches version 1"):
        check_separator(path, cfg, dataset, run)


def test_check_separator_refuses_one_whose_config_has_a_field_this_code_lacks(
    trained_run, tmp_path
):
    # a field since removed from SeparatorConfig was set: another separator, as a system's
    # checkpoint holding a removed field is another config (train_folder.config_differences)
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_train import check_separator

    run = shutil.copytree(trained_run, tmp_path / "copy")
    path = run / "separator" / "separator.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["mask_floor"] = 0.1
    torch.save(state, path)
    cfg = load_bench_config(run / "config.yaml")
    dataset = json.loads((run / "dataset.json").read_text())
    with pytest.raises(ValueError) as refused:
        check_separator(path, cfg, dataset, run)
    message = str(refused.value)
    assert message.startswith(f"{path}: not the separator of this run"), message
    assert "separator.mask_floor 0.1 (run: absent)" in message, message
    assert "separator.hidden" not in message, message  # only the field that differs
