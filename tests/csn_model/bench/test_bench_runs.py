"""`csn bench` end to end on the tiny_dataset fixture: a few training steps per system, the
results' schema, a rerun that trains nothing, and scoring the trained systems on another dataset."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from csn_model import CONDITIONS
from csn_model.cli import main
from tests.csn_model.bench.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")
ALL_SYSTEMS = """
bench: {per_condition: 2, n_boot: 50, sdr_chunk_seconds: 4.0, analysis: true}
"""
TERMS = {*CONDITIONS, "mean"}


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


def _check_crossed_columns(run) -> None:
    """results.json carries the crossed statistics results.csv and comparisons.csv hold, the
    t reference's df (crossed_df) included, so a reader of the summary sees the df that p and
    the interval were computed on."""
    results = json.loads((run / "results.json").read_text())
    table = pd.read_csv(run / "results.csv")
    # Satterthwaite, floored at 1; 0/0 (NaN, null in the JSON) where a term's triplets are all
    # right or all wrong (se 0), as in this tiny run's 2 triplets per condition.
    assert ((table.crossed_df >= 1) | (table.crossed_se == 0)).all()
    assert (table.crossed_df >= 1).any()
    for row in table.itertuples():
        block = results["systems"][row.system]["by_kind"][row.kind]
        got = [block["crossed_se"][row.term], block["crossed_df"][row.term]]
        got += block["crossed_ci95"][row.term]
        got = [float("nan") if v is None else v for v in got]
        expected = [row.crossed_se, row.crossed_df, row.crossed_ci_low, row.crossed_ci_high]
        assert got == pytest.approx(expected, rel=1e-12, nan_ok=True)
    crossed = ["crossed_se", "crossed_df", "crossed_p_val", "crossed_p_adj"]
    summary = pd.DataFrame(results["comparisons"])[crossed].astype(float)
    pd.testing.assert_frame_equal(summary, pd.read_csv(run / "comparisons.csv")[crossed])


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
    # Each triplet's other pieces (B|C|D; a natural one's D), for comparisons.csv's crossed test.
    scored = pd.read_csv(run / "outcomes.csv", keep_default_na=False)
    roles = scored["others"].str.split("|").str.len().groupby(scored["kind"]).agg(["min", "max"])
    assert roles.loc["natural"].tolist() == [1, 1] and roles.loc["pseudo", "max"] == 3
    assert not any(a in o.split("|") for a, o in zip(scored["piece"], scored["others"]))
    assert {"crossed_p_val", "crossed_p_adj"} <= set(pd.read_csv(run / "comparisons.csv"))
    _check_crossed_columns(run)
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
