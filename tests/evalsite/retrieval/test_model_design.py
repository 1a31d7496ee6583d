"""The model-design plan and the model's choice (plain functions on arrays)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from evalsite.studies.model_design import STRATEGIES, DesignError, choose, plan_trials


def catalogue_arrays(n_pieces=12, per_piece=2, d=8, seed=0):
    rng = np.random.default_rng(seed)
    pieces = [f"P{p}" for p in range(n_pieces) for _ in range(per_piece)]
    full = rng.standard_normal((len(pieces), 2 * d)).astype(np.float32)  # two subspaces
    return pieces, full, {"drums": full[:, :d], "bass": full[:, d:]}


def test_it_chooses_the_closer_candidate_with_a_nonnegative_margin():
    ref, a, b = np.zeros(2), np.array([3.0, 0.0]), np.array([0.0, 1.0])
    assert choose(ref, a, b) == ("b", 2.0)
    assert choose(ref, b, a) == ("a", 2.0)
    assert choose(ref, a, a) == ("a", 0.0)  # ties go to "a"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_it_never_takes_a_candidate_from_the_references_piece(strategy):
    pieces, full, subs = catalogue_arrays()
    plan, _ = plan_trials(pieces, subs, full, strategy, per_instrument=6, seed=4)
    assert plan
    for p in plan:
        trio = {pieces[p.reference], pieces[p.nearest], pieces[p.other]}
        assert len(trio) == 3, p


def test_it_pairs_the_reference_with_its_true_nearest_neighbour_in_the_subspace():
    pieces, full, subs = catalogue_arrays()
    plan, _ = plan_trials(pieces, subs, full, "nearest_random", per_instrument=8, seed=1)
    for p in plan:
        x = subs[p.instrument]
        d = np.linalg.norm(x - x[p.reference], axis=1)
        d[[i for i, q in enumerate(pieces) if q == pieces[p.reference]]] = np.inf
        assert p.nearest == int(np.argmin(d))
        assert p.margin == pytest.approx(d[p.other] - d[p.nearest], rel=1e-5)
        assert p.margin >= 0


def test_it_is_reproducible_from_the_seed_and_differs_with_another():
    pieces, full, subs = catalogue_arrays()
    first = plan_trials(pieces, subs, full, "margin_stratified", 9, seed=7)
    again = plan_trials(pieces, subs, full, "margin_stratified", 9, seed=7)
    other = plan_trials(pieces, subs, full, "margin_stratified", 9, seed=8)
    assert first == again
    assert first[0] != other[0]


def test_it_uses_pieces_in_a_balanced_way():
    pieces, full, subs = catalogue_arrays(n_pieces=12, per_piece=1)
    plan, info = plan_trials(pieces, subs, full, "nearest_random", 8, seed=0)
    as_reference = Counter(pieces[p.reference] for p in plan)
    assert max(as_reference.values()) - min(as_reference.values()) <= 1
    assert len(as_reference) == 12  # 16 references over 12 pieces: every piece once or twice
    assert info["piece_usage"]["max"] - info["piece_usage"]["min"] <= 4


def test_it_puts_easy_trials_above_borderline_ones_by_margin():
    pieces, full, subs = catalogue_arrays(n_pieces=20)
    easy, info = plan_trials(pieces, subs, full, "margin_easy", 10, seed=2)
    border, _ = plan_trials(pieces, subs, full, "margin_borderline", 10, seed=2)
    lo, hi = info["thresholds"]["drums"]
    assert all(p.margin >= hi for p in easy if p.instrument == "drums")
    assert all(p.margin <= lo for p in border if p.instrument == "drums")


def test_it_makes_confidently_wrong_trials_the_whole_embedding_contradicts():
    pieces, full, subs = catalogue_arrays(n_pieces=20)
    plan, _ = plan_trials(pieces, subs, full, "margin_confidently_wrong", 5, seed=3)
    assert plan
    for p in plan:
        whole = np.linalg.norm(full - full[p.reference], axis=1)
        assert whole[p.other] < whole[p.nearest]


def test_it_takes_the_farthest_candidate_for_the_farthest_strategy():
    pieces, full, subs = catalogue_arrays()
    plan, _ = plan_trials(pieces, subs, full, "nearest_farthest", 4, seed=0)
    for p in plan:
        x = subs[p.instrument]
        d = np.linalg.norm(x - x[p.reference], axis=1)
        allowed = [i for i, q in enumerate(pieces)
                   if q not in (pieces[p.reference], pieces[p.nearest])]  # fmt: skip
        assert d[p.other] == pytest.approx(max(d[allowed]))


def test_it_refuses_an_unknown_strategy_and_too_few_pieces():
    pieces, full, subs = catalogue_arrays()
    with pytest.raises(DesignError, match="strategy 'nearest'"):
        plan_trials(pieces, subs, full, "nearest", 3, seed=0)
    with pytest.raises(DesignError, match="expected at least 3"):
        plan_trials(["A", "B"], {"drums": full[:2]}, full[:2], "nearest_random", 3, seed=0)


def test_it_refuses_fewer_than_one_trial_per_instrument():
    pieces, full, subs = catalogue_arrays()
    for n in (0, -3):
        with pytest.raises(DesignError, match=f"per_instrument={n}: expected an integer >= 1"):
            plan_trials(pieces, subs, full, "nearest_random", n, seed=0)


@pytest.mark.parametrize("per_instrument", [5, 8, 10])
@pytest.mark.parametrize("strategy", ["nearest_random", "nearest_farthest"])
def test_it_repeats_a_reference_within_an_instrument_only_once_every_piece_served(
    strategy, per_instrument
):
    # Two trials of one instrument and reference share the model's choice (its nearest
    # neighbour) and differ only in the other candidate: a listener given both learns which
    # candidate the model chose. The assignment keeps such trials apart (design.select_trials),
    # so every reference that recurs costs each participant a trial of the instrument.
    pieces, full, subs = catalogue_arrays(n_pieces=8, per_piece=1)
    plan, _ = plan_trials(pieces, subs, full, strategy, per_instrument, seed=1)
    for instrument in subs:
        refs = Counter(p.reference for p in plan if p.instrument == instrument)
        assert sum(refs.values()) == per_instrument
        assert len(refs) == min(per_instrument, 8), (instrument, refs)
        assert max(refs.values()) - min(refs.values()) <= 1, (instrument, refs)
