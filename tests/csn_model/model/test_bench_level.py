"""`csn bench-level`: one network scored on the same test triplets with the mixtures as the
benchmark feeds them, levelled as the Embedder levels, and at seeded random gains."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from csn_model.bench_score import _Net, score
from csn_model.cli import main
from csn_model.data.slakh import SlakhDataset
from csn_model.data.triplets import make_eval_set, render_stems
from csn_model.level_check import mode_gains
from csn_model.loudness import loudness_lufs, playback_lufs


def _run(smoke_run, tiny_dataset, out, *extra):
    argv = ["bench-level", "--checkpoint", str(smoke_run), "--data", str(tiny_dataset)]
    argv += ["--out", str(out), "--per-condition", "2", "--kinds", "pseudo", "--n-boot", "20"]
    assert main([*argv, *extra]) == 0
    return pd.read_csv(out / "outcomes.csv")


@pytest.fixture(scope="module")
def outcomes(smoke_run, tiny_dataset, tmp_path_factory):
    return _run(smoke_run, tiny_dataset, tmp_path_factory.mktemp("level"))


def test_it_scores_every_triplet_in_each_mode(outcomes):
    counts = outcomes.groupby("system")["triplet"].count()
    assert list(counts.index) == ["as_fed", "gain", "levelled"]
    assert counts.nunique() == 1 and counts.iloc[0] >= 5  # the same triplets in each mode
    by_mode = {m: part.drop(columns="system") for m, part in outcomes.groupby("system")}
    keys = ["kind", "condition", "triplet", "piece", "others"]
    for part in by_mode.values():
        assert (
            part[keys].reset_index(drop=True).equals(by_mode["as_fed"][keys].reset_index(drop=True))
        )


def test_it_scores_as_fed_as_the_benchmark_does(outcomes, smoke_run, tiny_dataset):
    ds = SlakhDataset(tiny_dataset)
    net = _Net(smoke_run, torch.device("cpu"))
    triplets = make_eval_set(ds, "test", "pseudo", 2, 20240410, net.segment_frames)
    bench = score(ds, {"pseudo": (triplets, None)}, {"csn": net}, net.segment_frames)
    mine = outcomes[outcomes.system == "as_fed"].reset_index(drop=True)
    cols = ["condition", "triplet", "piece", "correct", "tie", "identical"]
    assert mine[cols].equals(bench[cols])


def test_it_draws_the_same_gains_for_the_same_gain_seed(
    outcomes, smoke_run, tiny_dataset, tmp_path
):
    again = _run(smoke_run, tiny_dataset, tmp_path / "again")
    assert again.equals(outcomes)
    settings = json.loads((tmp_path / "again" / "settings.json").read_text())
    assert settings["gain_seed"] == 0 and settings["gain_range"] == [-12.0, 6.0]
    assert settings["checkpoint"] == [str(smoke_run)]
    assert (tmp_path / "again" / "comparisons.csv").exists()


def test_it_levels_each_mixture_to_the_target_and_draws_gains_in_the_range(tiny_dataset):
    ds = SlakhDataset(tiny_dataset)
    triplet = make_eval_set(ds, "test", "pseudo", 1, 20240410, 22050)[0]
    mixes = np.stack(
        [render_stems(ds, s, 22050).sum(0) for s in (triplet.anchor, triplet.positive)]
    )
    rng = np.random.default_rng(0)
    levelled = mixes * mode_gains(mixes, 22050, "levelled", rng)[:, None]
    for m in levelled:
        assert playback_lufs(loudness_lufs(m, 22050), 1) == pytest.approx(-23.0, abs=0.1)
    gains = mode_gains(np.zeros((500, 4)), 22050, "gain", rng, gain_range_db=(-12.0, 6.0))
    assert -12.0 <= 20 * np.log10(gains).min() < -11.0 and 5.0 < 20 * np.log10(gains).max() <= 6.0


def test_it_compares_several_networks_with_the_first_ones_mixtures_as_fed(
    smoke_run, tiny_dataset, tmp_path
):
    got = _run(smoke_run, tiny_dataset, tmp_path, "--checkpoint", str(smoke_run), str(smoke_run))
    names = [
        f"{smoke_run.parent.name}{i}:{m}" for i in (0, 1) for m in ("as_fed", "levelled", "gain")
    ]
    assert set(got["system"]) == set(names)
    first, second = (got[got.system == f"{names[k]}"].correct.to_numpy() for k in (1, 4))
    np.testing.assert_array_equal(first, second)  # the same network, the same levelled input
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    assert set(comparisons["reference"]) == {names[0]}
    assert set(comparisons["system"]) == set(names[1:])
