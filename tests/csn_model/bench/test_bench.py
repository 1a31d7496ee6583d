"""`csn bench` end to end on the tiny_dataset fixture: a few training steps per system."""

from __future__ import annotations

import json

import pytest

from csn_model import CONDITIONS
from csn_model.cli import main

TINY = """
features: {segment_seconds: 1.0, n_mels: 32}
model: {channels: [4, 8], kernels: [3, 3], strides: [2, 2], hidden: [16], embedding_dim: 40}
train: {steps: 2, batch_size: 2, pretrain: 1, num_workers: 0, log_every: 1, threads: 1}
separator: {n_fft: 256, hop: 64, hidden: 16, lstm_layers: 1, steps: 2, batch_size: 2,
            segment_seconds: 1.0}
bench: {per_condition: 2, n_boot: 50, sdr_chunk_seconds: 4.0, analysis: false,
        systems: [individual_clean, individual_separated, csn]}
"""
ALL_SYSTEMS = """
bench: {per_condition: 2, n_boot: 50, sdr_chunk_seconds: 4.0, analysis: true}
"""
TERMS = {*CONDITIONS, "mean"}


@pytest.fixture(autouse=True)
def one_thread():
    """train.threads sets torch's thread count for the process: restore it for later tests."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def other_dataset(tmp_path_factory):
    """A second dataset: another soundfont (TimGM6mb, inside pretty_midi), test split only."""
    from pathlib import Path

    import pretty_midi

    from csn_model.data.synth import synthesize

    soundfont = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    root = tmp_path_factory.mktemp("other_dataset")
    synthesize(
        root,
        3,
        9,
        soundfont=soundfont,
        seconds=6.0,
        workers=1,
        split_fractions=(0.0, 0.0, 1.0),
        progress=False,
    )
    return root


def _check_schema(results: dict, systems: set[str]) -> None:
    assert set(results["systems"]) == systems
    for name, s in results["systems"].items():
        assert s["input"] == {"individual_clean": "clean", "individual_separated": "separated"}.get(
            name, "mixture"
        )
        assert set(s["accuracy"]) <= TERMS and "mean" in s["accuracy"]
        assert all(0.0 <= v <= 1.0 for v in s["accuracy"].values())
        assert all(lo <= s["accuracy"][t] <= hi for t, (lo, hi) in s["ci95"].items())
        assert s["n_triplets"]["mean"] == sum(v for t, v in s["n_triplets"].items() if t != "mean")
        assert set(s["by_kind"]) == {"pseudo", "natural"}
    for c in results["comparisons"]:
        assert c["reference"] == "csn" and c["system"] != "csn"
        assert 0.0 <= c["p_val"] <= c["p_adj"] <= 1.0
    assert {"config", "dataset", "triplets", "separator_sdr"} <= set(results)


def test_it_benchmarks_every_system_and_scores_another_dataset(
    tiny_dataset, other_dataset, tmp_path
):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    run = tmp_path / "run"
    args = ["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(run)]
    assert main(args) == 0
    results = json.loads((run / "results.json").read_text())
    systems = {"individual_clean", "individual_separated", "csn"}
    _check_schema(results, systems)
    assert (run / "results.csv").exists() and "| csn | mixture |" in (
        run / "results.md"
    ).read_text()
    triplet_file = run / "triplets" / "test_pseudo.json"
    before = triplet_file.read_bytes()

    # A rerun trains nothing and reuses the saved triplets: identical outcomes.
    outcomes = (run / "outcomes.csv").read_text()
    assert main(args) == 0
    assert triplet_file.read_bytes() == before
    assert (run / "outcomes.csv").read_text() == outcomes

    out = tmp_path / "generalisation"
    assert main(["bench", "--from", str(run), "--data", str(other_dataset), "--out", str(out)]) == 0
    other = json.loads((out / "results.json").read_text())
    _check_schema(other, systems)
    assert other["trained_on"] == str(run)
    assert other["dataset"]["root"] == str(other_dataset.resolve())
    ids = {n: s["checkpoint_ids"] for n, s in results["systems"].items()}
    assert {n: s["checkpoint_ids"] for n, s in other["systems"].items()} == ids


def test_it_refuses_to_resume_a_run_with_another_config(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: something-else\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    args = ["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(run)]
    assert main(args) == 2
    assert "another config" in capsys.readouterr().err


def test_it_names_the_field_of_a_bad_bench_config(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("bench: {systems: [csn, nonsense]}\n")
    args = ["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(tmp_path)]
    assert main(args) == 2
    assert "bench.systems" in capsys.readouterr().err


@pytest.mark.slow
def test_it_trains_every_ablation_and_analyses_the_subspaces(tiny_dataset, tmp_path):
    from csn_model.bench_config import ALL_SYSTEMS as NAMES

    config = tmp_path / "all.yaml"
    config.write_text(TINY.split("bench:")[0] + ALL_SYSTEMS)
    run = tmp_path / "run"
    assert (
        main(["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(run)])
        == 0
    )
    results = json.loads((run / "results.json").read_text())
    _check_schema(results, set(NAMES))
    assert len({c["system"] for c in results["comparisons"]}) == len(NAMES) - 1
    matrix = (run / "analysis" / "disentanglement.csv").read_text().splitlines()
    assert matrix[0].startswith("subspace,target,accuracy") and len(matrix) == 1 + 25
    assert (run / "analysis" / "disentanglement.png").stat().st_size > 0


def test_it_scores_and_analyses_a_csn_with_learned_masks(tiny_dataset, tmp_path):
    # Learned masks are parameters: the subspaces they cut require grad until detached.
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    run = tmp_path / "run"
    settings = ["model.learned_masks=true", "train.aux_loss=0", "train.pretrain=0"]
    settings += ["bench.systems=[csn]", "bench.analysis=true"]
    args = ["bench", "--config", str(config), "--data", str(tiny_dataset), "--out", str(run)]
    assert main([*args, "--set", *settings]) == 0
    _check_schema(json.loads((run / "results.json").read_text()), {"csn"})
    matrix = (run / "analysis" / "disentanglement.csv").read_text().splitlines()
    assert matrix[0].startswith("subspace,target,accuracy") and len(matrix) == 1 + 25


def _csn_only(tmp_path) -> list[str]:
    """`csn bench` arguments (less --data) of a quick run: the CSN alone, no teachers."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    settings = ["train.aux_loss=0", "train.pretrain=0", "bench.systems=[csn]"]
    return ["bench", "--config", str(config), "--out", str(tmp_path / "run"), "--set", *settings]


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
    record.write_text(json.dumps({"root": str(tiny_dataset.resolve())}))  # what the error says
    assert main(args) == 0


@pytest.mark.parametrize(
    ("field", "saved"),
    [
        ("dataset", "/data/another_dataset"),
        ("split", "validation"),
        ("kind", "natural"),
        ("per_condition", 999),
        ("seed", 1),
        ("segment_frames", 11025),
        ("sample_rate", 44100),
    ],
)
def test_it_refuses_saved_triplets_made_for_other_data_or_settings(
    tiny_dataset, tmp_path, field, saved
):
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import SlakhDataset
    from csn_model.data.triplets import save_triplets

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    cfg = load_bench_config(config)
    meta = _pseudo_meta(tiny_dataset, cfg, 22050)
    path = tmp_path / "triplets" / "test_pseudo.json"
    save_triplets(path, [], {**meta, field: saved})
    with pytest.raises(ValueError) as err:
        eval_triplets(SlakhDataset(tiny_dataset), path.parent, cfg)
    for name in (str(path), f"meta.{field}", repr(saved), repr(meta[field])):
        assert name in str(err.value)
    # The same dataset named by another path (here a symbolic link) is the same dataset.
    path.unlink()
    made = eval_triplets(SlakhDataset(tiny_dataset), path.parent, cfg)["pseudo"][0]
    (tmp_path / "link").symlink_to(tiny_dataset)
    assert eval_triplets(SlakhDataset(tmp_path / "link"), path.parent, cfg)["pseudo"][0] == made


def test_it_refuses_an_empty_triplet_set_and_saves_nothing(tmp_path):
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import DataError, SlakhDataset
    from csn_model.data.synth import synthesize

    short = tmp_path / "short"  # 1.5-s tracks: too short for two 1-s segments
    synthesize(short, 4, 5, seconds=1.5, workers=1, split_fractions=(0, 0, 1), progress=False)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    folder = tmp_path / "triplets"
    cfg = load_bench_config(config)
    with (
        pytest.warns(UserWarning, match="no pseudo triplets possible"),
        pytest.raises(DataError) as err,
    ):
        eval_triplets(SlakhDataset(short), folder, cfg)
    for part in ("no pseudo triplets", "4 test tracks", str(short), "1-s segments"):
        assert part in str(err.value)
    assert not folder.exists() or not any(folder.iterdir())


def test_it_refuses_an_empty_triplet_file_that_earlier_versions_saved(tiny_dataset, tmp_path):
    from csn_model.bench_config import load_bench_config
    from csn_model.bench_score import eval_triplets
    from csn_model.data.slakh import DataError, SlakhDataset
    from csn_model.data.triplets import save_triplets

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    cfg = load_bench_config(config)
    ds = SlakhDataset(tiny_dataset)
    path = tmp_path / "triplets" / "test_pseudo.json"
    meta = _pseudo_meta(tiny_dataset, cfg, ds.sample_rate)
    save_triplets(path, [], meta)
    with pytest.raises(DataError) as err:
        eval_triplets(ds, path.parent, cfg)
    assert str(path) in str(err.value) and "delete it" in str(err.value)


def _pseudo_meta(dataset, cfg, sample_rate: int) -> dict:
    """The meta a saved test-split pseudo triplet file carries for this dataset and config."""
    return {
        "dataset": str(dataset.resolve()),
        "split": "test",
        "kind": "pseudo",
        "per_condition": cfg.bench.per_condition,
        "seed": cfg.bench.eval_seed,
        "segment_frames": cfg.features.segment_frames,
        "sample_rate": sample_rate,
    }


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


@pytest.mark.parametrize(
    "setting",
    [
        "bench.systems=[]",
        "bench.systems=[csn_no_aux_loss]",  # the config's aux_loss is 0 already: nothing to run
        "bench.kinds=[]",
        "bench.kinds=[pseudo,mixed]",
        "bench.per_condition=-1",
        "bench.per_condition=0",
        "bench.eval_seed=-1",
        "bench.individual_steps=-1",
        "bench.n_boot=0",
        "bench.batch_triplets=0",
        "bench.sdr_chunk_seconds=0",
        "bench.sdr_chunk_seconds=.nan",
    ],
)
def test_it_checks_the_bench_settings_before_any_work(tiny_dataset, tmp_path, capsys, setting):
    args = _csn_only(tmp_path)
    run = tmp_path / "run"
    assert main([*args, setting, "--data", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert "tiny.yaml" in err and f"field {setting.split('=')[0]} must be" in err
    assert not run.exists()


@pytest.mark.parametrize(
    "setting",
    [
        "separator.hop=0",
        "separator.hop=999",  # over n_fft
        "separator.n_fft=0",
        "separator.lstm_layers=0",
        "separator.steps=0",
        "separator.lr=-1",
        "separator.remix=1.5",
        "separator.segment_seconds=.inf",
        "separator.backend=spleeter",
        "separator.backend=demucs",  # without a folder of weights: names demucs_repo
    ],
)
def test_it_checks_the_separator_settings_before_training_the_other_systems(
    tiny_dataset, tmp_path, capsys, setting
):
    args = _csn_only(tmp_path)
    args[-1] = "bench.systems=[csn,individual_separated]"
    assert main([*args, setting, "--data", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    field = "separator.demucs_repo" if setting.endswith("demucs") else setting.split("=")[0]
    assert "tiny.yaml" in err and f"field {field} must be" in err
    assert not (tmp_path / "run").exists()


def test_it_says_why_a_system_cannot_train_instead_of_a_traceback(
    tiny_dataset, tmp_path, capsys, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine with CUDA
    args = [*_csn_only(tmp_path), "train.device=cuda", "--data", str(tiny_dataset)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("csn bench: ") and "train.device is 'cuda'" in err
