"""Queueing a job while the broker is down: the job fails with the reason, the page says so.

Real publishing (not eager) to a Redis URL nothing listens on; kombu refuses it in under a second.
Transactional: the task is published after the job's commit, as in production.
"""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from evalsite.celery import app
from evalsite.jobs.models import Job
from evalsite.studies.models import Study

DOWN = "redis://127.0.0.1:1/0"  # port 1: connection refused at once


@pytest.fixture
def broker_down(monkeypatch):
    # Celery prefers the CELERY_BROKER_URL environment variable over app.conf.broker_url.
    monkeypatch.setenv("CELERY_BROKER_URL", DOWN)
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.broker_transport_options = DOWN, {}
    app.conf.task_always_eager = False
    _reset_pools()
    yield
    _reset_pools()
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved


def _reset_pools() -> None:
    """The next publish connects to the current broker_url, not a pooled connection."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["ingest", "model-choices", "design"])
def test_it_fails_the_job_and_says_why_when_the_broker_is_down(
    client, ada, catalogue, broker_down, action
):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(ada)
    data = {"strategy": "nearest_random", "per_instrument": 2} if action == "design" else {}
    r = client.post(reverse("jobs:queue", args=[study.pk, action]), data, follow=True)
    assert r.status_code == 200
    job = Job.objects.get(study=study)
    assert job.status == Job.Status.FAILED and job.finished_at is not None
    assert job.message.startswith("could not queue: ") and "127.0.0.1:1" in job.message
    assert f"failed: {job.message}" in html.unescape(r.content.decode())
