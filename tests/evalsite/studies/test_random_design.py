"""The random draw's main trials (evalsite/studies/random_design.py): each instrument's references
are distinct pieces while the catalogue has enough, then each piece once before any twice (as the
model design's plan_trials), since a participant gets at most one main trial per instrument and
reference (design.select_trials) and each needless recurrence costs every participant a trial.
The draw stays reproducible from its seed."""

from __future__ import annotations

from collections import Counter

import pytest

from evalsite.studies import design
from evalsite.studies.models import Study
from evalsite.studies.random_design import build_random_trials
from tests.evalsite.studies.conftest import make_catalogue

pytestmark = pytest.mark.django_db


def _draw(owner, catalogue, per_instrument: int, seed: int) -> Study:
    study = Study.objects.create(owner=owner, name=f"draw {seed}", instruments=["drums", "guitar"])
    build_random_trials(study, catalogue, per_instrument, seed=seed, practice=0, catch_per_kind=1)
    return study


def _reference_pieces(study: Study, instrument: str) -> Counter:
    main = study.trials.filter(instrument=instrument, is_catch=False, is_practice=False)
    return Counter(t.reference.piece_key for t in main.select_related("reference"))


@pytest.mark.parametrize("seed", range(12))
def test_it_draws_distinct_references_per_instrument_while_the_pieces_allow(
    experimenter, listening_catalogue, seed
):
    # 6 pieces, 3 trials per instrument: drawn with replacement, ~44% of instruments recurred
    study = _draw(experimenter, listening_catalogue, 3, seed)
    for instrument in study.instruments:
        assert sorted(_reference_pieces(study, instrument).values()) == [1, 1, 1], instrument
    # both instruments' references together: each of the 6 pieces once (study-wide balance)
    both = _reference_pieces(study, "drums") + _reference_pieces(study, "guitar")
    assert sorted(both.values()) == [1] * 6
    assert design.most_main_trials(study) == {"drums": 3, "guitar": 3}


@pytest.mark.parametrize("seed", range(4))
def test_it_uses_each_piece_as_reference_once_before_any_twice(
    experimenter, listening_catalogue, seed
):
    study = _draw(experimenter, listening_catalogue, 8, seed)  # more trials than the 6 pieces
    for instrument in study.instruments:
        counts = _reference_pieces(study, instrument)
        assert len(counts) == 6 and sorted(counts.values()) == [1, 1, 1, 1, 2, 2], counts
    assert design.most_main_trials(study) == {"drums": 6, "guitar": 6}


def test_it_draws_the_same_trials_from_the_same_seed(experimenter, listening_catalogue):
    def clips(study: Study) -> list[tuple]:
        rows = study.trials.order_by("id").values_list(
            "instrument", "reference", "candidate_a", "candidate_b", "catch_kind", "expected"
        )
        return list(rows)

    first, again = (_draw(experimenter, listening_catalogue, 5, seed=7) for _ in range(2))
    other = _draw(experimenter, listening_catalogue, 5, seed=8)
    assert clips(first) == clips(again)
    assert clips(first) != clips(other)


def test_it_keeps_each_main_trial_on_three_pieces(experimenter):
    catalogue = make_catalogue(experimenter, pieces=3)
    study = _draw(experimenter, catalogue, 4, seed=3)
    main = study.trials.filter(is_catch=False, is_practice=False)
    assert main.count() == 8
    for t in main.select_related("reference", "candidate_a", "candidate_b"):
        pieces = {t.reference.piece_key, t.candidate_a.piece_key, t.candidate_b.piece_key}
        assert len(pieces) == 3
    for instrument in study.instruments:
        assert sorted(_reference_pieces(study, instrument).values()) == [1, 1, 2]
