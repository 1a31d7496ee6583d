"""Queueing a job while the broker is down: the job fails with the reason, the page says so.

Real publishing (not eager) to a Redis URL nothing listens on; kombu refuses it in under a second.
Transactional: the task is published after the job's commit, as in production.
"""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from evalsite.jobs.models import Job
from evalsite.studies.models import Study


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


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batched", [False, True])
def test_a_clip_saved_while_the_broker_is_down_is_kept_without_its_embedding_queued(
    ada, catalogue, broker_down, settings, caplog, batched
):
    # The auto-embed of a ready clip runs after its commit; a broker that refuses it is logged
    # and must not fail the save (an ingest job embeds the clip later).
    from contextlib import nullcontext

    from evalsite.retrieval import signals
    from evalsite.stimuli.audio import clip_from_array
    from tests.evalsite.retrieval.helpers import SR, piece_audio

    settings.CSN_AUTO_EMBED = True
    with signals.batched() if batched else nullcontext():
        clip = clip_from_array(piece_audio(9, 0), SR, catalogue, name="late", piece="LATE")
    clip.refresh_from_db()
    assert clip.status == clip.Status.READY
    assert "in on_commit()" in caplog.text and "127.0.0.1:1" in caplog.text
