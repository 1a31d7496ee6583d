"""Queueing work while the broker accepts connections but never answers (a hung or partitioned
Redis): the publish gives up after the settings' socket timeouts and its bounded retries, so the
request answers within seconds and the job fails with the reason, as for a broker that refuses.

Real publishing with the transport options and retry policy the settings give a Redis broker
(read by a fresh process with 1 s timeouts), to a real TCP listener that never replies. Before
the timeouts, the request blocked for ever in redis-py's read of kombu's first PING.
"""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from evalsite.jobs.models import Job
from evalsite.studies.models import Study


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
@pytest.mark.parametrize("action", ["ingest", "model-choices", "design"])
def test_it_fails_the_job_within_seconds_when_the_broker_never_answers(
    client, ada, catalogue, broker_stalled, action
):
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(ada)
    data = {"strategy": "nearest_random", "per_instrument": 2} if action == "design" else {}
    r = client.post(reverse("jobs:queue", args=[study.pk, action]), data, follow=True)
    assert r.status_code == 200  # it answered (before the timeout mark: it hung for ever)
    job = Job.objects.get(study=study)
    assert job.status == Job.Status.FAILED and job.finished_at is not None
    assert job.message.startswith("could not queue: ") and "Timeout" in job.message
    assert f"failed: {job.message}" in html.unescape(r.content.decode())
    assert broker_stalled.connections  # it did reach the listener: refused it was not


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_an_import_while_the_broker_never_answers_says_so_within_seconds(
    client, ada, broker_stalled, tiny_dataset, settings, tmp_path
):
    # One embedding task per clip: each batch would wait for the timeouts again, so the flush
    # gives up at the first batch that fails and reports every clip it did not queue.
    from evalsite.datasets.catalog import datasets
    from evalsite.stimuli.models import Clip

    settings.CSN_AUTO_EMBED, settings.CSN_EMBED_BATCH = True, 1
    settings.CSN_DATA_DIR, settings.CSN_DATASETS = tmp_path / "none", [tiny_dataset]
    (ref,) = datasets()
    study = Study.objects.create(owner=ada, name="import", instruments=["drums", "bass"])
    client.force_login(ada)
    url = reverse("studies:dataset_import", args=[study.pk])
    data = {"root": ref.slug, "split": "validation", "seconds": 2, "attention": "on"}
    page = html.unescape(client.post(url, data, follow=True).content.decode())
    study.refresh_from_db()
    made = Clip.objects.filter(catalogue=study.catalogue, status=Clip.Status.READY).count()
    assert made > 3  # batches enough that trying each would show
    # gave up at the first batch: a try of each batch would open at least one connection each
    assert 0 < len(broker_stalled.connections) < made, (len(broker_stalled.connections), made)
    assert f"{made} clip(s) added, but they could not be queued for embedding (" in page
    assert "Timeout reading from 127.0.0.1:" in page
    assert "press Embed clips on the study's Model work page once the broker is back" in page
