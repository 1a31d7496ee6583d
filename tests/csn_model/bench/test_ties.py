"""Tied triplets (d(anchor, positive) == d(anchor, negative)) are recorded and reported, never
silent: accuracy counts them as wrong, so a collapsed system (one embedding for every input, every
triplet a tie) scored 0.000 like a system that is always wrong (Result 1b, csn_no_interchanged).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from csn_model.evaluation import accuracy_table, triplet_correct, triplet_outcomes


def test_it_marks_exact_ties_and_identical_vectors_and_still_counts_ties_wrong():
    a = np.zeros((4, 3), dtype=np.float32)
    p = np.array([[0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 0, 0]], dtype=np.float32)
    n = np.array([[0, 0, 2], [0, 0, 1], [1, 0, 0], [0, 0, 0]], dtype=np.float32)
    out = triplet_outcomes(a, p, n)
    assert out["correct"].tolist() == [1, 0, 0, 0]  # row 2 ties at 1, row 3 at 0: both wrong
    assert out["tie"].tolist() == [0, 0, 1, 1]
    assert out["identical"].tolist() == [0, 0, 0, 1]
    assert out["correct"].tolist() == triplet_correct(a, p, n).tolist()


def test_it_does_not_call_a_difference_of_one_float32_step_a_tie():
    # Exact equality of the two distances that decide `correct`: a near-tie is scored right or
    # wrong by its sign, so it must not be called a tie (every tie is a wrong answer).
    a = np.zeros((1, 1), dtype=np.float32)
    p = np.ones((1, 1), dtype=np.float32)
    n = np.nextafter(p, np.float32(2))  # one float32 step further
    out = triplet_outcomes(a, p, n)
    assert (out["correct"][0], out["tie"][0]) == (1, 0)


class _FakeNet:
    """A tiny fake system: mixture waveforms -> embedding, by `fn` (no checkpoint)."""

    def __init__(self, fn):
        self.fn, self.id = fn, "fake"

    def embed(self, waves):
        import torch

        return torch.as_tensor(self.fn(np.asarray(waves)), dtype=torch.float32)  # (N, D)

    def subspace(self, emb, condition):
        return emb.numpy()  # (N, D): one subspace, the whole embedding


def _constant(waves):
    return np.full((waves.shape[0], 4), 0.25)  # (N, 4): the same vector for every input


def _input_dependent(waves):
    return np.stack([waves.mean(1), waves.std(1), np.abs(waves).max(1)], axis=1)  # (N, 3)


def _score(tiny_dataset, tmp_path, monkeypatch, systems) -> pd.DataFrame:
    """bench_score.score() of `systems` (fake nets) on the tiny dataset's pseudo triplets."""
    from csn_model import bench_score
    from csn_model.bench_config import load_bench_config
    from csn_model.data.slakh import SlakhDataset
    from tests.csn_model.bench.conftest import TINY

    # score() tells a mixture-input system from a per-condition one by its class.
    monkeypatch.setattr(bench_score, "_Net", _FakeNet)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    cfg = load_bench_config(config, ["bench.kinds=[pseudo]"])
    ds = SlakhDataset(tiny_dataset)
    triplets = bench_score.eval_triplets(ds, tmp_path / "triplets", cfg)
    return bench_score.score(ds, triplets, systems, cfg.features.segment_frames)


def test_it_records_every_triplet_of_a_constant_system_as_a_tie_with_identical_vectors(
    tiny_dataset, tmp_path, monkeypatch
):
    systems = {"flat": _FakeNet(_constant), "loud": _FakeNet(_input_dependent)}
    outcomes = _score(tiny_dataset, tmp_path, monkeypatch, systems)
    flat = outcomes[outcomes.system == "flat"]
    assert len(flat) > 0
    assert flat[["correct", "tie", "identical"]].drop_duplicates().values.tolist() == [[0, 1, 1]]
    loud = outcomes[outcomes.system == "loud"]
    assert loud["tie"].sum() == 0 and loud["identical"].sum() == 0


def _outcomes(system_ties: dict[str, tuple[int, int]], n: int = 40) -> pd.DataFrame:
    """n triplets per system over 8 pieces: the first `ties` are ties (wrong), the first
    `identical` of them with identical vectors; of the rest, every other one is right."""
    rows = []
    for system, (ties, identical) in system_ties.items():
        for i in range(n):
            tie = int(i < ties)
            correct = 0 if tie else i % 2
            rows.append(
                (
                    system,
                    "pseudo",
                    ("drums", "bass")[i % 2],
                    i,
                    i % 8,
                    correct,
                    tie,
                    int(i < identical),
                )
            )
    columns = ["system", "kind", "condition", "triplet", "piece", "correct", "tie", "identical"]
    return pd.DataFrame(rows, columns=columns)


def test_it_counts_ties_per_term_next_to_the_accuracy():
    acc = accuracy_table(_outcomes({"csn": (0, 0), "flat": (40, 40), "some": (4, 0)}), n_boot=20)
    by = acc.set_index(["system", "term"])
    assert by.loc[("flat", "mean"), ["n", "n_ties", "n_identical"]].tolist() == [40, 40, 40]
    assert by.loc[("flat", "mean"), "estimate"] == 0.0  # ties stay wrong
    assert by.loc[("some", "drums"), ["n", "n_ties", "n_identical"]].tolist() == [20, 2, 0]
    assert by.loc[("csn", "mean"), "n_ties"] == 0


def test_it_warns_about_a_system_whose_ties_pass_the_threshold_and_names_a_constant_one():
    from csn_model.bench_report import tie_warnings

    acc = accuracy_table(
        _outcomes({"csn": (0, 0), "flat": (40, 40), "many": (4, 0), "few": (2, 0)}), n_boot=20
    )
    warnings = tie_warnings(acc)
    assert len(warnings) == 2  # few: 5 % of its triplets, not above the threshold
    flat, many = warnings
    assert flat.startswith("system flat: 100.0 % of triplets (40 of 40) are ties")
    assert "same vector" in flat and "constant" in flat and "collapsed training?" in flat
    assert many.startswith("system many: 10.0 % of triplets (4 of 40) are ties")
    assert "same vector" not in many


def _flat_system_results():
    """Accuracy and results of a run whose system `flat` tied on all 40 triplets, `csn` on none."""
    from csn_model.bench_report import tie_warnings

    acc = accuracy_table(_outcomes({"csn": (0, 0), "flat": (40, 40)}), n_boot=20)
    results = {
        "dataset": {"name": "mini", "root": "/data/mini"},
        "systems": {"csn": {}, "flat": {}},
        "warnings": tie_warnings(acc),
        "reference": "csn",
    }
    return acc, results


def test_it_puts_each_systems_tie_share_and_the_warning_in_results_md():
    from csn_model.bench_report import render_markdown

    acc, results = _flat_system_results()
    text = render_markdown(results, acc, pd.DataFrame())
    assert "**Warning:** system flat: 100.0 % of triplets (40 of 40) are ties" in text
    assert "counts a tie as wrong" in text
    flat_row = next(line for line in text.splitlines() if line.startswith("| flat |"))
    csn_row = next(line for line in text.splitlines() if line.startswith("| csn |"))
    assert flat_row.endswith("| 100.0 % |") and csn_row.endswith("| 0.0 % |")


def test_bench_stats_reports_ties_and_still_reads_an_outcomes_csv_without_them(tmp_path, capsys):
    from csn_model.bench_stats import main

    outcomes = _outcomes({"csn": (0, 0), "flat": (40, 40)})
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "flat" in out and "system flat: 100.0 % of triplets (40 of 40) are ties" in out

    older = tmp_path / "older"  # a run made before ties were recorded
    older.mkdir()
    outcomes.drop(columns=["tie", "identical"]).to_csv(older / "outcomes.csv", index=False)
    assert main([str(older)]) == 0
    out = capsys.readouterr().out
    assert "flat" in out and "no tie column" in out


@pytest.mark.parametrize("missing", ["tie", "identical"])
def test_bench_stats_refuses_half_of_the_tie_columns(tmp_path, capsys, missing):
    from csn_model.bench_stats import main

    _outcomes({"csn": (0, 0), "flat": (40, 40)}).drop(columns=[missing]).to_csv(
        tmp_path / "outcomes.csv", index=False
    )
    assert main([str(tmp_path)]) == 2
    assert missing in capsys.readouterr().err


def test_it_prints_the_tie_shares_and_warnings_when_it_writes_the_results(tmp_path, caplog):
    # `csn bench` logs to stdout, so these lines come with its printed summary.
    from csn_model.bench_report import write_results

    acc, results = _flat_system_results()
    with caplog.at_level("INFO", logger="csn.bench"):
        write_results(results, acc, pd.DataFrame(), tmp_path)
    text = caplog.text
    assert "csn 0.0 %" in text and "flat 100.0 %" in text
    assert "system flat: 100.0 % of triplets (40 of 40) are ties" in text
    assert "WARNING" in text


def test_the_printed_summary_gives_each_systems_tie_share_and_the_warnings(capsys):
    from csn_model.bench_cli import _print_summary

    system = {"ci95": {"mean": [0.0, 0.0]}, "accuracy": {"mean": 0.0}, "tie_share": 1.0}
    older = {"ci95": {"mean": [0.4, 0.6]}, "accuracy": {"mean": 0.5}}  # written before ties
    _print_summary({"primary_kind": "pseudo", "systems": {"collapsed": system, "old": older},
                    "warnings": ["collapsed: 100.0 % of triplets are ties"]})  # fmt: skip
    out = capsys.readouterr().out
    assert "collapsed" in out and "ties 100.0 % (counted wrong)" in out
    assert "warning: collapsed: 100.0 % of triplets are ties" in out
    assert "old                    0.500 [0.400, 0.600]\n" in out


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_it_refuses_to_score_triplets_with_a_non_finite_embedding_and_counts_them(bad):
    # NaN distances compare false both ways: they read as wrong, not tied, not identical
    from csn_model.evaluation import NonFiniteEmbedding

    a = np.zeros((3, 2), dtype=np.float32)
    p, n = a + 1, a + 2
    a[1, 0], n[2, 1] = bad, bad
    with pytest.raises(NonFiniteEmbedding, match=r"2 of 3 triplets have a non-finite embedding"):
        triplet_outcomes(a, p, n)


class _NaNNet(_FakeNet):
    path = "run/systems/csn/final.pt"


def test_it_names_the_system_and_checkpoint_whose_embeddings_are_not_finite(
    tiny_dataset, tmp_path, monkeypatch
):
    broken = _NaNNet(lambda w: np.where(w[:, :1] > -2, np.nan, 0.0) * np.ones((1, 4)))  # (N, 4)
    systems = {"loud": _FakeNet(_input_dependent), "broken": broken}
    with pytest.raises(ValueError) as err:
        _score(tiny_dataset, tmp_path, monkeypatch, systems)
    for part in ("system broken", _NaNNet.path, "non-finite embedding (NaN/inf)", "pseudo"):
        assert part in str(err.value), err.value
