"""While the broker accepts connections and never answers, a participant's request that queues the
report pays the broker's timeouts at most once per REPORT_QUEUE_BACKOFF_S: after a publish that
failed, the next requests store their answers and return without publishing, the report page
keeps saying the report may be out of date, and the first request after the window tries again.

Real publishing with the settings' Redis options (1 s timeouts) to a real TCP listener that never
replies (tests/conftest.py, StalledBroker): whether a request published is read from the
connections the listener accepted and from the failure the publish recorded, not from timings.
"""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.tasks import QUEUING_FAILED, recompute_report
from evalsite.studies.models import Answer, Participant
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import finish, leave, to_step

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _finish(study, pid: str) -> Participant:
    """A participant (its own browser) answers every trial; the last answer queues the report."""
    client = Client()
    p = finish(client, to_step(client, enter(client, study, pid=pid), "practice"))
    assert p.step == "done"
    return p


def _stored(p: Participant) -> bool:
    return Answer.objects.filter(participant=p).count() == p.slots.count() > 0


def _window_passes(study, settings) -> None:
    """As if REPORT_QUEUE_BACKOFF_S had passed since the failed publish."""
    state = ReportState.objects.get(study=study)
    state.failed_at -= timedelta(seconds=settings.REPORT_QUEUE_BACKOFF_S + 1)
    state.save(update_fields=["failed_at"])


def test_it_tries_a_stalled_broker_once_per_window_and_keeps_every_answer(
    experimenter, listening_catalogue, broker_stalled, settings
):
    settings.REPORT_QUEUE_BACKOFF_S = 60
    listening_study = make_study(experimenter, listening_catalogue, target_answers_per_trial=3)
    first = _finish(listening_study, "b1")  # pays the timeouts
    state = ReportState.objects.get(study=listening_study)
    assert state.failure == QUEUING_FAILED and "Timeout" in state.failure_reason
    assert not state.pending  # so that a request after the window queues it
    failed_at, tried = state.failed_at, len(broker_stalled.connections)
    assert tried  # it reached the listener: refused it was not

    second = _finish(listening_study, "b2")  # inside the window: no publish
    state.refresh_from_db()
    assert len(broker_stalled.connections) == tried
    assert (state.failure, state.failed_at, state.pending) == (QUEUING_FAILED, failed_at, False)
    assert _stored(first) and _stored(second)

    _window_passes(listening_study, settings)
    third = _finish(listening_study, "b3")  # the first request after it tries again
    state.refresh_from_db()
    assert len(broker_stalled.connections) > tried
    assert state.failure == QUEUING_FAILED and state.failed_at > failed_at
    assert _stored(third)

    # The recomputation, once one runs, reads every answer, those of the skipped requests too.
    snap = ReportSnapshot.objects.get(pk=recompute_report(listening_study.pk))
    assert snap.meta["n_participants"] == 3


def test_a_withdrawal_inside_the_window_does_not_publish(listening_study, broker_stalled, settings):
    settings.REPORT_QUEUE_BACKOFF_S = 60
    _finish(listening_study, "w1")
    tried = len(broker_stalled.connections)
    client = Client()
    p = to_step(client, enter(client, listening_study, pid="w2"), "practice")
    leave(client, p)  # deletes its answers (the default): the report is queued again
    p.refresh_from_db()
    assert p.step == "withdrawn"
    assert len(broker_stalled.connections) == tried


def test_the_recompute_button_tries_at_once_inside_the_window(
    listening_study, experimenter, broker_stalled, settings
):
    # The experimenter asked for it and is told the outcome: no window for the button.
    settings.REPORT_QUEUE_BACKOFF_S = 60
    _finish(listening_study, "r1")
    failed_at = ReportState.objects.get(study=listening_study).failed_at
    tried = len(broker_stalled.connections)
    client = Client()
    client.force_login(experimenter)
    r = client.post(reverse("reports:recompute", args=[listening_study.pk]), follow=True)
    page = html.unescape(r.content.decode())
    assert len(broker_stalled.connections) > tried
    assert "Could not queue the recomputation: Timeout" in page
    assert ReportState.objects.get(study=listening_study).failed_at > failed_at
