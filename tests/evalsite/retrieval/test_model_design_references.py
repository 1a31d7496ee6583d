"""A model-designed study never gives one participant two main trials of one instrument and
reference: the two would share one candidate, the model's choice (model_design.plan_trials pairs
a reference with its nearest neighbour every time), and a listener given both would learn which
candidate the model chose. The reviewer's case: 8 pieces, 10 trials per instrument (the design
form's default), so references recur."""

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


@pytest.mark.parametrize("strategy", ["nearest_random", "margin_stratified"])
def test_it_never_gives_a_participant_two_model_trials_of_one_instrument_and_reference(
    ada, strategy
):
    catalogue = make_catalogue(ada, n_pieces=8)
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
    shared = Counter(main.values_list("instrument", "reference_id"))
    assert max(shared.values()) > 1  # references recur: the case under test
    now = timezone.now()
    for seed in range(40):
        p = Participant.objects.create(study=study, seed=seed, step="instructions")
        if not design.assign(p, now):
            break
    else:
        pytest.fail("the study never filled")
    df = design.realised_design(study)
    given = df[~df["is_catch"] & ~df["is_practice"]]
    per_participant = given.groupby("participant")
    assert not given.duplicated(["participant", "instrument", "reference"]).any()
    assert (per_participant.size() == len(shared)).all()  # one trial of each pair, no fewer
    counts = fill_counts(study, now)
    assert all(counts[t] >= 2 for t in main.values_list("id", flat=True))  # every target met
    assert design.most_main_trials(study) == dict(Counter(i for i, _ in shared))
