"""A model design uses each piece as a reference once per instrument, and pairs it with its
nearest neighbour in that instrument's subspace: where two subspaces agree, the two trials of
one reference share the model's choice and differ in the other candidate. One participant
given both could tell which candidate the model chose (the one that recurs), so the design
never gives one participant two main trials on one reference piece that share a candidate piece,
whatever their instruments (review diffp, finding 1)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from django.utils import timezone

from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.models import ModelVersion
from evalsite.studies import design, design_fill
from evalsite.studies.model_design import assign_model_choices, build_model_trials
from evalsite.studies.models import Answer, Participant, Study
from tests.evalsite.retrieval.helpers import make_catalogue

pytestmark = pytest.mark.django_db


def _model_study(owner, instruments: list[str]) -> Study:
    """8 pieces, 8 main trials per instrument from the model (`nearest_random`), each wanted
    twice; no practice and no checks."""
    catalogue = make_catalogue(owner, n_pieces=8)
    study = Study.objects.create(
        owner=owner, name="model", catalogue=catalogue, instruments=instruments,
        status=Study.Status.OPEN,
        settings={"target_answers_per_trial": 2, "practice_trials": 0,
                  "catch": {"identical": 0, "attention": 0, "repeat": 0}},
    )  # fmt: skip
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    build_model_trials(study, catalogue, ModelVersion.objects.get(), "nearest_random", 8, seed=1,
                       practice=0, catch_per_kind=0)  # fmt: skip
    return study


def _finish(p: Participant) -> None:
    for s in p.slots.all():
        Answer.objects.create(participant=p, trial=s.trial, trial_index=s.index, chosen="a",
                              chosen_position="A", displayed_first=s.displayed_first)  # fmt: skip
    Participant.objects.filter(pk=p.pk).update(step=Participant.Step.DONE)


@pytest.mark.parametrize("instruments", [["drums", "bass"], ["drums", "bass", "guitar"]])
def test_it_never_gives_one_participant_two_trials_of_a_reference_that_share_a_candidate(
    ada, instruments
):
    study = _model_study(ada, instruments)
    main = list(study.trials.filter(is_catch=False, is_practice=False).select_related(
        "reference", "candidate_a", "candidate_b"))  # fmt: skip
    by_ref = defaultdict(list)
    for t in main:
        by_ref[t.reference.piece_key].append(t)

    def shared(a, b) -> bool:
        pieces = lambda t: {t.candidate_a.piece_key, t.candidate_b.piece_key}  # noqa: E731
        return bool(pieces(a) & pieces(b))

    linked = [(a, b) for ts in by_ref.values() for i, a in enumerate(ts) for b in ts[i + 1 :]
              if shared(a, b)]  # fmt: skip
    assert any(a.instrument != b.instrument for a, b in linked)  # the case under test
    now, seen, total = timezone.now(), 0, 0
    for seed in range(80):
        p = Participant.objects.create(study=study, seed=seed, step="instructions")
        if not design.assign(p, now):
            break
        got = {s.trial_id for s in p.slots.all()}
        assert not [(a.pk, b.pk) for a, b in linked if a.pk in got and b.pk in got]
        assert len({(t.instrument, t.reference.piece_key) for t in main if t.pk in got}) == len(
            got
        )  # the rule per instrument holds as before
        seen, total = seen + 1, total + len(got)
        _finish(p)
    assert 2 < seen < 80  # the study filled
    assert total < seen * len(main)  # participants got fewer than all the trials
    counts = design_fill.fill_counts(study, now)
    assert all(counts[t.pk] >= 2 for t in main)  # every main trial reached its target


def test_it_marks_as_the_models_only_the_main_trials_it_designs(ada):
    # The shared-candidate rule reads Trial.model_designed, not model_choice: the model-choices
    # job sets model_choice on trials of any design, whose candidates the model did not choose.
    study = _model_study(ada, ["drums", "bass"])
    main = study.trials.filter(is_catch=False, is_practice=False)
    assert main.exists() and not main.filter(model_designed=False).exists()
    hand = Study.objects.create(owner=ada, name="hand", catalogue=study.catalogue,
                                instruments=["drums"])  # fmt: skip
    t = main.first()
    made = hand.trials.create(instrument="drums", reference=t.reference,
                              candidate_a=t.candidate_a, candidate_b=t.candidate_b)  # fmt: skip
    assigned = assign_model_choices([made], ModelVersion.objects.get())
    made.refresh_from_db()
    assert assigned.set == 1 and made.model_choice in {"a", "b"}
    assert not made.model_designed
