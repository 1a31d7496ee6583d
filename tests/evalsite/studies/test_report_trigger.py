"""A finished participant queues a (debounced) report recomputation after the commit."""

from __future__ import annotations

import pytest
from celery.signals import before_task_publish

from evalsite.reports.models import ReportState
from evalsite.reports.tasks import recompute_report
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import finish, to_step

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_schedules_the_report_when_a_participant_finishes(client, listening_study, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    published = []

    def record(sender=None, body=None, **_):  # the message as it leaves for the real broker
        published.append((sender, list(body[0])))

    before_task_publish.connect(record, weak=False)
    try:
        p = to_step(client, enter(client, listening_study, pid="r1"), "practice")
        assert not ReportState.objects.filter(study=listening_study).exists()
        finish(client, p)
    finally:
        before_task_publish.disconnect(record)
    assert p.step == "done"
    state = ReportState.objects.get(study=listening_study)
    assert state.pending and state.requested_at is not None
    assert (recompute_report.name, [listening_study.pk]) in published
