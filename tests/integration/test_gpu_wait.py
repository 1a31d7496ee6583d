"""A model job whose gpu step no worker takes (only `-Q cpu` workers run) is shown waiting for a
gpu worker, not running: the cpu steps (the fan-out, preparing the clips) do not start it. A
gpu worker started later takes the message, which waited in Redis, and the job runs and ends."""

from __future__ import annotations

import html
import time

import pytest
from django.urls import reverse

from evalsite.jobs.models import Job
from evalsite.studies.models import Study
from tests.evalsite.retrieval.helpers import make_catalogue
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def test_an_embedding_job_waits_for_a_gpu_worker_and_says_so(
    broker, worker_factory, client, django_user_model
):
    ada = django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")
    study = Study.objects.create(owner=ada, name="s", catalogue=make_catalogue(ada, n_pieces=3))
    client.force_login(ada)
    cpu = worker_factory(queues="cpu").start()
    client.post(reverse("jobs:queue", args=[study.pk, "ingest"]))
    job = Job.objects.get(study=study)
    # The cpu worker fans the job out and prepares its clips; the embedding waits in "gpu".
    wait_for(lambda: broker.llen("gpu") == 1, 60, cpu, "the embedding task in the gpu queue")
    time.sleep(2)  # anything the cpu worker would still do to the job
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == (Job.Status.QUEUED, 0, 3)
    url = reverse("jobs:study", args=[study.pk])
    page = html.unescape(client.get(url).content.decode())
    assert "queued (waiting for a gpu worker)" in page and ">running" not in page

    gpu = worker_factory(queues="gpu").start()

    def done():
        job.refresh_from_db()
        return job.is_finished

    wait_for(done, 120, gpu, "the embedding job")
    assert (job.status, job.done) == (Job.Status.DONE, 3), job.message
