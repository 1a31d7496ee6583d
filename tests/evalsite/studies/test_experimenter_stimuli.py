"""Experimenter stimuli pages (evalsite/studies/experimenter_stimuli.py): uploads, each file's
result shown once after the redirect, and dataset imports."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from evalsite.datasets.catalog import datasets
from evalsite.stimuli.audio import playback_lufs
from evalsite.stimuli.models import Clip
from evalsite.studies import experimenter_stimuli
from evalsite.studies.models import Study
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.experimenter_personas import wav_bytes

pytestmark = pytest.mark.django_db


def _results(response) -> dict[str, dict]:
    """The per-file results the clips page shows, by file name."""
    return {r["name"]: r for r in response.context["results"]}


def test_it_uploads_several_files_and_reports_each_bad_one(
    client, alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(alice)
    files = [
        SimpleUploadedFile("good.wav", wav_bytes(), "audio/wav"),
        SimpleUploadedFile("good.flac", wav_bytes(freq=220, fmt="FLAC"), "audio/flac"),
        SimpleUploadedFile("silent.wav", wav_bytes(amplitude=0.0), "audio/wav"),
        SimpleUploadedFile("short.wav", wav_bytes(seconds=0.1), "audio/wav"),
        SimpleUploadedFile("notes.txt", b"not audio at all", "text/plain"),
    ]
    url = reverse("studies:clips", args=[study.pk])
    response = client.post(url, {"files": files}, follow=True)
    assert response.redirect_chain == [(url, 303)]
    results = _results(response)
    assert [n for n, r in results.items() if r["status"] == "ready"] == ["good.wav", "good.flac"]
    assert "silent" in results["silent.wav"]["error"]
    assert "duration" in results["short.wav"]["error"]
    assert "notes.txt" in results["notes.txt"]["error"]
    assert "decode" in results["notes.txt"]["error"]
    html = response.content.decode()
    for name in ("silent.wav", "short.wav", "notes.txt"):
        assert f"{name}: " in html  # each error names its file on the page
    assert "2 of 5 file(s) added." in html and "3 file(s) refused" in html
    good = Clip.objects.get(name="good.wav")
    assert good.catalogue_id == study.catalogue_id and len(good.sha256) == 64
    playback = playback_lufs(good.loudness_lufs, good.channels)  # mono as dual-mono
    assert abs(playback - study.setting("loudness_target_lufs")) < 0.5


def test_a_refused_upload_is_not_counted_as_a_catalogue_clip(
    client, alice, study, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(alice)
    before = set(Clip.objects.values_list("pk", flat=True))
    url = reverse("studies:clips", args=[study.pk])
    for _ in range(2):  # a retry of the same refused file
        silent = SimpleUploadedFile("silent.wav", wav_bytes(amplitude=0.0), "audio/wav")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, {"files": [silent]}, follow=True)
        assert "silent" in _results(response)["silent.wav"]["error"]  # the reason, shown once
    assert set(Clip.objects.values_list("pk", flat=True)) == before
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nor its uploaded file
    overview = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    assert "<b>8</b>ready clips in the study catalogue" in overview
    assert 'id="failed-clips"' not in overview


def test_the_overview_counts_clips_a_worker_failed_apart_from_ready_ones(client, alice, study):
    """A worker's refusal (an ingest job) is kept on the clip, which the Clips page lists with
    its error: the overview counts it apart from the ready clips trials can use."""
    Clip.objects.create(catalogue=study.catalogue, name="bad.wav", status="failed",
                        error="bad.wav: cannot decode audio")  # fmt: skip
    client.force_login(alice)
    overview = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    assert "<b>8</b>ready clips in the study catalogue" in overview
    assert re.search(r'id="failed-clips">\(1 failed: see <a href="[^"]+">Clips', overview)
    clips = client.get(reverse("studies:clips", args=[study.pk])).content.decode()
    assert 'failed: <span class="error">bad.wav: cannot decode audio</span>' in clips


def test_the_clips_page_lists_a_mono_clip_at_the_loudness_participants_hear(client, alice, study):
    """A mono clip normalised to -23 LUFS measures -26.0 by BS.1770 (one channel) but plays on
    both speakers: the page lists its playback loudness and says why the stored value differs."""
    Clip.objects.filter(catalogue=study.catalogue).update(loudness_lufs=-26.01, channels=1)
    client.force_login(alice)
    html = client.get(reverse("studies:clips", args=[study.pk])).content.decode()
    assert "normalised to -23.0 LUFS" in html
    assert "<th>Playback LUFS</th>" in html
    assert "<td>-23.0</td>" in html and "<td>-26.0</td>" not in html
    assert 'id="playback-note"' in html and "+3.01 LU" in html


def test_a_reload_after_an_upload_stores_nothing_and_shows_the_results_once(
    client, alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(alice)
    url = reverse("studies:clips", args=[study.pk])
    files = [
        SimpleUploadedFile("new.wav", wav_bytes(freq=330), "audio/wav"),
        SimpleUploadedFile("notes.txt", b"not audio at all", "text/plain"),
    ]
    response = client.post(url, {"files": files})
    assert response.status_code == 303 and response["Location"] == url
    stored = list(Clip.objects.values_list("pk", "name", "status"))
    first = client.get(url)  # where the browser lands: the results of that upload
    assert set(_results(first)) == {"new.wav", "notes.txt"}
    assert "notes.txt: cannot decode" in first.content.decode()
    reload = client.get(url)  # a reload of that page: a GET, nothing sent again
    assert reload.status_code == 200 and not reload.context["results"]
    assert b'id="upload-results"' not in reload.content
    assert list(Clip.objects.values_list("pk", "name", "status")) == stored


def test_it_shows_an_uploads_results_only_on_its_own_studys_page(
    client, alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    other = Study.objects.create(owner=alice, name="other", instruments=["drums"])
    client.force_login(alice)
    upload = SimpleUploadedFile("a.wav", wav_bytes(), "audio/wav")
    client.post(reverse("studies:clips", args=[study.pk]), {"files": [upload]})
    assert not client.get(reverse("studies:clips", args=[other.pk])).context["results"]
    assert set(_results(client.get(reverse("studies:clips", args=[study.pk])))) == {"a.wav"}


def test_it_refuses_an_upload_to_a_closed_study_and_redirects(
    client, alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    study.status = Study.Status.CLOSED
    study.save()
    client.force_login(alice)
    url = reverse("studies:clips", args=[study.pk])
    before = Clip.objects.count()
    upload = SimpleUploadedFile("a.wav", wav_bytes(), "audio/wav")
    response = client.post(url, {"files": [upload]}, follow=True)
    assert response.redirect_chain == [(url, 303)]
    assert "is closed; it can no longer be changed" in response.content.decode()
    assert Clip.objects.count() == before


def test_it_creates_a_catalogue_on_the_first_upload(client, alice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    study = Study.objects.create(owner=alice, name="fresh", instruments=["drums"])
    client.force_login(alice)
    upload = SimpleUploadedFile("a.wav", wav_bytes(), "audio/wav")
    client.post(reverse("studies:clips", args=[study.pk]), {"files": [upload]})
    study.refresh_from_db()
    assert study.catalogue.owner == alice
    assert study.catalogue.clips.get().status == Clip.Status.READY


def test_it_refuses_an_oversized_file_before_decoding(
    client, alice, study, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = str(tmp_path)
    client.force_login(alice)
    big = wav_bytes(seconds=2.0)
    monkeypatch.setattr(experimenter_stimuli, "MAX_UPLOAD_BYTES", len(big) - 1)
    upload = SimpleUploadedFile("big.wav", big, "audio/wav")
    url = reverse("studies:clips", args=[study.pk])
    response = client.post(url, {"files": [upload]}, follow=True)
    (result,) = response.context["results"]
    assert result["status"] == "failed" and result["error"].startswith("big.wav: ")
    assert "expected at most" in result["error"]
    assert "big.wav: " in response.content.decode()  # shown after the redirect, never stored
    assert not Clip.objects.filter(name="big.wav").exists()


def test_it_reports_a_file_already_in_the_catalogue_instead_of_adding_it_again(
    client, alice, study, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = str(tmp_path)
    client.force_login(alice)
    url = reverse("studies:clips", args=[study.pk])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"files": [SimpleUploadedFile("a.wav", wav_bytes(), "audio/wav")]})
    added = Clip.objects.get(catalogue=study.catalogue, name="a.wav")
    files = [  # the same file sent again; the same file twice in one upload
        SimpleUploadedFile("a.wav", wav_bytes(), "audio/wav"),
        SimpleUploadedFile("copy.wav", wav_bytes(), "audio/wav"),
        SimpleUploadedFile("other.wav", wav_bytes(freq=220), "audio/wav"),
    ]
    with django_capture_on_commit_callbacks(execute=True):  # the deletes after the commit
        response = client.post(url, {"files": files}, follow=True)
    results = _results(response)
    known = {"pk": added.pk, "name": "a.wav"}
    assert results["a.wav"]["duplicate_of"] == known == results["copy.wav"]["duplicate_of"]
    assert results["other.wav"]["status"] == "ready" and not results["other.wav"]["duplicate_of"]
    assert "copy.wav" in response.content.decode()
    assert "already in the catalogue as a.wav" in response.content.decode()
    ready = Clip.objects.filter(catalogue=study.catalogue, sha256=added.sha256)
    assert list(ready) == [added]
    stored = sorted(p.name for p in (tmp_path / "clips").iterdir())
    other = Clip.objects.get(catalogue=study.catalogue, name="other.wav")
    assert stored == sorted(c.file.name.split("/")[-1] for c in (added, other))


def test_it_names_an_empty_file_and_still_stores_the_others(
    client, alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    client.force_login(alice)
    files = [
        SimpleUploadedFile("x.wav", b"", "audio/wav"),
        SimpleUploadedFile("good.wav", wav_bytes(), "audio/wav"),
    ]
    response = client.post(reverse("studies:clips", args=[study.pk]), {"files": files}, follow=True)
    results = _results(response)
    assert results["good.wav"]["status"] == "ready"
    assert results["x.wav"]["error"] == "x.wav: empty file; expected audio"
    assert "x.wav: empty file" in response.content.decode()


def test_it_asks_for_at_least_one_file(client, alice, study):
    client.force_login(alice)
    response = client.post(reverse("studies:clips", args=[study.pk]), {"piece": "p"})
    assert response.status_code == 200  # the form again, with its error: nothing was sent
    assert response.context["form"].errors["files"] and not response.context["results"]


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_the_import_page_gives_the_command_with_the_study_owner_as_owner(
    client, alice, carol, study, who
):
    # Without --owner the catalogue goes to a superuser, and the study form offers only the
    # study owner's catalogues (to the owner alone): the hint is the command the docs give,
    # filled in with the owner, also for carol, whom the study is shared with.
    client.force_login({"alice": alice, "carol": carol}[who])
    page = client.get(reverse("studies:dataset_import", args=[study.pk])).content.decode()
    assert (
        "manage.py import_slakh ROOT --split test --catalogue NAME --owner alice --attention"
    ) in page


def test_it_imports_only_from_the_datasets_the_server_offers(
    client, alice, study, tiny_dataset, settings, tmp_path
):
    settings.CSN_DATA_DIR, settings.CSN_DATASETS = tmp_path / "none", []
    client.force_login(alice)
    url = reverse("studies:dataset_import", args=[study.pk])
    assert b'id="no-datasets"' in client.get(url).content
    clips = Clip.objects.count()
    for root in (str(tiny_dataset), "/etc", "../../"):  # a folder the server can read
        data = {"root": root, "split": "test", "seconds": 2, "attention": "on"}
        response = client.post(url, data)
        assert response.status_code == 200
        assert "Select a valid choice" in str(response.context["form"].errors["root"])
    assert Clip.objects.count() == clips


def test_it_imports_a_slakh_layout_split_into_the_study_catalogue(
    client, alice, tiny_dataset, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CSN_DATA_DIR, settings.CSN_DATASETS = tmp_path / "none", [tiny_dataset]
    (ref,) = datasets()
    study = Study.objects.create(owner=alice, name="import", instruments=["drums", "bass"])
    client.force_login(alice)
    url = reverse("studies:dataset_import", args=[study.pk])
    assert str(tiny_dataset) in client.get(url).content.decode()  # offered by name and folder
    data = {"root": ref.slug, "split": "validation", "seconds": 2, "attention": "on"}
    response = client.post(url, data)
    assert response.status_code == 303 and response["Location"] == url
    study.refresh_from_db()
    clips = Clip.objects.filter(catalogue=study.catalogue, status=Clip.Status.READY)
    made = clips.count()
    assert made >= 2
    page = client.get(url)  # where the browser lands: the import's result
    assert page.context["report"]["mixes"] == 2 and page.context["report"]["existing"] == 0
    assert "2 mix clips" in page.content.decode()
    reload = client.get(url)  # a reload of that page: a GET, nothing imported again
    assert reload.context["report"] is None
    assert Clip.objects.filter(catalogue=study.catalogue).count() == made
    again = client.post(url, data, follow=True)  # the form sent again on purpose
    assert b'id="already-imported"' in again.content
    assert again.context["report"]["mixes"] == 0 and again.context["report"]["attention"] == 0
    assert Clip.objects.filter(catalogue=study.catalogue).count() == made
    events = [(e.kind, e.user, e.changes) for e in study.events.all()]  # once, by the first
    assert events == [("edited", alice, {"catalogue": [None, study.catalogue_id]})]


def test_it_reports_what_an_import_made_and_skipped_when_a_track_fails_to_decode(
    client, alice, damaged_dataset, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CSN_DATA_DIR = tmp_path / "none"
    settings.CSN_DATASETS = [damaged_dataset("Track00011")]  # the split's last track
    (ref,) = datasets()
    study = Study.objects.create(owner=alice, name="import", instruments=["drums", "bass"])
    client.force_login(alice)
    url = reverse("studies:dataset_import", args=[study.pk])
    data = {"root": ref.slug, "split": "test", "seconds": 2, "attention": "on"}
    response = client.post(url, data, follow=True)
    assert response.redirect_chain == [(url, 303)]
    report = response.context["report"]
    study.refresh_from_db()
    mixes = Clip.objects.filter(catalogue=study.catalogue, meta={})
    assert sorted(mixes.values_list("piece", flat=True)) == [
        "Track00002",
        "Track00005",
        "Track00008",
    ]
    assert report["mixes"] == 3 and report["attention"] > 0
    (skipped,) = report["skipped"]
    assert skipped.startswith("Track00011: ") and "cannot decode stem S00" in skipped
    html = response.content.decode()
    assert "3 mix clips" in html and "1 skipped" in html
    assert "Track00011: " in html and "cannot decode stem S00" in html  # the reason, on the page


def test_it_reports_the_stems_an_import_skipped(client, alice, tiny_dataset, settings, tmp_path):
    root = shutil.copytree(tiny_dataset, tmp_path / "quirks")
    stems = root / "test" / "Track00005" / "stems"
    shutil.copy(stems / "S00.flac", stems / "S09.flac")  # not in metadata.yaml
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CSN_DATA_DIR = tmp_path / "none"
    settings.CSN_DATASETS = [root]
    (ref,) = datasets()
    study = Study.objects.create(owner=alice, name="import", instruments=["drums", "bass"])
    client.force_login(alice)
    url = reverse("studies:dataset_import", args=[study.pk])
    data = {"root": ref.slug, "split": "test", "seconds": 1}
    response = client.post(url, data, follow=True)
    assert response.context["report"]["skipped_stems"] == [
        "Track00005 S09: audio file not listed in metadata.yaml"
    ]
    html = response.content.decode()
    assert "1 stems skipped: audio file not listed in metadata.yaml" in html
    assert "Track00005 S09: audio file not listed in metadata.yaml" in html


def _browser(user) -> Client:
    """A client that, like a browser, must send the CSRF token, read from the Clips page."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    return browser


def test_it_refuses_more_files_than_the_limit_on_the_clips_page_naming_it(
    alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3  # CSN_UPLOAD_MAX_FILES
    browser = _browser(alice)
    url = reverse("studies:clips", args=[study.pk])
    page = browser.get(url)
    assert "At most 3 files per upload" in page.content.decode()  # said on the form
    files = [SimpleUploadedFile(f"f{i}.wav", wav_bytes(freq=200 + i)) for i in range(4)]
    token = browser.cookies["csrftoken"].value  # in the body Django refuses to read past 3 files
    response = browser.post(url, {"csrfmiddlewaretoken": token, "files": files})
    assert response.status_code == 413
    html = response.content.decode()
    assert "Too many files in one upload: at most 3 (CSN_UPLOAD_MAX_FILES)" in html
    assert "nothing was stored" in html and 'id="upload-limit"' in html  # the Clips page
    assert not Clip.objects.filter(name__startswith="f").exists()
    assert "Too many files" not in browser.get(url).content.decode()  # said once


def test_it_still_checks_the_csrf_token_of_an_upload(alice, study, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    browser = _browser(alice)
    url = reverse("studies:clips", args=[study.pk])
    forged = browser.post(url, {"files": [SimpleUploadedFile("a.wav", wav_bytes())]})
    assert forged.status_code == 403 and not Clip.objects.filter(name="a.wav").exists()
    browser.get(url)
    token = browser.cookies["csrftoken"].value
    files = [SimpleUploadedFile("a.wav", wav_bytes())]
    response = browser.post(url, {"csrfmiddlewaretoken": token, "files": files})
    assert response.status_code == 303
    assert Clip.objects.get(name="a.wav").status == Clip.Status.READY


def test_it_takes_files_larger_than_djangos_in_memory_limits(
    client, alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10_000
    client.force_login(alice)
    files = [
        SimpleUploadedFile(f"long{i}.wav", wav_bytes(seconds=2.0, freq=300 + i)) for i in (1, 2)
    ]
    assert all(f.size > 40_000 for f in files)  # each file and the request far above both
    url = reverse("studies:clips", args=[study.pk])
    response = client.post(url, {"files": files}, follow=True)
    assert response.redirect_chain == [(url, 303)]
    assert [r["status"] for r in response.context["results"]] == ["ready", "ready"]


def test_it_names_the_limit_when_the_form_fields_besides_the_files_are_too_large(
    alice, study, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    browser = _browser(alice)
    url = reverse("studies:clips", args=[study.pk])
    browser.get(url)
    token = browser.cookies["csrftoken"].value
    files = [SimpleUploadedFile("a.wav", wav_bytes())]
    response = browser.post(
        url, {"csrfmiddlewaretoken": token, "files": files, "piece": "x" * 2000}
    )
    assert response.status_code == 413
    html = response.content.decode()
    assert "The form fields other than the files exceed 1000 bytes" in html
    assert "nothing was stored" in html and not Clip.objects.filter(name="a.wav").exists()


def _original_slakh2100(tiny_dataset, tmp_path) -> tuple[Path, Path, Path]:
    """A copy of tiny_dataset whose first test track was rendered from the first train track's
    source MIDI, as in original Slakh2100: (root, that train track, that test track)."""
    root = Path(shutil.copytree(tiny_dataset, tmp_path / "slakh2100"))
    train = sorted((root / "train").iterdir())[0]
    test = sorted((root / "test").iterdir())[0]
    lmd = yaml.safe_load((train / "metadata.yaml").read_text())["lmd_midi_dir"]
    meta = yaml.safe_load((test / "metadata.yaml").read_text())
    meta["lmd_midi_dir"] = lmd  # one Lakh MIDI rendered in two splits
    (test / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return root, train, test


def _import_page_of_original_slakh2100(client, alice, tiny_dataset, settings, tmp_path):
    """(a new study of alice's, its train track, test track, dataset ref, import URL), logged in,
    with original Slakh2100 the only dataset offered."""
    root, train, test = _original_slakh2100(tiny_dataset, tmp_path)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CSN_DATA_DIR, settings.CSN_DATASETS = tmp_path / "none", [root]
    (ref,) = datasets()
    study = Study.objects.create(owner=alice, name="import", instruments=["drums", "bass"])
    client.force_login(alice)
    return study, train, test, ref, reverse("studies:dataset_import", args=[study.pk])


def test_it_refuses_original_slakh2100s_duplicates_on_the_import_form_naming_redux(
    client, alice, tiny_dataset, settings, tmp_path
):
    study, train, test, ref, url = _import_page_of_original_slakh2100(
        client, alice, tiny_dataset, settings, tmp_path
    )
    data = {"root": ref.slug, "split": "validation", "seconds": 2, "attention": "on"}
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with the reason: not a 500
    (error,) = response.context["form"].errors["root"]
    assert f"train/{train.name} and test/{test.name}" in error and "Slakh2100-redux" in error
    assert "Slakh2100-redux" in response.content.decode()
    (hint,) = response.context["form"].errors["duplicates"]  # the way out, on this page
    assert "leave out all but one" in hint
    assert not Clip.objects.exists()


def test_it_imports_original_slakh2100_leaving_out_duplicates_when_asked_and_counts_them(
    client, alice, tiny_dataset, settings, tmp_path
):
    study, train, test, ref, url = _import_page_of_original_slakh2100(
        client, alice, tiny_dataset, settings, tmp_path
    )
    form = client.get(url).context["form"]
    assert form["duplicates"].value() == "refuse"  # the default: a duplicate is never silent
    data = {"root": ref.slug, "split": "test", "seconds": 2, "duplicates": "omit"}
    response = client.post(url, data, follow=True)
    assert response.redirect_chain == [(url, 303)]
    report = response.context["report"]
    reason = f"same source MIDI as a kept track: train/{train.name} (lmd_midi_dir "
    (left_out,) = report["omitted"]
    assert left_out.startswith(f"test/{test.name}: {reason}")
    assert report["mixes"] == 3
    html = response.content.decode()
    assert 'id="left-out"' in html and "1 track of this split left out" in html
    assert f"test/{test.name}" in html and "1 left out" in html  # the message says it too
    study.refresh_from_db()
    pieces = Clip.objects.filter(catalogue=study.catalogue, meta={}).values_list("piece", flat=True)
    assert test.name not in pieces and len(pieces) == 3
