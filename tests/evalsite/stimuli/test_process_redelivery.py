"""A worker killed in the middle of process_clip: the redelivered task still makes the clip ready.

The kill is simulated by an exception no handler catches, raised from the storage delete or the
row save; the database runs in autocommit as in a worker (transactional tests).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from evalsite.stimuli import audio
from evalsite.stimuli.models import Catalogue, Clip

SR = 44100


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after the point where it is raised runs."""


@pytest.fixture(autouse=True)
def _no_auto_embed(settings):
    settings.CSN_AUTO_EMBED = False


def pending_upload(owner, name="upload.wav") -> Clip:
    noise = 0.05 * np.random.default_rng(0).standard_normal((2 * SR, 1)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, noise, SR, format="WAV")
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    clip = Clip(catalogue=cat, name=name)
    clip.file.save(name, ContentFile(buf.getvalue()), save=False)
    clip.save()
    return clip


def media_files(settings) -> list[Path]:
    return sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())


def redeliver(clip: Clip) -> Clip:
    """What the redelivered task does: load the row afresh and process it."""
    return audio.process_clip(Clip.objects.get(pk=clip.pk))


def assert_ready_with_its_audio_only(clip: Clip, settings) -> None:
    assert clip.status == Clip.Status.READY, clip.error
    assert sf.info(clip.file.path).subtype == "PCM_16"
    assert media_files(settings) == [Path(clip.file.path)]  # no orphan, nothing lost


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_clip_when_the_worker_dies_while_deleting_the_upload(
    owner, settings, monkeypatch
):
    clip = pending_upload(owner)
    delete = FileSystemStorage.delete

    def killed_after_delete(self, name):
        delete(self, name)
        raise WorkerKilled

    monkeypatch.setattr(FileSystemStorage, "delete", killed_after_delete)
    with pytest.raises(WorkerKilled):
        audio.process_clip(clip)
    monkeypatch.setattr(FileSystemStorage, "delete", delete)

    again = redeliver(clip)
    assert_ready_with_its_audio_only(again, settings)


@pytest.mark.django_db(transaction=True)
def test_it_reprocesses_the_upload_when_the_worker_dies_before_saving_the_row(
    owner, settings, monkeypatch
):
    clip = pending_upload(owner)
    save = Clip.save

    def killed_before_ready_is_saved(self, *args, **kwargs):
        if self.status == Clip.Status.READY:
            raise WorkerKilled
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Clip, "save", killed_before_ready_is_saved)
    with pytest.raises(WorkerKilled):
        audio.process_clip(clip)
    monkeypatch.setattr(Clip, "save", save)
    assert Clip.objects.get(pk=clip.pk).status == Clip.Status.PENDING

    again = redeliver(clip)
    assert_ready_with_its_audio_only(again, settings)  # the first try's WAV is overwritten


@pytest.mark.django_db(transaction=True)
def test_it_leaves_a_clip_made_ready_by_another_worker_alone(owner, settings):
    clip = pending_upload(owner)
    stale = Clip.objects.get(pk=clip.pk)  # a second worker's copy, loaded while still pending
    audio.process_clip(clip)  # the first worker: ready, the upload deleted after the commit

    again = audio.process_clip(stale)
    assert again.status == Clip.Status.READY and again.file.name == clip.file.name
    assert_ready_with_its_audio_only(Clip.objects.get(pk=clip.pk), settings)


@pytest.mark.django_db(transaction=True)
def test_a_failing_delete_of_the_upload_leaves_a_stray_file_and_a_ready_clip(
    owner, settings, monkeypatch, caplog
):
    clip = pending_upload(owner)
    upload = Path(clip.file.path)
    delete = FileSystemStorage.delete

    def disk_refuses(self, name):
        if name != upload_name:  # the processed WAV's own overwrite goes through
            return delete(self, name)
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(FileSystemStorage, "delete", disk_refuses)
    upload_name = clip.file.name
    done = audio.process_clip(clip)  # the delete runs after the commit, robust: logged

    assert Clip.objects.get(pk=done.pk).status == Clip.Status.READY
    assert upload.exists()  # the stray upload, named in the log
    assert "Permission denied" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_failing_delete_of_a_refused_upload_still_answers_with_its_error(
    owner, settings, monkeypatch, caplog
):
    silent = io.BytesIO()
    sf.write(silent, np.zeros((2 * SR, 1), np.float32), SR, format="WAV")
    catalogue = Catalogue.objects.create(owner=owner, name="uploads")
    monkeypatch.setattr(FileSystemStorage, "delete", lambda self, name: 1 / 0)

    refused = audio.clip_from_upload(ContentFile(silent.getvalue(), name="quiet.wav"), catalogue)

    assert refused.status == Clip.Status.FAILED and "silent" in refused.error
    assert not Clip.objects.filter(catalogue=catalogue).exists()
    assert "ZeroDivisionError" in caplog.text or "division by zero" in caplog.text
