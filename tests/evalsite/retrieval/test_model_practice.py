"""The model design's practice trials give nothing away, as the random design's do
(evalsite/studies/random_design.py `_practice`): none uses a clip of an identical or attention
catch trial, nor the clip set of another trial."""

from __future__ import annotations

import pytest

from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.models import ModelVersion
from evalsite.studies.model_design import build_model_trials
from evalsite.studies.models import Study
from tests.evalsite.retrieval.helpers import add_attention_set
from tests.evalsite.studies.practice_sets import assert_practice_gives_nothing_away

pytestmark = pytest.mark.django_db


def _design(catalogue, ada, sets: int) -> Study:
    mixes = list(catalogue.clips.order_by("id"))
    for i in range(sets):
        add_attention_set(catalogue, mixes[i], "drums", f"g{i}")
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    build_model_trials(study, catalogue, ModelVersion.objects.get(), "nearest_random", 3, seed=1,
                       practice=2, catch_per_kind=1)  # fmt: skip
    study.refresh_from_db()
    return study


def test_it_keeps_model_designed_practice_off_the_attention_catch_trials_set(catalogue, ada):
    study = _design(catalogue, ada, sets=1)  # the one attention set goes to the catch trial
    assert study.trials.filter(catch_kind="attention").count() == 1
    assert_practice_gives_nothing_away(study)
    assert study.trials.filter(is_practice=True).count() == 2
    assert "drums: practice trials use an identical candidate" in study.design["practice_notes"][0]


def test_it_practises_on_the_attention_set_no_catch_trial_uses(catalogue, ada):
    study = _design(catalogue, ada, sets=2)
    assert_practice_gives_nothing_away(study)
    practice = study.trials.filter(is_practice=True)
    assert practice.count() == 2 and study.design["practice_notes"] == []
    assert all(t.candidate_a.meta.get("kind") == "attention" for t in practice)
