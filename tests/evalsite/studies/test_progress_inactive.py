"""Who the progress page counts as inactive ("their unanswered trials are back in the pool"): a
participant whose slots' reservations have run out, whatever the study's reservation timeout is
now, so the page agrees with the fill that assignment counts (`design_fill.fill_counts`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from evalsite.studies import design_fill, progress
from evalsite.studies.models import Answer, Participant, Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.participant_steps import answer_current, post, to_step

pytestmark = pytest.mark.django_db


def _at_a_trial(study: Study, timeout_s: int) -> Participant:
    """A participant who answered the practice trial and reads the next one, given slots while
    the reservation timeout was `timeout_s`."""
    study.status = Study.Status.OPEN
    study.settings = study.settings | {
        "screening": False, "min_listen_share": 0, "reservation_timeout_s": timeout_s,
    }  # fmt: skip
    study.save()
    client = Client()
    p = enter(client, study, pid="reading")
    to_step(client, p, "instructions")
    post(client, p, "instructions")
    p.refresh_from_db()  # at the practice: the answer names the step it was given at
    answer_current(client, p, expected=True)
    assert p.answers.count() == 1
    return p


def _set_timeout(study: Study, timeout_s: int) -> None:
    study.settings = study.settings | {"reservation_timeout_s": timeout_s}
    study.save()


def _reserved(study: Study, at) -> int:
    """Unanswered slots the fill counts at `at`: the trials not back in the pool."""
    return sum(design_fill.fill_counts(study, at).values()) - Answer.objects.count()


def test_lowering_the_timeout_leaves_a_participant_active_while_their_trials_are_reserved(study):
    p = _at_a_trial(study, timeout_s=1800)
    _set_timeout(study, 120)  # while they read the trial
    three_minutes = timezone.now() + timedelta(minutes=3)
    assert _reserved(study, three_minutes) == p.slots.count() - 1
    assert progress.participant_counts(study, now=three_minutes)["inactive"] == 0
    expired = max(p.slots.values_list("reserved_until", flat=True)) + timedelta(seconds=1)
    assert _reserved(study, expired) == 0
    assert progress.participant_counts(study, now=expired)["inactive"] == 1


def test_raising_the_timeout_counts_a_participant_inactive_once_their_trials_are_free(study):
    p = _at_a_trial(study, timeout_s=120)
    _set_timeout(study, 3600)
    five_minutes = timezone.now() + timedelta(minutes=5)
    assert p.last_seen_at > five_minutes - timedelta(seconds=3600)
    assert _reserved(study, five_minutes) == 0
    counts = progress.participant_counts(study, now=five_minutes)
    assert counts["inactive"] == counts["in_progress"] == 1


def test_a_participant_before_their_trials_is_inactive_once_unseen_for_the_timeout(study):
    p = Participant.objects.create(study=study, seed=1, step="calibration")
    timeout = timedelta(seconds=int(study.setting("reservation_timeout_s")))
    assert progress.participant_counts(study, now=p.last_seen_at + timeout / 2)["inactive"] == 0
    later = p.last_seen_at + timeout + timedelta(seconds=1)
    assert progress.participant_counts(study, now=later)["inactive"] == 1
