"""What a failing ingest or study task leaves behind (eager: the wiring and the handlers; the
database retry with a real worker is in tests/integration/test_worker_retries.py).

A task that fails for good marks failed only the clips it could not finish: a pending clip it
could not prepare is failed, a ready clip it could not embed stays ready with the error, and the
rest of the batch goes on. No message shown to researchers names a path on the server."""

from __future__ import annotations

import os

import pytest
from django.db import OperationalError

from evalsite.jobs.models import Job
from evalsite.retrieval import ingest
from evalsite.retrieval.models import Embedding
from evalsite.stimuli.models import Clip
from evalsite.stimuli.tasks import prepare_clips, queue_ingest
from evalsite.studies import model_design
from evalsite.studies.models import Study
from evalsite.studies.tasks import queue_design

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_propagation(eager):
    eager.conf.task_eager_propagates = False  # a worker's view: on_failure runs, nothing raises
    return eager


def _gone_upload(catalogue, settings) -> Clip:
    """A pending clip whose uploaded file is no longer on disk."""
    clip = Clip(catalogue=catalogue, name="lost take.wav", piece="LOST")
    clip.file.name = "clips/lost-upload.wav"
    clip.save()
    assert not os.path.exists(clip.file.path)
    return clip


def _assert_no_server_path(text: str, settings) -> None:
    assert str(settings.MEDIA_ROOT) not in text and "/tmp" not in text, text


def test_it_fails_only_the_clip_whose_upload_is_missing_and_ingests_the_rest(
    catalogue, no_propagation, settings, django_capture_on_commit_callbacks
):
    lost = _gone_upload(catalogue, settings)
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    lost.refresh_from_db()
    assert lost.status == Clip.Status.FAILED
    assert lost.error.startswith("lost take.wav: ") and "missing" in lost.error
    _assert_no_server_path(lost.error, settings)
    healthy = catalogue.clips.exclude(pk=lost.pk)
    assert set(healthy.values_list("status", flat=True)) == {Clip.Status.READY}
    assert Embedding.objects.filter(clip__in=healthy).count() == 6
    assert (job.status, job.total, job.done, job.failed) == (Job.Status.DONE, 7, 6, 1)
    assert job.errors == [{"clip": lost.pk, "name": "lost take.wav", "error": lost.error}]


def test_it_keeps_ready_clips_ready_when_an_embedding_task_fails_for_good(
    catalogue, no_propagation, monkeypatch, settings, django_capture_on_commit_callbacks
):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError(f"CUDA out of memory reading {settings.MEDIA_ROOT}/clips/x.wav")

    real = ingest.embed_clips
    monkeypatch.setattr(ingest, "embed_clips", out_of_memory)
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    clips = list(catalogue.clips.all())
    assert {c.status for c in clips} == {Clip.Status.READY}
    assert all("CUDA out of memory" in c.error for c in clips)
    for c in clips:
        _assert_no_server_path(c.error, settings)
    assert (job.status, job.done, job.failed) == (Job.Status.DONE, 0, 6)

    monkeypatch.setattr(ingest, "embed_clips", real)  # the GPU has room again: queue it again
    with django_capture_on_commit_callbacks(execute=True):
        again = queue_ingest(catalogue)
    again.refresh_from_db()
    assert (again.status, again.done, again.failed) == (Job.Status.DONE, 6, 0)
    assert set(catalogue.clips.values_list("error", flat=True)) == {""}


def test_it_fails_only_the_pending_clips_when_a_prepare_task_fails_for_good(
    catalogue, no_propagation, monkeypatch, settings, django_capture_on_commit_callbacks
):
    lost = _gone_upload(catalogue, settings)

    def broken(*args, **kwargs):
        raise RuntimeError("soft time limit exceeded")

    monkeypatch.setattr(ingest, "prepare_clips", broken)
    with django_capture_on_commit_callbacks(execute=False):
        job = queue_ingest(catalogue)
    # The batch's task as a worker runs it (an eager chain would also fail the fan-out task).
    prepare_clips.apply(args=(job.params["clips"], job.pk))
    job.refresh_from_db()
    lost.refresh_from_db()
    assert lost.status == Clip.Status.FAILED and "soft time limit" in lost.error
    healthy = catalogue.clips.exclude(pk=lost.pk)
    assert set(healthy.values_list("status", flat=True)) == {Clip.Status.READY}
    assert set(healthy.values_list("error", flat=True)) == {""}
    assert Embedding.objects.filter(clip__in=healthy).count() == 6  # the batch went on
    assert (job.status, job.done, job.failed) == (Job.Status.DONE, 6, 1)


def test_it_retries_a_clip_whose_file_cannot_be_read_while_embedding(catalogue):
    clip = catalogue.clips.order_by("id").first()
    os.rename(clip.file.path, clip.file.path + ".away")
    report = ingest.embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    clip.refresh_from_db()
    assert clip.status == Clip.Status.READY and clip.error == ""  # not failed: maybe transient
    assert list(report.unreadable) == [clip.pk] and clip.pk not in report.failed
    assert len(report.embedded) == 5  # the others are stored

    os.rename(clip.file.path + ".away", clip.file.path)  # the file is back: it is embedded
    assert ingest.embed_clips([clip.pk]).embedded == [clip.pk]


def test_it_says_which_clip_is_unreadable_once_the_embedding_retries_are_spent(
    catalogue, no_propagation, settings, django_capture_on_commit_callbacks
):
    clip = catalogue.clips.order_by("id").first()
    os.rename(clip.file.path, clip.file.path + ".away")
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    clip.refresh_from_db()
    assert clip.status == Clip.Status.READY
    assert clip.error.startswith(f"{clip.name}: audio file missing or unreadable")
    _assert_no_server_path(clip.error, settings)
    assert "cannot decode" not in clip.error
    assert (job.status, job.done, job.failed) == (Job.Status.DONE, 5, 1)
    others = catalogue.clips.exclude(pk=clip.pk)
    assert set(others.values_list("error", flat=True)) == {""}

    os.rename(clip.file.path + ".away", clip.file.path)  # putting the file back helps
    with django_capture_on_commit_callbacks(execute=True):
        again = queue_ingest(catalogue)
    again.refresh_from_db()
    clip.refresh_from_db()
    assert (again.done, again.failed, clip.error) == (6, 0, "")


def test_it_retries_a_design_after_a_database_error(
    catalogue, no_propagation, ada, monkeypatch, django_capture_on_commit_callbacks
):
    real, calls = model_design.build_model_trials, []

    def hiccup(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")
        return real(*args, **kwargs)

    monkeypatch.setattr(model_design, "build_model_trials", hiccup)
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_design(study, catalogue, "nearest_random", 2, seed=3, catch_per_kind=0)
    job.refresh_from_db()
    assert job.status == Job.Status.DONE, job.message
    assert len(calls) == 2 and study.trials.filter(is_practice=False).count() == 2
