"""The debounced schedule with a real Redis broker and a real worker process: a burst of
requests queues one task on the "cpu" queue, the worker stores exactly one snapshot, and a
repeated run with unchanged answers stores nothing new."""

from __future__ import annotations

import pytest
from django.db import transaction

from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.tasks import schedule_report
from tests.integration.conftest import (  # noqa: F401
    _reset_pools,
    broker,
    int_checkpoint,
    wait_for,
    worker_factory,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_it_computes_one_snapshot_for_a_burst_of_requests(
    worker_factory,  # noqa: F811
    sim_study,
    monkeypatch,
):
    # Celery reads CELERY_BROKER_URL from the environment before its config: drop it so this
    # process publishes to the broker fixture's Redis database, which the worker consumes.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    _reset_pools()
    worker = worker_factory().start()
    with transaction.atomic():
        queued = [schedule_report(sim_study.pk, countdown=0) for _ in range(5)]
    assert queued == [True, False, False, False, False]
    snap = wait_for(lambda: ReportSnapshot.objects.filter(study=sim_study).first(), 60, worker,
                    "the worker's snapshot")  # fmt: skip
    assert snap.error == "" and {r["term"] for r in snap.tables["consent"]} >= {"drums", "guitar"}
    assert not ReportState.objects.get(study=sim_study).pending
    with transaction.atomic():
        assert schedule_report(sim_study.pk, countdown=0)
    wait_for(lambda: not ReportState.objects.get(study=sim_study).pending, 120, worker, "start")
    worker.stop()  # SIGTERM: the worker finishes its task first (warm shutdown)
    assert ReportSnapshot.objects.filter(study=sim_study).count() == 1  # unchanged answers
