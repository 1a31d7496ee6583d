"""Clips uploaded while the broker is down are not lost to retrieval: the upload says they were
not queued for embedding, the Model work page counts them, and once the broker is back its
Embed clips button has a real worker embed them, after which the page counts none."""

from __future__ import annotations

import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evalsite.jobs.models import Job
from evalsite.retrieval.models import Embedding
from evalsite.studies.models import Study
from tests.conftest import BROKER_DOWN, _publishing_to
from tests.evalsite.studies.experimenter_personas import wav_bytes
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def _page(client, url: str) -> str:
    return html.unescape(client.get(url).content.decode())


def test_clips_uploaded_while_the_broker_was_down_are_embedded_from_the_model_work_page(
    broker, worker_factory, client, django_user_model, settings, monkeypatch
):
    settings.CSN_AUTO_EMBED = True
    ada = django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")
    study = Study.objects.create(owner=ada, name="s", instruments=["drums"])
    client.force_login(ada)
    files = [
        SimpleUploadedFile(f"tone{i}.wav", wav_bytes(freq=220.0 + 110 * i), "audio/wav")
        for i in range(3)
    ]
    with _publishing_to(monkeypatch, BROKER_DOWN, {}):  # the broker is down for the upload
        r = client.post(reverse("studies:clips", args=[study.pk]), {"files": files}, follow=True)
    assert "could not be queued for embedding" in html.unescape(r.content.decode())
    assert broker.llen("gpu") == 0  # nothing reached Redis
    work_url = reverse("jobs:study", args=[study.pk])
    assert "3 of 3 ready clips in the study's catalogue have no embedding" in _page(
        client, work_url
    )

    worker = worker_factory().start()  # the broker is back (Redis), with a worker
    client.post(reverse("jobs:queue", args=[study.pk, "ingest"]))
    job = Job.objects.get(study=study)

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, 120, worker, "the ingest job")
    assert (job.status, job.done, job.total) == (Job.Status.DONE, 3, 3), job.message
    study.refresh_from_db()
    assert Embedding.objects.filter(clip__catalogue=study.catalogue).count() == 3
    assert 'id="unembedded"' not in _page(client, work_url)
