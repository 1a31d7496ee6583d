"""Seed variance across `csn bench` runs that differ only in train.seed and separator.seed
(python -m csn_model.bench_seeds): per-seed accuracies, their mean and SD, the reference's
difference per seed, and one paired test over pieces on the outcomes averaged over seeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from csn_model.bench_seeds import (
    accuracy_over_seeds,
    accuracy_per_run,
    compare_over_seeds,
    main,
    pooled_comparisons,
    read_runs,
)

COMMITTED = Path(__file__).resolve().parents[3] / "experiments/results/cpu_rerun_fixes_2026-12-06"


def _stacked(correct: dict[str, list[list[int]]]) -> pd.DataFrame:
    """Outcomes of several runs in one frame (column `run`): system -> per run, the correct
    column of four drums triplets, the first two on piece A, the last two on piece B."""
    rows = []
    for system, runs in correct.items():
        for run, values in enumerate(runs):
            for triplet, value in enumerate(values):
                piece = "A" if triplet < 2 else "B"
                rows.append((run, system, "pseudo", "drums", triplet, piece, value))
    columns = ["run", "system", "kind", "condition", "triplet", "piece", "correct"]
    return pd.DataFrame(rows, columns=columns)


# Three seeds: csn gets 3, 2, 4 of the four triplets right, other 1, 2, 1.
THREE_SEEDS = {
    "csn": [[1, 1, 1, 0], [1, 0, 0, 1], [1, 1, 1, 1]],
    "other": [[0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]],
}


def test_it_gives_mean_sd_min_max_of_the_accuracy_over_seeds():
    acc = accuracy_over_seeds(accuracy_per_run(_stacked(THREE_SEEDS)))
    csn = acc[(acc.system == "csn") & (acc.term == "drums")].iloc[0]
    # By hand: accuracies 0.75, 0.5, 1.0; mean 0.75; deviations 0, -0.25, 0.25, so the sample
    # variance (ddof 1) is (0 + 0.0625 + 0.0625) / 2 = 0.0625 and the SD 0.25.
    assert (csn.n_seeds, csn.estimate, csn.sd) == (3, pytest.approx(0.75), pytest.approx(0.25))
    assert (csn["min"], csn["max"], csn.n) == (0.5, 1.0, 4)
    other = acc[(acc.system == "other") & (acc.term == "mean")].iloc[0]
    # 0.25, 0.5, 0.25: mean 1/3, deviations -1/12, 1/6, -1/12, variance (3/72) / 2 = 1/48.
    assert other.estimate == pytest.approx(1 / 3)
    assert other.sd == pytest.approx((1 / 48) ** 0.5)


def test_its_accuracy_per_seed_is_the_accuracy_csn_bench_reports_for_that_run():
    from csn_model.evaluation import accuracy_table

    outcomes = read_runs([COMMITTED])[0].outcomes
    ours = accuracy_per_run(outcomes.assign(run=0)).drop(columns="run")
    theirs = accuracy_table(outcomes, n_boot=2)[list(ours.columns)]  # the estimates, unbooted
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True, check_dtype=False)


def test_it_gives_the_references_difference_per_seed_and_how_many_seeds_favour_it():
    stacked = _stacked(THREE_SEEDS)
    comps = compare_over_seeds(stacked, accuracy_per_run(stacked), "csn")
    row = comps[comps.term == "drums"].iloc[0]
    # By hand: differences 0.5, 0.0, 0.75; mean 5/12; deviations 1/12, -5/12, 1/3, so the
    # variance is (1/144 + 25/144 + 16/144) / 2 = 42/288 and two seeds favour csn (0.0 neither).
    assert row.system == "other" and row.reference == "csn"
    assert row.diff_mean == pytest.approx(5 / 12)
    assert row.diff_sd == pytest.approx((42 / 288) ** 0.5)
    assert (row.diff_min, row.diff_max, row.n_seeds, row.n_favour_reference) == (0.0, 0.75, 3, 2)


def test_it_tests_the_outcomes_averaged_over_seeds_over_pieces():
    stacked = _stacked(THREE_SEEDS)
    row = pooled_comparisons(stacked, "csn").query("term == 'drums'").iloc[0]
    # Summed over the three seeds, csn - other per triplet: 1, 1, 2, 1 -> piece A 2, piece B 3.
    # Of the 4 sign flips of (2, 3) only +-(2 + 3) reach |5|: p = 2/4. The estimate is the
    # difference of the seed-averaged accuracies, (9 - 4) / 12.
    assert row.estimate == pytest.approx(5 / 12)
    assert (row.stat, row.p_val, row.n_pieces, row.n) == (5.0, 0.5, 2, 4)
    assert "iid_mcnemar_p_val" not in row.index  # counts of a seed sum are not McNemar's 0/1


def test_its_pooled_test_on_one_seed_equals_bench_stats_on_that_run(tmp_path):
    from csn_model.bench_stats import recompute

    run = read_runs([COMMITTED])[0]
    stacked = run.outcomes.assign(run=0)
    ours = pooled_comparisons(stacked, "csn")
    theirs = recompute(COMMITTED, "csn")[list(ours.columns)]
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def _write_run(folder: Path, stacked: pd.DataFrame, run: int, seed: int, **config) -> Path:
    folder.mkdir(parents=True)
    stacked[stacked.run == run].drop(columns="run").to_csv(folder / "outcomes.csv", index=False)
    cfg = {
        "name": "tiny",
        "train": {"seed": seed, "steps": 2},
        "bench": {"systems": ["csn", "other"], "per_condition": 2},
        "separator": {"seed": seed, "steps": 2},
    }
    for dotted, value in config.items():
        section, field = dotted.split("__")
        cfg[section][field] = value
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "dataset.json").write_text(json.dumps({"root": "/d", "fingerprint": "abc"}))
    return folder


def test_it_carries_the_crossed_test_of_the_pooled_outcomes_with_its_df(tmp_path, capsys):
    """Runs whose outcomes record each triplet's other pieces: seeds.json, seeds.md and the
    printed summary carry the crossed test of the pooled outcomes (se, df, p, Holm p) as
    comparisons.csv does for one run, the se in accuracy units (divided by the seeds)."""
    from csn_model.evaluation import compare_to_reference

    rng = np.random.default_rng(3)
    # 48 triplets on 8 pieces: anchor t % 8, three other pieces drawn from the remaining 7.
    others = ["|".join(f"P{(t + k) % 8}" for k in rng.permutation(7)[:3] + 1) for t in range(48)]
    rows = [
        (run, system, "pseudo", "drums", t, f"P{t % 8}", int(rng.uniform() < p), others[t])
        for run in (0, 1)
        for system, p in (("csn", 0.7), ("other", 0.5))
        for t in range(48)
    ]
    columns = ["run", "system", "kind", "condition", "triplet", "piece", "correct", "others"]
    stacked = pd.DataFrame(rows, columns=columns)
    runs = [_write_run(tmp_path / f"seed{k}", stacked, k, k) for k in (0, 1)]
    assert main([str(r) for r in runs] + ["--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    # By an independent route: the same test on each triplet's correctness summed by hand.
    summed = stacked.groupby(["system", "kind", "condition", "triplet", "piece", "others"])
    expected = compare_to_reference(summed["correct"].sum().reset_index(), "csn")
    expected = expected.set_index("term")
    result = json.loads((tmp_path / "out/seeds.json").read_text())
    ours = pd.DataFrame(result["comparisons"]).set_index("term")
    for column in ("crossed_df", "crossed_p_val", "crossed_p_adj"):
        assert ours[column].to_numpy() == pytest.approx(expected[column].to_numpy(), rel=1e-12)
    assert ours.crossed_se.to_numpy() == pytest.approx(expected.crossed_se.to_numpy() / 2)
    assert (ours.crossed_df >= 1).all()
    mean = ours.loc["mean"]
    assert f"crossed p_adj={mean.crossed_p_adj:.3g} (df {mean.crossed_df:.1f})" in printed
    md = (tmp_path / "out/seeds.md").read_text()
    assert "crossed p_adj (df) |" in md
    assert f"| {mean.crossed_p_adj:.3g} ({mean.crossed_df:.1f}) |" in md


@pytest.fixture
def two_runs(tmp_path) -> list[Path]:
    stacked = _stacked(THREE_SEEDS)
    return [_write_run(tmp_path / f"seed{k}", stacked, k, k) for k in (0, 1)]


def _refused(capsys, argv: list) -> str:
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_it_accepts_two_runs_that_differ_only_in_their_seeds(two_runs, capsys):
    assert main([str(r) for r in two_runs]) == 0
    out = capsys.readouterr().out
    assert "other" in out and "csn" in out and "2 seeds" in out


def test_it_refuses_fewer_than_two_runs(two_runs, capsys):
    assert "at least two" in _refused(capsys, two_runs[:1])


def test_it_refuses_a_missing_or_malformed_outcomes_csv(two_runs, capsys):
    (two_runs[1] / "outcomes.csv").unlink()
    assert f"{two_runs[1] / 'outcomes.csv'}: missing" in _refused(capsys, two_runs)
    pd.DataFrame({"system": ["csn"]}).to_csv(two_runs[1] / "outcomes.csv", index=False)
    assert "lacks columns" in _refused(capsys, two_runs)


@pytest.mark.parametrize("name", ["config.yaml", "dataset.json"])
def test_it_refuses_a_run_without_its_config_or_dataset_record(two_runs, capsys, name):
    (two_runs[0] / name).unlink()
    assert f"{two_runs[0] / name}: missing" in _refused(capsys, two_runs)


def test_it_refuses_runs_on_different_datasets(two_runs, capsys):
    (two_runs[1] / "dataset.json").write_text(json.dumps({"root": "/d", "fingerprint": "xyz"}))
    err = _refused(capsys, two_runs)
    assert "different datasets" in err and "abc" in err and "xyz" in err
    assert str(two_runs[0]) in err and str(two_runs[1]) in err


def test_it_refuses_runs_on_different_test_triplets(two_runs, capsys):
    outcomes = pd.read_csv(two_runs[1] / "outcomes.csv")
    outcomes.loc[outcomes.triplet == 3, "piece"] = "C"  # the same triplet, another anchor piece
    outcomes.to_csv(two_runs[1] / "outcomes.csv", index=False)
    err = _refused(capsys, two_runs)
    assert "different test triplets" in err and str(two_runs[1]) in err and "'C'" in err


def test_it_refuses_a_run_in_which_one_system_scored_fewer_triplets(two_runs, capsys):
    """Every triplet must be scored by every system in every run: the pooled test sums each
    triplet over the seeds, so a system missing rows in one run would be compared on sums over
    fewer seeds than the reference's (the union of triplets can still match)."""
    outcomes = pd.read_csv(two_runs[1] / "outcomes.csv")
    outcomes = outcomes[~((outcomes.system == "other") & (outcomes.triplet == 3))]
    outcomes.to_csv(two_runs[1] / "outcomes.csv", index=False)
    err = _refused(capsys, two_runs)
    assert "different test triplets" in err and "other" in err and str(two_runs[1]) in err


def test_it_refuses_configs_that_differ_in_more_than_the_seeds(tmp_path, capsys):
    stacked = _stacked(THREE_SEEDS)
    a = _write_run(tmp_path / "a", stacked, 0, 0)
    b = _write_run(tmp_path / "b", stacked, 1, 1, bench__per_condition=3, train__steps=5)
    err = _refused(capsys, [a, b])
    assert "bench.per_condition (2 in" in err and "train.steps (2 in" in err
    assert err.count("train.seed") == err.count("separator.seed") == 1  # in the header only


def test_it_accepts_configs_that_differ_in_fields_that_cannot_change_outcomes_and_says_so(
    tmp_path, capsys
):
    stacked = _stacked(THREE_SEEDS)
    a = _write_run(tmp_path / "a", stacked, 0, 0, bench__n_boot=50, bench__analysis=False)
    b = _write_run(tmp_path / "b", stacked, 1, 1, bench__n_boot=2000, bench__analysis=False)
    c = _write_run(tmp_path / "c", stacked, 2, 2, bench__n_boot=2000, bench__analysis=False)
    out = tmp_path / "seeds"
    assert main([str(a), str(b), str(c), "--out", str(out)]) == 0
    said = f"bench.n_boot (50 in {a}, 2000 in {b}, 2000 in {c})"
    assert said in capsys.readouterr().out
    assert said in (out / "seeds.md").read_text()
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["config_differences"] == {"bench.n_boot": [50, 2000, 2000]}  # bench.analysis
    # is the same in every run: not listed


@pytest.mark.parametrize(
    "setting", [{"bench__batch_triplets": 8}, {"train__threads": 4}, {"bench__eval_seed": 3}]
)
def test_it_still_refuses_configs_that_differ_in_a_field_that_can_change_outcomes(
    tmp_path, capsys, setting
):
    stacked = _stacked(THREE_SEEDS)
    a = _write_run(tmp_path / "a", stacked, 0, 0)
    b = _write_run(tmp_path / "b", stacked, 1, 1, **setting)
    field = next(iter(setting)).replace("__", ".")
    assert f"{field} (" in _refused(capsys, [a, b])


def _seed_run_of_newer_code(tmp_path, seed: int, **features) -> Path:
    """A copy of the committed seed-0 folder as a run of today's code with another seed: its
    config.yaml (written before features.db_ref and train.gain_db) as csn bench saves it now."""
    from csn_model.bench_config import load_bench_config
    from csn_model.config import save_config

    folder = Path(shutil.copytree(COMMITTED, tmp_path / f"seed{seed}"))
    override = [f"train.seed={seed}", f"separator.seed={seed}"]
    override += [f"features.{k}={v}" for k, v in features.items()]
    save_config(load_bench_config(folder / "config.yaml", override), folder / "config.yaml")
    return folder


def test_it_combines_a_run_saved_before_new_config_fields_with_one_saved_after(tmp_path, capsys):
    old = yaml.safe_load((COMMITTED / "config.yaml").read_text())
    assert "db_ref" not in old["features"] and "gain_db" not in old["train"]  # before the fields
    new = _seed_run_of_newer_code(tmp_path, 1)
    saved = yaml.safe_load((new / "config.yaml").read_text())
    assert (saved["features"]["db_ref"], saved["train"]["gain_db"]) == ("one", [0.0, 0.0])
    # compared through the schema, as csn bench does: an absent field is its default
    assert main([str(COMMITTED), str(new)]) == 0, capsys.readouterr().err


def test_it_still_refuses_a_run_whose_new_field_is_not_the_default(tmp_path, capsys):
    new = _seed_run_of_newer_code(tmp_path, 1, db_ref="max")
    err = _refused(capsys, [COMMITTED, new])
    assert f"features.db_ref (one in {COMMITTED}, max in {new})" in err, err


def test_it_refuses_two_runs_with_the_same_seeds(tmp_path, capsys):
    stacked = _stacked(THREE_SEEDS)
    a = _write_run(tmp_path / "a", stacked, 0, 4)
    b = _write_run(tmp_path / "b", stacked, 1, 4)
    err = _refused(capsys, [a, b])
    assert "same seeds" in err and "train.seed=4, separator.seed=4" in err and str(b) in err


def test_it_refuses_runs_that_scored_different_systems(two_runs, capsys):
    outcomes = pd.read_csv(two_runs[1] / "outcomes.csv")
    outcomes.replace({"system": {"other": "another"}}).to_csv(
        two_runs[1] / "outcomes.csv", index=False
    )
    err = _refused(capsys, two_runs)
    assert "different systems" in err and "another" in err and str(two_runs[1]) in err


def test_it_refuses_a_reference_that_no_run_scored(two_runs, capsys):
    assert "'nope'" in _refused(capsys, [*two_runs, "--reference", "nope"])


def test_it_refuses_a_triplet_scored_twice_for_one_system(two_runs, capsys):
    outcomes = pd.read_csv(two_runs[0] / "outcomes.csv")
    pd.concat([outcomes, outcomes.head(1)]).to_csv(two_runs[0] / "outcomes.csv", index=False)
    assert "more than once" in _refused(capsys, two_runs)


def test_it_warns_when_the_runs_were_made_by_other_code(two_runs, capsys):
    for run, version in zip(two_runs, ("0.2.0", "0.3.0")):
        results = {"code": {"csn_model": version}}
        (run / "results.json").write_text(json.dumps(results))
    assert main([str(r) for r in two_runs]) == 0
    out = capsys.readouterr().out
    assert "warning" in out and "other code" in out and "0.3.0" in out


def _copy_committed(folder: Path, seed: int) -> Path:
    folder.mkdir()
    for name in ("outcomes.csv", "results.json", "dataset.json"):
        shutil.copy(COMMITTED / name, folder / name)
    cfg = yaml.safe_load((COMMITTED / "config.yaml").read_text())
    cfg["train"]["seed"] = cfg["separator"]["seed"] = seed
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def test_it_writes_seeds_json_md_and_the_per_seed_csv_for_the_committed_run(tmp_path, capsys):
    from csn_model.bench_stats import recompute

    runs = [_copy_committed(tmp_path / "seed0", 0), _copy_committed(tmp_path / "seed1", 1)]
    assert main([str(r) for r in runs] + ["--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    # The two copies hold the same outcomes: accepted (their seeds differ) but said.
    assert "warning" in out and "identical outcomes" in out
    result = json.loads((tmp_path / "out/seeds.json").read_text())
    assert [r["train_seed"] for r in result["runs"]] == [0, 1]
    assert result["warnings"] and "averaged over the seeds" in result["pooling"]
    # Sums over two identical seeds are twice one seed's outcomes: the sign-flip test's p is
    # unchanged by that scale, so the pooled p_adj is the single run's.
    ours = pd.DataFrame(result["comparisons"])
    single = recompute(COMMITTED, "csn")
    key = ["kind", "term", "system"]
    merged = ours.merge(single, on=key, suffixes=("", "_single"), validate="1:1")
    assert len(merged) == len(single) == 72  # 2 kinds x 6 terms x 6 other systems
    assert merged.p_adj.to_numpy() == pytest.approx(merged.p_adj_single.to_numpy(), rel=1e-12)
    assert (merged.diff_sd == 0).all()
    per_seed = pd.read_csv(tmp_path / "out/per_seed.csv")
    assert set(per_seed.train_seed) == {0, 1} and len(per_seed) == 2 * 7 * 2 * 6
    md = (tmp_path / "out/seeds.md").read_text()
    assert "| individual_separated |" in md and "averaged over the seeds" in md


def test_it_names_each_run_whose_system_mostly_tied(two_runs, capsys):
    """A collapsed system (its embedding nearly constant: ties counted wrong) in one seed run
    is what moves its SD most (csn_no_interchanged in Result 1b): each such run is named, as
    csn bench and bench_stats name it for one run."""
    for run, tied in zip(two_runs, (0, 1)):
        outcomes = pd.read_csv(run / "outcomes.csv")
        outcomes["tie"] = (outcomes.system == "other").astype(int) * tied
        outcomes["identical"] = 0
        outcomes.loc[outcomes.tie == 1, "correct"] = 0
        outcomes.to_csv(run / "outcomes.csv", index=False)
    assert main([str(r) for r in two_runs]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if "ties" in line]
    assert len(warnings) == 1, warnings
    assert str(two_runs[1]) in warnings[0] and "system other" in warnings[0]
    assert "100.0 %" in warnings[0]
