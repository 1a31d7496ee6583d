"""The null simulation of the benchmark's statistics (python -m csn_model.bench_null): a smoke
test; its figures (experiments/README.md, Statistics) come from the command, not the suite."""

from __future__ import annotations

import numpy as np
import pytest

from csn_model.bench_null import draw_roles, main


def test_it_draws_the_pieces_of_a_pseudo_triplet_as_the_triplet_sampler_does():
    # TripletSampler: A any piece, D and B any other than A, C any other than A and B.
    roles = draw_roles(np.random.default_rng(0), 6, 60_000)
    a, b, c, d = roles.T
    assert (a != b).all() and (a != c).all() and (b != c).all() and (a != d).all()
    assert np.mean(d == b) == pytest.approx(1 / 5, abs=0.01)  # D = B: the original piece B
    assert np.mean(d == c) == pytest.approx(1 / 5, abs=0.01)
    for role in roles.T:  # each role uniform over the pieces: 10,000 expected per piece
        assert np.abs(np.bincount(role, minlength=6) - 10_000).max() < 500


def test_it_prints_a_level_and_coverage_per_ratio(capsys):
    args = ["--pieces", "8", "--per-condition", "6", "--datasets", "4", "--n-boot", "50"]
    assert main([*args, "--ratios", "0", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 null benchmarks: 8 pieces, 6 triplets x 5 conditions")
    assert lines[1].split() == ["ratio", "anchor", "multiway", "crossed", "boot_cov", "mw_cov",
                                "cr_cov"]  # fmt: skip
    rows = [[float(v) for v in line.split()] for line in lines[2:]]
    assert [r[0] for r in rows] == [0.0, 1.0]
    assert all(0.0 <= v <= 1.0 for r in rows for v in r[1:])


def test_it_refuses_too_few_pieces():
    with pytest.raises(SystemExit):
        main(["--pieces", "2"])
