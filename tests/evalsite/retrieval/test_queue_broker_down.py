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
    # and must not fail the save (the Model work page counts the clip as not embedded).
    from contextlib import nullcontext

    from evalsite.retrieval import signals
    from evalsite.stimuli.audio import clip_from_array
    from tests.evalsite.retrieval.helpers import SR, piece_audio

    settings.CSN_AUTO_EMBED = True
    with signals.batched() if batched else nullcontext() as queuing:
        clip = clip_from_array(piece_audio(9, 0), SR, catalogue, name="late", piece="LATE")
    clip.refresh_from_db()
    assert clip.status == clip.Status.READY
    assert f"could not queue the embedding of clips [{clip.pk}]" in caplog.text
    assert "127.0.0.1:1" in caplog.text
    if batched:  # what the block's caller reads to tell the researcher
        assert queuing.not_queued == [clip.pk] and "127.0.0.1:1" in queuing.error


def _upload(client, study, n: int):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.evalsite.studies.experimenter_personas import wav_bytes

    files = [
        SimpleUploadedFile(f"tone{i}.wav", wav_bytes(freq=220.0 + 110 * i), "audio/wav")
        for i in range(n)
    ]
    url = reverse("studies:clips", args=[study.pk])
    return html.unescape(client.post(url, {"files": files}, follow=True).content.decode())


@pytest.mark.django_db(transaction=True)
def test_an_upload_while_the_broker_is_down_says_its_clips_were_not_queued_and_what_to_do(
    client, ada, catalogue, broker_down, settings
):
    from evalsite.retrieval.embedder import checkpoint_id

    settings.CSN_AUTO_EMBED = True
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(ada)
    page = _upload(client, study, 3)
    assert "3 of 3 file(s) added." in page
    assert (
        "3 clip(s) added, but they could not be queued for embedding (Error 111 connecting to "
        "127.0.0.1:1" in page
    )
    assert "press Embed clips on the study's Model work page once the broker is back" in page
    # The Model work page counts them (and the catalogue's other clips, never embedded either)
    # and offers the button that embeds them.
    work = html.unescape(client.get(reverse("jobs:study", args=[study.pk])).content.decode())
    n = catalogue.clips.count()
    assert n == 6 + 3
    assert (
        f"{n} of {n} ready clips in the study's catalogue have no embedding with the current "
        f"checkpoint ({checkpoint_id()})" in work
    )
    assert f'action="{reverse("jobs:queue", args=[study.pk, "ingest"])}"' in work
    assert 'type="submit" disabled' not in work


@pytest.mark.django_db(transaction=True)
def test_an_upload_while_the_broker_is_down_counts_as_not_queued_only_the_clips_it_added(
    client, ada, catalogue, broker_down, settings
):
    # A duplicate is saved ready (its commit hook is registered) then deleted in the same
    # transaction: it was not added, and there is nothing to embed.
    settings.CSN_AUTO_EMBED = True
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    client.force_login(ada)
    assert "1 clip(s) added, but they could not be queued" in _upload(client, study, 1)
    again = _upload(client, study, 1)  # the same file: a duplicate only
    assert "1 file(s) already in the catalogue; not added again." in again
    assert "could not be queued" not in again
    mixed = _upload(client, study, 2)  # the same file again and a new one
    assert "1 file(s) already in the catalogue; not added again." in mixed
    assert "1 clip(s) added, but they could not be queued" in mixed
    assert catalogue.clips.count() == 6 + 2
