"""Jobs whose task is retried (eager: the retries run in the test process, as in
test_task_failures.py): a retry finishes what the first try left and says what the job did, never
less (a clip left out unsaid, "nothing designed" for its own trials) and never twice (batches
queued again)."""

from __future__ import annotations

import os
import sys

import pytest
from django.db import OperationalError

from evalsite.jobs import progress
from evalsite.jobs.models import Job
from evalsite.retrieval import ingest
from evalsite.stimuli import tasks as stimuli_tasks
from evalsite.stimuli.models import Clip
from evalsite.stimuli.tasks import queue_ingest
from evalsite.studies import tasks as study_tasks
from evalsite.studies.models import Study
from evalsite.studies.tasks import queue_design

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_propagation(eager):
    eager.conf.task_eager_propagates = False  # a worker's view: on_failure runs, nothing raises
    return eager


def _design(study, catalogue, capture) -> Job:
    with capture(execute=True):
        job = queue_design(study, catalogue, "nearest_random", 2, seed=3, catch_per_kind=0)
    job.refresh_from_db()
    return job


def test_it_names_the_unreadable_clip_a_design_could_not_embed_once_retries_are_spent(
    catalogue, no_propagation, ada, monkeypatch, settings, django_capture_on_commit_callbacks
):
    tries = []
    real = ingest.embed_clips
    monkeypatch.setattr(ingest, "embed_clips", lambda *a, **k: tries.append(1) or real(*a, **k))
    clip = catalogue.clips.order_by("id").first()
    os.rename(clip.file.path, clip.file.path + ".away")
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    job = _design(study, catalogue, django_capture_on_commit_callbacks)
    clip.refresh_from_db()
    assert len(tries) == study_tasks.design_from_model.max_retries + 1  # retried as embedding is
    assert job.status == Job.Status.FAILED and not study.trials.exists()
    assert f"{clip.name}: audio file missing or unreadable" in job.message
    assert str(settings.MEDIA_ROOT) not in job.message and "/tmp" not in job.message
    assert clip.status == Clip.Status.READY and clip.error.startswith(f"{clip.name}: audio file")
    assert (job.done, job.failed) == (5, 1)
    assert job.errors == [{"clip": clip.pk, "name": clip.name, "error": clip.error}]

    os.rename(clip.file.path + ".away", clip.file.path)  # the file is back: the design works
    again = _design(study, catalogue, django_capture_on_commit_callbacks)
    clip.refresh_from_db()
    assert again.status == Job.Status.DONE, again.message
    assert (again.done, again.failed, clip.error) == (6, 0, "")


def test_it_designs_once_the_file_of_a_clip_is_readable_again_on_a_retry(
    catalogue, no_propagation, ada, monkeypatch, django_capture_on_commit_callbacks
):
    clip = catalogue.clips.order_by("id").first()
    os.rename(clip.file.path, clip.file.path + ".away")
    real, tries = ingest.embed_clips, []

    def file_back_on_retry(*args, **kwargs):
        tries.append(1)
        if len(tries) == 2:  # a network file system recovered
            os.rename(clip.file.path + ".away", clip.file.path)
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "embed_clips", file_back_on_retry)
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    job = _design(study, catalogue, django_capture_on_commit_callbacks)
    assert job.status == Job.Status.DONE, job.message
    assert (job.done, job.failed, job.errors) == (6, 0, [])
    assert len(tries) == 2 and study.trials.exists()


def test_it_says_what_a_design_retried_after_its_trials_committed_designed(
    catalogue, no_propagation, ada, monkeypatch, django_capture_on_commit_callbacks
):
    real, calls = progress.finish, []

    def hiccup(job, message=""):
        calls.append(message)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(job, message)

    monkeypatch.setattr(progress, "finish", hiccup)
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    job = _design(study, catalogue, django_capture_on_commit_callbacks)
    n = study.trials.count()
    assert job.status == Job.Status.DONE
    assert job.message == f"{n} trial(s) designed (nearest_random, seed 3)"
    assert calls == [job.message, job.message]
    assert study.events.filter(kind="trials").count() == 1


def test_it_still_designs_nothing_for_a_study_another_job_designed(
    catalogue, no_propagation, ada, django_capture_on_commit_callbacks
):
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    first = _design(study, catalogue, django_capture_on_commit_callbacks)
    second = _design(study, catalogue, django_capture_on_commit_callbacks)
    n = study.trials.count()
    assert first.message == f"{n} trial(s) designed (nearest_random, seed 3)"
    assert second.message == f"study already has {n} trial(s); nothing designed"


def test_it_queues_each_batch_once_when_the_catalogue_fan_out_is_retried(
    catalogue, no_propagation, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.CSN_EMBED_BATCH = 3
    prepared: list[list[int]] = []
    real_prepare, real_refresh, failed = ingest.prepare_clips, progress.refresh, []
    monkeypatch.setattr(
        ingest, "prepare_clips", lambda ids: prepared.append(ids) or real_prepare(ids)
    )

    def refresh(job):
        # Only the fan-out's own refresh, after its batches were queued, fails (once).
        if sys._getframe(1).f_code.co_name == "ingest_catalogue" and not failed:
            failed.append(1)
            raise OperationalError("terminating connection due to administrator command")
        return real_refresh(job)

    monkeypatch.setattr(progress, "refresh", refresh)
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    ids = job.params["clips"]
    assert failed == [1]
    assert prepared == [ids[:3], ids[3:]]
    assert (job.status, job.done, job.failed) == (Job.Status.DONE, 6, 0)


def test_it_queues_the_batches_a_fan_out_had_not_queued_when_it_is_retried(
    catalogue, no_propagation, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.CSN_EMBED_BATCH = 2
    real, sent = stimuli_tasks.ingest_signature, []

    def signature(clip_ids, job_id=None):
        if len(sent) == 1 and not getattr(signature, "failed", False):
            signature.failed = True  # type: ignore[attr-defined]
            raise OperationalError("the database went away while queuing the second batch")
        sent.append(clip_ids)
        return real(clip_ids, job_id)

    monkeypatch.setattr(stimuli_tasks, "ingest_signature", signature)
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    ids = job.params["clips"]
    assert sent == [ids[0:2], ids[2:4], ids[4:6]]
    assert (job.status, job.done) == (Job.Status.DONE, 6)


def test_it_keeps_server_paths_out_of_a_job_the_broker_refused(
    catalogue, monkeypatch, settings, django_capture_on_commit_callbacks
):
    def refused(*args, **kwargs):
        raise NotADirectoryError(20, "Not a directory", f"{settings.CSN_HOME}/broker/queue")

    monkeypatch.setattr(stimuli_tasks.ingest_catalogue, "delay", refused)
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.message == "could not queue: [Errno 20] Not a directory: 'broker/queue'"
