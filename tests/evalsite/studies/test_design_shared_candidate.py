"""The piece rule across instruments: two main trials on one reference piece that share a
candidate piece (whatever their instruments) never go to one participant, as the candidate that
recurs would tell which one the model chose (review diffp, finding 1). Trials on one reference
piece that share no candidate still go together, and every trial still reaches its target."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.utils import timezone

from evalsite.stimuli.models import Clip
from evalsite.studies import design, design_fill, design_pieces
from evalsite.studies.experimenter import main_shortfalls
from evalsite.studies.models import Answer, Participant, Study, Trial
from tests.evalsite.studies.conftest import participant

pytestmark = pytest.mark.django_db
NO_CATCH = {"identical": 0, "attention": 0, "repeat": 0}


def linked_study(
    owner, catalogue, model: bool = True, **settings
) -> tuple[Study, dict[str, Trial]]:
    """Drums, guitar and bass, four main trials, three on mix 0 (m0). m5 is renamed a clip of
    m2's piece, so `guitar` shares a candidate piece (not a clip) with `drums`, and a candidate
    clip (m3) with `bass`; `drums` and `bass` share none. `other` has another reference. With
    `model`, their candidates are the model design's (Trial.model_designed)."""
    m = list(catalogue.clips.filter(meta={}).order_by("id"))
    Clip.objects.filter(pk=m[5].pk).update(piece=m[2].piece)
    study = Study.objects.create(
        owner=owner, name="Linked", instruments=["drums", "guitar", "bass"], catalogue=catalogue,
        status=Study.Status.OPEN,
        settings={"target_answers_per_trial": 2, "practice_trials": 0, "catch": NO_CATCH}
        | settings,
    )  # fmt: skip
    plan = {"drums": ("drums", 0, 1, 2), "guitar": ("guitar", 0, 3, 5),
            "bass": ("bass", 0, 3, 4), "other": ("drums", 1, 2, 3)}  # fmt: skip
    trials = {
        name: Trial.objects.create(study=study, instrument=i, reference=m[r], candidate_a=m[a],
                                   candidate_b=m[b], model_choice="a",
                                   model_designed=model)
        for name, (i, r, a, b) in plan.items()
    }  # fmt: skip
    return study, trials


def finish(p: Participant) -> None:
    for s in p.slots.all():
        Answer.objects.create(participant=p, trial=s.trial, trial_index=s.index, chosen="a",
                              chosen_position="A", displayed_first=s.displayed_first)  # fmt: skip
    Participant.objects.filter(pk=p.pk).update(step=Participant.Step.DONE)


def test_it_never_gives_one_participant_two_trials_of_a_reference_sharing_a_candidate_piece(
    experimenter, listening_catalogue
):
    study, t = linked_study(experimenter, listening_catalogue)
    linked = [{t["drums"].pk, t["guitar"].pk}, {t["guitar"].pk, t["bass"].pk}]
    now, lists = timezone.now(), []
    for seed in range(20):
        p = participant(study, seed)
        if not design.assign(p, now):
            break
        got = set(p.slots.values_list("trial_id", flat=True))
        assert not [pair for pair in linked if pair <= got]
        lists.append(got)
        finish(p)
    assert 2 < len(lists) < 20
    # drums and bass share the reference piece but no candidate: the rule keeps them together
    assert any({t["drums"].pk, t["bass"].pk} <= got for got in lists)
    counts = design_fill.fill_counts(study, now)
    assert all(counts[trial.pk] >= 2 for trial in t.values())  # every trial reached its target


def test_it_counts_the_most_main_trials_per_instrument_and_in_all(
    experimenter, listening_catalogue
):
    study, _ = linked_study(experimenter, listening_catalogue)
    # per instrument: one per reference piece, as before (alone, no two share a reference)
    assert design.most_main_trials(study) == {"drums": 2, "guitar": 1, "bass": 1}
    # in all: on m0, drums and bass (guitar shares a candidate piece with each), plus `other`
    assert design.most_main_total(study) == 3


def test_it_says_that_trials_sharing_a_candidate_go_to_different_participants(
    experimenter, listening_catalogue
):
    study, _ = linked_study(experimenter, listening_catalogue)
    (line,) = main_shortfalls(study)
    assert line.startswith(
        "Each participant gets at most 3 main trials (per instrument at most drums 2, guitar 1, "
        "bass 1), not all 4 of the study's: "
    )
    assert "share a candidate piece" in line
    assert "of one instrument whose references are of one piece" not in line  # not this rule


def test_it_gives_a_participant_of_a_fresh_study_the_most_main_trials_it_can_get(
    experimenter, listening_catalogue
):
    """On m0, guitar shares a candidate piece with drums and with bass: a participant given
    guitar first could get neither, 2 main trials in all where drums, bass and `other` give 3
    (`most_main_total`). A fresh study's fill ties every trial, so whichever the seed draws
    first, the selection reaches the most (docs/site.md, Design rules)."""
    study, t = linked_study(experimenter, listening_catalogue)
    most = design.most_main_total(study)
    got = [design.select_trials(study, seed, Counter()) for seed in range(40)]
    assert [len(chosen or []) for chosen in got] == [most] * 40
    # the rule holds: guitar never goes with drums or bass
    assert all(t["guitar"].pk not in {c.id for c in chosen or []} for chosen in got)


def test_it_reaches_the_most_main_trials_on_seeded_random_fresh_studies(
    experimenter, listening_catalogue
):
    """A seeded search over small studies (3 instruments, 2 reference clips, random candidates
    and flags) finds none where a fresh study's participant gets fewer than `most_main_total`
    main trials, or two that the rules keep apart; with fills apart, the least filled trial is
    still taken."""
    m = list(listening_catalogue.clips.filter(meta={}).order_by("id"))
    draw = random.Random(11)
    for k in range(25):
        study = Study.objects.create(
            owner=experimenter, name=f"Random {k}", instruments=["drums", "guitar", "bass"],
            catalogue=listening_catalogue, status=Study.Status.OPEN,
            settings={"target_answers_per_trial": 2, "practice_trials": 0, "catch": NO_CATCH},
        )  # fmt: skip
        for _ in range(draw.randint(3, 7)):
            ref, a, b = m[draw.randrange(2)], *draw.sample(m[2:7], 2)
            Trial.objects.create(study=study, instrument=draw.choice(study.instruments),
                                 reference=ref, candidate_a=a, candidate_b=b,
                                 model_designed=draw.random() < 0.7)  # fmt: skip
        most = design.most_main_total(study)
        for seed in range(8):
            chosen = design.select_trials(study, seed, Counter()) or []
            assert len(chosen) == most, (k, seed)
            for i, t in enumerate(chosen):
                assert not design_pieces.blocked(t, set().union(
                    *(design_pieces.trial_keys(o) for o in chosen[:i])))  # fmt: skip
        # with fills apart, the least filled is still taken (every trial reaches its target)
        fill = Counter({t.pk: draw.randint(0, 1) for t in study.trials.all()})
        chosen = design.select_trials(study, k, fill) or []
        assert min(fill[t.id] for t in chosen) == min(fill.values())
