"""manage.py mark_full_for_now marks, as migration studies 0018 did, the participants a process
still on the code before `flow.turn_away` turned away at "Start" after 0018 ran (between
`migrate` and its restart), so that they too are taken back once trials are free
(findings_rupg2.md, 2). Running it again changes nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from evalsite.studies import flow
from evalsite.studies.models import Participant
from tests.evalsite.studies.conftest import make_study

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = io.StringIO()
    call_command("mark_full_for_now", stdout=out)
    return out.getvalue()


def test_it_marks_a_participant_the_earlier_code_turned_away_at_start_after_migrate(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    now = timezone.now()  # after every migration was applied: the earlier code, still running
    late = Participant.objects.create(study=study, seed=1, step="full", finished_at=now,
                                      consented_at=now, state={"feedback": None})  # fmt: skip
    assert _run() == "Marked 1 participant as full for now.\n"
    late.refresh_from_db()
    assert late.state == {"feedback": None, flow.FULL_FOR_NOW: "instructions"}
    flow.resume(late, "Mozilla/5.0")  # trials are free: taken back
    late.refresh_from_db()
    assert late.step == Participant.Step.INSTRUCTIONS


def test_running_it_again_marks_no_one(experimenter, listening_catalogue):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    now = timezone.now()
    Participant.objects.create(study=study, seed=1, step="full", finished_at=now, consented_at=now)
    _run()
    assert _run() == "Marked 0 participants as full for now.\n"
