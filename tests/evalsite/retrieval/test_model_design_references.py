"""A model-designed study never gives one participant two main trials of one instrument and
reference piece: the two would share one candidate, the model's choice (model_design.plan_trials
pairs a reference with its nearest neighbour of another piece every time), and a listener given
both would learn which candidate the model chose. The reviewer's case: 8 pieces, 10 trials per
instrument (the design form's default), so references recur; and again with two clips per
piece, where the recurring reference may be the piece's other clip (the rule is by piece)."""

from __future__ import annotations

from collections import Counter

import pytest
from django.utils import timezone

from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.models import ModelVersion
from evalsite.studies import design
from evalsite.studies.design_fill import fill_counts
from evalsite.studies.model_design import build_model_trials
from evalsite.studies.models import Participant, Study
from tests.evalsite.retrieval.helpers import make_catalogue

pytestmark = pytest.mark.django_db


def _pieces(study: Study) -> dict[int, tuple]:
    """Reference clip id -> its piece (Clip.piece_key)."""
    main = study.trials.filter(is_catch=False, is_practice=False).select_related("reference")
    return {t.reference_id: t.reference.piece_key for t in main}


@pytest.mark.parametrize("clips_per_piece", [1, 2])
@pytest.mark.parametrize("strategy", ["nearest_random", "margin_stratified"])
def test_it_never_gives_a_participant_two_model_trials_of_one_instrument_and_reference_piece(
    ada, strategy, clips_per_piece
):
    # Two clips of a piece (an upload naming one piece for its files, a re-import with another
    # clip length) share their nearest neighbour of another piece, the model's choice: trials on
    # them link as trials on one clip do.
    catalogue = make_catalogue(ada, n_pieces=8, clips_per_piece=clips_per_piece)
    study = Study.objects.create(
        owner=ada, name="m", catalogue=catalogue, instruments=["drums", "bass"],
        status=Study.Status.OPEN,
        settings={"target_answers_per_trial": 2, "practice_trials": 0,
                  "catch": {"identical": 0, "attention": 0, "repeat": 1}},
    )  # fmt: skip
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    build_model_trials(study, catalogue, ModelVersion.objects.get(), strategy, 10, seed=1,
                       practice=0, catch_per_kind=1)  # fmt: skip
    main = study.trials.filter(is_catch=False, is_practice=False)
    piece = _pieces(study)
    shared = Counter((i, piece[r]) for i, r in main.values_list("instrument", "reference_id"))
    assert max(shared.values()) > 1  # references recur: the case under test
    if clips_per_piece > 1:  # ... on another clip of the piece: the case a clip key misses
        assert len(set(main.values_list("instrument", "reference_id"))) > len(shared)
    now = timezone.now()
    for seed in range(40):
        p = Participant.objects.create(study=study, seed=seed, step="instructions")
        if not design.assign(p, now):
            break
    else:
        pytest.fail("the study never filled")
    df = design.realised_design(study)
    given = df[~df["is_catch"] & ~df["is_practice"]].copy()
    given["piece"] = given["reference"].map(piece)
    per_participant = given.groupby("participant")
    assert not given.duplicated(["participant", "instrument", "piece"]).any()
    # one trial of each pair at most; fewer in all where two instruments' trials on a reference
    # share a candidate (test_model_design_shared_candidate), as this untrained model's often do
    assert (per_participant.size() <= design.most_main_total(study)).all()
    assert design.most_main_total(study) <= len(shared)
    counts = fill_counts(study, now)
    assert all(counts[t] >= 2 for t in main.values_list("id", flat=True))  # every target met
    assert design.most_main_trials(study) == dict(Counter(i for i, _ in shared))
