"""Removing failed clips from a study's catalogue on its Clips page
(evalsite/studies/clip_removal.py, experimenter_stimuli.clips_remove): only failed clips no trial
uses, only by researchers who may change the study, and their files only once the delete commits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.urls import reverse

from evalsite.jobs import progress
from evalsite.jobs.models import Job
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Study
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def _failed(catalogue, name="bad.wav", with_file=False, **fields) -> Clip:
    """A clip a worker failed, as ingest leaves it: row, error and (optionally) its upload."""
    clip = Clip(catalogue=catalogue, name=name, status="failed", error=f"{name}: cannot decode")
    if with_file:
        clip.file.save(name, ContentFile(b"not audio"), save=False)
    clip.save()
    return clip


def _remove(client, study, follow=True, **data):
    return client.post(reverse("studies:clips_remove", args=[study.pk]), data, follow=follow)


def _overview(client, study) -> str:
    return client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()


def test_it_removes_a_failed_clip_with_its_file_and_the_overview_stops_counting_it(
    client, alice, study, django_capture_on_commit_callbacks
):
    bad = _failed(study.catalogue, with_file=True)
    path = Path(bad.file.path)
    assert path.exists()
    client.force_login(alice)
    assert 'id="failed-clips">(1 failed' in _overview(client, study)
    page = client.get(reverse("studies:clips", args=[study.pk])).content.decode()
    assert f'name="clip" value="{bad.pk}"' in page and ">Remove</button>" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = _remove(client, study, clip=bad.pk)
    clips_url = reverse("studies:clips", args=[study.pk])
    assert response.redirect_chain == [(clips_url, 303)]
    assert f"Removed failed clip &#x27;bad.wav&#x27; (id {bad.pk})." in response.content.decode()
    assert not Clip.objects.filter(pk=bad.pk).exists()
    assert not path.exists()
    assert 'id="failed-clips"' not in _overview(client, study)
    assert study.catalogue.clips.count() == 8  # the ready ones all kept


def test_it_deletes_the_file_only_once_the_removal_commits(
    client, alice, study, django_capture_on_commit_callbacks
):
    bad = _failed(study.catalogue, with_file=True)
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _remove(client, study, follow=False, clip=bad.pk)
    assert callbacks  # the file's delete waits for the commit: a rollback would keep both
    assert Path(bad.file.path).exists()


def test_it_removes_all_failed_clips_at_once_but_not_ready_ones(
    client, alice, study, django_capture_on_commit_callbacks
):
    bad = [_failed(study.catalogue, f"bad{i}.wav", with_file=True) for i in range(3)]
    client.force_login(alice)
    page = client.get(reverse("studies:clips", args=[study.pk])).content.decode()
    assert ">Remove all failed clips</button>" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = _remove(client, study, all="1")
    assert "Removed 3 failed clips: bad0.wav, bad1.wav, bad2.wav." in response.content.decode()
    assert not Clip.objects.filter(pk__in=[c.pk for c in bad]).exists()
    assert not any(Path(c.file.path).exists() for c in bad)
    assert study.catalogue.clips.filter(status="ready").count() == 8


def test_it_offers_remove_all_only_when_there_are_several_failed_clips(client, alice, study):
    _failed(study.catalogue)
    client.force_login(alice)
    page = client.get(reverse("studies:clips", args=[study.pk])).content.decode()
    assert ">Remove</button>" in page and "Remove all failed clips" not in page


@pytest.mark.parametrize("status", ["ready", "pending"])
def test_it_refuses_to_remove_a_ready_or_pending_clip_and_keeps_it(client, alice, study, status):
    clip = Clip.objects.create(catalogue=study.catalogue, name="keep.wav", status=status)
    client.force_login(alice)
    response = _remove(client, study, clip=clip.pk)
    html = response.content.decode()
    assert f"Clip &#x27;keep.wav&#x27; (id {clip.pk}) is {status}" in html
    assert "only failed clips can be removed" in html
    assert Clip.objects.filter(pk=clip.pk, status=status).exists()


def test_it_removes_nothing_but_failed_clips_when_asked_for_all(client, alice, study):
    pending = Clip.objects.create(catalogue=study.catalogue, name="wait.wav", status="pending")
    client.force_login(alice)
    response = _remove(client, study, all="1")
    assert "No failed clips to remove." in response.content.decode()
    assert Clip.objects.filter(pk=pending.pk).exists()
    assert study.catalogue.clips.count() == 9


def test_it_gives_a_researcher_without_access_404_and_removes_nothing(client, bob, study):
    bad = _failed(study.catalogue)
    client.force_login(bob)
    assert _remove(client, study, follow=False, clip=bad.pk).status_code == 404
    assert _remove(client, study, follow=False, all="1").status_code == 404
    assert Clip.objects.filter(pk=bad.pk).exists()


def test_it_lets_a_researcher_the_study_is_shared_with_remove_a_failed_clip(client, carol, study):
    bad = _failed(study.catalogue)
    client.force_login(carol)
    assert _remove(client, study, follow=False, clip=bad.pk).status_code == 303
    assert not Clip.objects.filter(pk=bad.pk).exists()


def test_it_refuses_to_remove_clips_of_a_closed_study(client, alice, study):
    bad = [_failed(study.catalogue, f"bad{i}.wav") for i in range(2)]
    study.status = Study.Status.CLOSED
    study.save()
    client.force_login(alice)
    page = client.get(reverse("studies:clips", args=[study.pk])).content.decode()
    assert "bad0.wav: cannot decode" in page  # still listed, with its error
    assert ">Remove</button>" not in page and "Remove all failed clips" not in page
    for data in ({"clip": bad[0].pk}, {"all": "1"}):
        response = _remove(client, study, **data)
        assert response.redirect_chain == [(reverse("studies:clips", args=[study.pk]), 303)]
        assert "is closed; it can no longer be changed" in response.content.decode()
    assert Clip.objects.filter(pk__in=[c.pk for c in bad]).count() == 2


def test_it_refuses_a_failed_clip_a_trial_uses_naming_it(client, alice, study):
    used = study.trials.first().reference
    Clip.objects.filter(pk=used.pk).update(status="failed", error="embedding failed")
    client.force_login(alice)
    page = client.get(reverse("studies:clips", args=[study.pk])).content.decode()
    assert f'name="clip" value="{used.pk}"' not in page  # not offered
    for data in ({"clip": used.pk}, {"all": "1"}):
        html = _remove(client, study, **data).content.decode()
        assert f"Clip &#x27;{used.name}&#x27; (id {used.pk}) is used by" in html
        assert "trial" in html and "kept" in html
    assert Clip.objects.filter(pk=used.pk).exists()


def test_it_refuses_a_clip_of_another_catalogue(client, alice, study):
    other = Catalogue.objects.create(owner=alice, name="elsewhere")
    bad = _failed(other)
    client.force_login(alice)
    html = _remove(client, study, clip=bad.pk).content.decode()
    assert f"Clip id {bad.pk} is already gone from this study&#x27;s catalogue" in html
    assert Clip.objects.filter(pk=bad.pk).exists()


def test_it_sends_a_logged_out_post_to_the_login_page(client, study):
    bad = _failed(study.catalogue)
    response = _remove(client, study, follow=False, clip=bad.pk)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert Clip.objects.filter(pk=bad.pk).exists()


def test_it_says_a_clip_removed_twice_is_already_gone(client, alice, study):
    bad = _failed(study.catalogue)
    client.force_login(alice)
    _remove(client, study, clip=bad.pk)
    again = _remove(client, study, clip=bad.pk)  # a double submit, or a second tab
    assert again.status_code == 200
    assert f"Clip id {bad.pk} is already gone" in again.content.decode()


def test_it_refuses_a_malformed_request_without_an_error_page(client, alice, study):
    client.force_login(alice)
    for data in ({"clip": "seven"}, {}):
        response = _remove(client, study, **data)
        assert response.status_code == 200
        assert "expected the id of a failed clip" in response.content.decode()
    get = client.get(reverse("studies:clips_remove", args=[study.pk]))
    assert get.status_code == 405


def test_it_lets_a_running_job_finish_when_one_of_its_failed_clips_is_removed(client, alice, study):
    removed = _failed(study.catalogue)
    late = Clip.objects.create(catalogue=study.catalogue, name="late.wav", status="pending")
    job = Job.objects.create(kind=Job.Kind.INGEST, catalogue=study.catalogue, study=study,
                             status=Job.Status.RUNNING,
                             params={"clips": [removed.pk, late.pk]})  # fmt: skip
    client.force_login(alice)
    _remove(client, study, clip=removed.pk)
    Clip.objects.filter(pk=late.pk).update(status="failed", error="late.wav: cannot decode")
    job = progress.refresh(job)
    # The removed clip will never be embedded: it counts as failed, so the job can end.
    assert (job.status, job.done, job.failed, job.total) == (Job.Status.DONE, 0, 2, 2)
    assert [e["name"] for e in job.errors] == ["late.wav"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_file_delete_keeps_the_removal_and_logs_the_stray_file(
    client, alice, study, monkeypatch, caplog
):
    bad = _failed(study.catalogue, with_file=True)
    path = Path(bad.file.path)

    def disk_refuses(self, name):
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(FileSystemStorage, "delete", disk_refuses)
    client.force_login(alice)
    response = _remove(client, study, clip=bad.pk)

    assert response.status_code == 200
    assert f"Removed failed clip &#x27;bad.wav&#x27; (id {bad.pk})." in response.content.decode()
    assert not Clip.objects.filter(pk=bad.pk).exists()
    assert path.exists() and "Permission denied" in caplog.text
