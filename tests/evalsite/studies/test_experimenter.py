"""Experimenter views: create, edit, status changes, uploads, trials, progress."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evalsite.datasets.catalog import datasets
from evalsite.stimuli.audio import playback_lufs
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Answer, Participant, Study, Trial
from evalsite.studies.progress import participant_counts
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.experimenter_personas import wav_bytes

pytestmark = pytest.mark.django_db


def _study_post(**overrides) -> dict:
    data = {
        "name": "Guitar study", "description": "", "instruments": ["guitar", "piano"],
        "consent_text": "You agree to take part.", "languages": ["en", "ja"],
        "screening": "on", "catch_identical": 2, "catch_attention": 1, "catch_repeat": 1,
        "min_catch_accuracy": 0.8, "max_same_position_share": 0.9, "min_median_rt_ms": 1000,
        "target_answers_per_trial": 7, "trials_per_participant": "", "refuse_phones": "on",
        "completion_code": "", "screen_out_code": "C1SCREEN", "prolific_completion_url": "https://app.prolific.com/submissions/complete?cc=ABC",
        "reservation_timeout_s": 1800, "loudness_target_lufs": -23, "practice_trials": 2,
        "min_listen_share": 0.9, "withdrawn_answers": "delete",
        "shared_with_names": "",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_it_creates_a_study_owned_by_the_researcher(client, alice, bob):
    client.force_login(alice)
    response = client.post(reverse("studies:study_create"), _study_post(shared_with_names="bob"))
    study = Study.objects.get(name="Guitar study")
    assert response.status_code == 302
    assert response["Location"] == reverse("studies:study_detail", args=[study.pk])
    assert study.owner == alice and study.status == "draft"
    assert study.instruments == ["guitar", "piano"]
    assert study.setting("target_answers_per_trial") == 7
    assert study.setting("catch") == {"identical": 2, "attention": 1, "repeat": 1}
    assert study.setting("screen_out_code") == "C1SCREEN"
    assert study.setting("exclusion")["min_catch_accuracy"] == 0.8
    assert list(study.shared_with.all()) == [bob]


def test_it_shows_the_participant_link_with_a_copy_button(client, alice, study):
    client.force_login(alice)
    html = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    assert f"http://testserver{reverse('studies:entry', args=[study.slug])}" in html
    assert 'id="copy-link"' in html


def test_it_names_the_field_and_expectation_on_bad_settings(client, alice):
    client.force_login(alice)
    post = _study_post(instruments=[], target_answers_per_trial=0, shared_with_names="nobody")
    response = client.post(reverse("studies:study_create"), post)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) >= {"instruments", "target_answers_per_trial", "shared_with_names"}
    assert "nobody" in str(errors["shared_with_names"])
    assert not Study.objects.exists()


def test_it_edits_settings_and_keeps_keys_it_does_not_show(client, alice, study):
    study.settings = {**study.settings, "lab_note": "booth 2"}
    study.save()
    client.force_login(alice)
    post = _study_post(name="Renamed", target_answers_per_trial=3, screening="")
    response = client.post(reverse("studies:study_edit", args=[study.pk]), post)
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.name == "Renamed" and study.setting("target_answers_per_trial") == 3
    assert study.setting("screening") is False
    assert study.settings["lab_note"] == "booth 2"


def test_it_keeps_sharing_unchanged_when_a_collaborator_edits(client, carol, study):
    client.force_login(carol)
    post = _study_post(shared_with_names="")  # the field is disabled for non-owners
    assert client.post(reverse("studies:study_edit", args=[study.pk]), post).status_code == 302
    assert list(study.shared_with.all()) == [carol]


def test_only_the_owner_can_change_the_studys_catalogue(client, alice, carol, study):
    private = Catalogue.objects.create(owner=alice, name="alice unpublished")
    client.force_login(carol)
    edit = reverse("studies:study_edit", args=[study.pk])
    field = client.get(edit).context["form"]["catalogue"]
    assert field.field.disabled and [c.pk for c in field.field.queryset] == [study.catalogue_id]
    assert "alice unpublished" not in field.as_widget()
    forged = _study_post(name=study.name, catalogue=private.pk)
    assert client.post(edit, forged).status_code == 302
    study.refresh_from_db()
    assert study.catalogue.name == "alice clips"
    client.force_login(alice)
    offered = client.get(edit).context["form"]["catalogue"].field
    assert not offered.disabled and set(offered.queryset) == {study.catalogue, private}
    client.post(edit, _study_post(name=study.name, catalogue=private.pk))
    study.refresh_from_db()
    assert study.catalogue == private


def _status(client, study, action):
    return client.post(reverse("studies:study_status", args=[study.pk]), {"action": action})


def test_it_opens_pauses_reopens_and_closes_a_study(client, alice, study):
    client.force_login(alice)
    for action, expected in [("open", "open"), ("pause", "paused"), ("open", "open"),
                             ("close", "closed")]:  # fmt: skip
        assert _status(client, study, action).status_code == 302
        study.refresh_from_db()
        assert study.status == expected, action


def test_it_refuses_to_reopen_a_closed_study_or_open_one_without_trials(client, alice, study):
    client.force_login(alice)
    study.status = "closed"
    study.save()
    _status(client, study, "open")
    study.refresh_from_db()
    assert study.status == "closed"
    empty = Study.objects.create(owner=alice, name="empty", instruments=["drums"])
    response = client.post(
        reverse("studies:study_status", args=[empty.pk]), {"action": "open"}, follow=True
    )
    assert "Add main trials" in response.content.decode()
    empty.refresh_from_db()
    assert empty.status == "draft"


def test_it_refuses_edits_to_a_closed_study(client, alice, study):
    study.status = "closed"
    study.save()
    client.force_login(alice)
    client.post(reverse("studies:study_edit", args=[study.pk]), _study_post(name="Changed"))
    study.refresh_from_db()
    assert study.name == "Drums and bass"


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


def test_it_adds_a_trial_from_the_form(client, alice, study):
    client.force_login(alice)
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue)[:3]
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "bass",
            "catch_kind": "", "expected": "", "model_choice": "", "model_margin": ""}  # fmt: skip
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 302
    trial = study.trials.latest("id")
    assert (trial.reference, trial.candidate_a, trial.instrument) == (ref, a, "bass")
    assert trial.model_choice is None and not trial.is_catch


def test_it_refuses_a_practice_trial_that_is_also_a_catch_trial(client, alice, study):
    client.force_login(alice)
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue)[:3]
    before = study.trials.count()
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "bass",
            "is_practice": "on", "catch_kind": "identical", "expected": "a", "model_choice": "",
            "model_margin": ""}  # fmt: skip
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 400
    assert "cannot be a catch trial" in " ".join(response.context["form"].errors["is_practice"])
    assert study.trials.count() == before


def test_it_refuses_clips_of_another_researcher_in_a_trial(client, alice, bob, study):
    from evalsite.stimuli.models import Catalogue

    foreign = Clip.objects.create(catalogue=Catalogue.objects.create(owner=bob, name="b"),
                                  status="ready", name="bob.wav")  # fmt: skip
    client.force_login(alice)
    ref, a = Clip.objects.filter(catalogue=study.catalogue)[:2]
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": foreign.pk,
            "instrument": "drums"}  # fmt: skip
    response = client.post(reverse("studies:trial_add", args=[study.pk]), data)
    assert response.status_code == 400
    assert "candidate_b" in response.context["form"].errors


def test_it_bulk_creates_trials_from_csv_and_names_bad_lines(client, alice, study):
    client.force_login(alice)
    c = list(Clip.objects.filter(catalogue=study.catalogue))
    before = study.trials.count()
    good = (f"reference,candidate_a,candidate_b,instrument,catch_kind,expected,model_choice\n"
            f"{c[0].token},{c[1].token},{c[2].token},drums,,,a\n"
            f"{c[3].name},{c[4].pk},{c[5].pk},bass,identical,b,\n")  # fmt: skip
    url = reverse("studies:trials_csv", args=[study.pk])
    response = client.post(url, {"csv_file": SimpleUploadedFile("t.csv", good.encode())})
    assert response.status_code == 302
    made = list(study.trials.order_by("-id")[:2])[::-1]
    assert study.trials.count() == before + 2
    assert made[0].model_choice == "a" and made[1].catch_kind == "identical" and made[1].is_catch
    bad = (f"reference,candidate_a,candidate_b,instrument\n"
           f"{c[0].token},{c[1].token},{c[2].token},drums\n"
           f"nope,{c[1].token},{c[2].token},vocals\n")  # fmt: skip
    response = client.post(url, {"csv_file": SimpleUploadedFile("bad.csv", bad.encode())})
    assert response.status_code == 400
    errors = " ".join(response.context["csv_form"].errors["csv_file"])
    assert "bad.csv, line 3: field 'reference' = 'nope'" in errors
    assert "field 'instrument' = 'vocals'" in errors
    assert study.trials.count() == before + 2  # nothing from a file with errors


def test_it_shows_live_progress_counts(client, alice, answered_study):
    client.force_login(alice)
    response = client.get(reverse("studies:progress", args=[answered_study.pk]))
    assert response.status_code == 200
    ctx = response.context
    assert ctx["participants"] == {"started": 4, "finished": 2, "screened_out": 1,
                                   "in_progress": 1, "inactive": 0, "other": 0,
                                   "early_answering": 0}  # fmt: skip
    assert ctx["n_answers"] == 16
    per = {r["instrument"]: (r["main"], r["catch"]) for r in ctx["per_instrument"]}
    assert per == {"drums": (6, 4), "bass": (4, 2)}  # p3 answered two drums mains
    catch = {r["kind"]: (r["n"], r["passed"]) for r in ctx["catch"]}
    assert catch == {"identical": (2, 2), "attention": (2, 2), "repeat": (2, 1)}
    assert sum(t.n_answers for t in ctx["per_trial"]) == 10
    assert f"/reports/{answered_study.pk}/" in response.content.decode()


def test_progress_leaves_answers_to_practice_trials_out_of_the_catch_rates(
    client, alice, answered_study
):
    # Practice trials marked as catch trials (the form and import refuse them now, earlier
    # studies may hold some): their answers count nowhere else, so not here either.
    main = answered_study.trials.filter(is_catch=False, is_practice=False).order_by("id")[0]
    p1 = answered_study.participants.get(external_pid="p1")
    clips = {"reference": main.reference, "candidate_a": main.candidate_a,
             "candidate_b": main.candidate_b, "instrument": "drums", "is_practice": True,
             "is_catch": True, "expected": "a"}  # fmt: skip
    practice = [
        Trial.objects.create(study=answered_study, catch_kind="identical", **clips),
        Trial.objects.create(study=answered_study, catch_kind="repeat", repeat_of=main, **clips),
    ]
    for index, trial in enumerate(practice, start=100):
        Answer.objects.create(
            participant=p1, trial=trial, trial_index=index, chosen="b", displayed_first="a",
            chosen_position="B", response_ms=1000, shown_at=timezone.now(),
        )  # fmt: skip
    client.force_login(alice)
    response = client.get(reverse("studies:progress", args=[answered_study.pk]))
    catch = {r["kind"]: (r["n"], r["passed"]) for r in response.context["catch"]}
    assert catch == {"identical": (2, 2), "attention": (2, 2), "repeat": (2, 1)}


def test_progress_counts_idle_participants_as_inactive_and_flags_early_answering_ones(
    client, alice, answered_study
):
    timeout = timedelta(seconds=int(answered_study.setting("reservation_timeout_s")))
    under_way = answered_study.participants.exclude(step__in=Participant.FINAL_STEPS)
    finished = answered_study.participants.filter(step=Participant.Step.DONE)
    long_ago = timezone.now() - timeout - timedelta(minutes=1)
    finished.update(last_seen_at=long_ago)  # a finished participant is never "inactive"
    assert participant_counts(answered_study)["inactive"] == 0
    under_way.update(last_seen_at=long_ago)
    counts = participant_counts(answered_study)
    assert counts["inactive"] == under_way.count() == counts["in_progress"] == 1
    client.force_login(alice)
    html = client.get(reverse("studies:progress", args=[answered_study.pk])).content.decode()
    assert "1 inactive" in html and 'id="early-answering"' not in html
    under_way.update(early_answers=3)
    assert participant_counts(answered_study)["early_answering"] == 1
    html = client.get(reverse("studies:progress", args=[answered_study.pk])).content.decode()
    assert "1 participant sent answers sooner than the clips can be played" in html


def test_the_overview_offers_a_fresh_preview_of_a_draft_study_only(client, carol, study):
    client.force_login(carol)  # shared with her: she may preview it too
    overview = reverse("studies:study_detail", args=[study.pk])
    first, second = (client.get(overview).context["preview_url"] for _ in range(2))
    assert first != second and "?pid=preview-" in first  # a new participant each time
    assert 'id="preview"' in client.get(overview).content.decode()
    study.status = Study.Status.OPEN
    study.save()
    assert 'id="preview"' not in client.get(overview).content.decode()


def test_it_lists_trials_and_counts_them_on_the_overview(client, alice, study):
    client.force_login(alice)
    html = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert html.count("<tr><td>") == Trial.objects.filter(study=study).count()
    overview = client.get(reverse("studies:study_detail", args=[study.pk]))
    assert overview.context["trial_counts"] == {"main": 4, "practice": 1, "catch": 3}


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


def test_it_explains_why_random_trials_cannot_be_drawn(client, alice):
    study = Study.objects.create(owner=alice, name="no clips", instruments=["drums"])
    client.force_login(alice)
    data = {"per_instrument": 2, "catch_per_kind": 1, "seed": 0}
    response = client.post(reverse("studies:trials_random", args=[study.pk]), data)
    assert response.status_code == 400
    assert "expected at least 3" in str(response.context["random_form"].non_field_errors())
    assert not study.trials.exists()


def test_it_refuses_an_oversized_file_before_decoding(
    client, alice, study, settings, tmp_path, monkeypatch
):
    from evalsite.studies import experimenter

    settings.MEDIA_ROOT = str(tmp_path)
    client.force_login(alice)
    big = wav_bytes(seconds=2.0)
    monkeypatch.setattr(experimenter, "MAX_UPLOAD_BYTES", len(big) - 1)
    upload = SimpleUploadedFile("big.wav", big, "audio/wav")
    url = reverse("studies:clips", args=[study.pk])
    response = client.post(url, {"files": [upload]}, follow=True)
    (result,) = response.context["results"]
    assert result["status"] == "failed" and result["error"].startswith("big.wav: ")
    assert "expected at most" in result["error"]
    assert "big.wav: " in response.content.decode()  # shown after the redirect, never stored
    assert not Clip.objects.filter(name="big.wav").exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # each request commits on its own connection
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
def test_it_draws_random_trials_once_when_the_form_is_sent_twice_at_once(alice, study, monkeypatch):
    from evalsite.studies import random_design

    empty = Study.objects.create(owner=alice, name="empty", instruments=["drums", "bass"],
                                 catalogue=study.catalogue)  # fmt: skip
    both_checked, mixes, statuses = threading.Barrier(2, timeout=60), random_design._mixes, []

    def mixes_together(catalogue):  # both draws are past every check made outside the lock
        both_checked.wait()
        return mixes(catalogue)

    def draw():
        try:
            researcher = Client()
            researcher.force_login(alice)
            url = reverse("studies:trials_random", args=[empty.pk])
            statuses.append(researcher.post(url, {"per_instrument": 3, "catch_per_kind": 1,
                                                  "seed": 0}).status_code)  # fmt: skip
        finally:
            connection.close()

    monkeypatch.setattr(random_design, "_mixes", mixes_together)
    threads = [threading.Thread(target=draw) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(statuses) == [302, 400]  # the second is told the study has trials
    assert empty.trials.filter(is_catch=False, is_practice=False).count() == 6
    assert empty.events.filter(kind="trials").count() == 1


def test_it_records_every_change_to_a_study_and_exports_the_history(
    client, alice, carol, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(alice)
    client.post(reverse("studies:study_create"), _study_post(target_answers_per_trial=7))
    study = Study.objects.get(name="Guitar study")
    data = {"per_instrument": 2, "catch_per_kind": 0, "seed": 3}
    client.force_login(carol)  # not shared: refused, nothing recorded
    assert client.post(reverse("studies:trials_random", args=[study.pk]), data).status_code == 404
    client.force_login(alice)
    edit = reverse("studies:study_edit", args=[study.pk])
    client.post(edit, _study_post(target_answers_per_trial=7))  # nothing changed: no event
    client.post(edit, _study_post(target_answers_per_trial=3, loudness_target_lufs=-30,
                                  consent_text="New consent.", instruments=["guitar"]))  # fmt: skip
    status = reverse("studies:study_status", args=[study.pk])
    client.post(status, {"action": "open"})  # refused (no trials): no event
    tones = [SimpleUploadedFile(f"{i}.wav", wav_bytes(freq=200 + 50 * i), "audio/wav")
             for i in range(6)]  # fmt: skip
    client.post(reverse("studies:clips", args=[study.pk]), {"files": tones})
    client.post(reverse("studies:trials_random", args=[study.pk]), data)
    client.post(status, {"action": "open"})

    config = json.loads(client.get(reverse("studies:export_file", args=[study.pk, "config.json"]))
                        .content)  # fmt: skip
    kinds = [(e["kind"], e["by"]) for e in config["history"]]
    assert kinds == [("created", "alice"), ("edited", "alice"), ("edited", "alice"),
                     ("trials", "alice"), ("status", "alice")]  # fmt: skip
    created, edited, uploaded, drawn, opened = (e["changes"] for e in config["history"])
    assert created["settings.target_answers_per_trial"] == [None, 7]
    assert edited == {"settings.target_answers_per_trial": [7, 3],
                      "settings.loudness_target_lufs": [-23.0, -30.0],
                      "consent_text": ["You agree to take part.", "New consent."],
                      "instruments": [["guitar", "piano"], ["guitar"]]}  # fmt: skip
    study.refresh_from_db()  # the first upload made the study's catalogue
    assert uploaded == {"catalogue": [None, study.catalogue_id]}
    assert drawn["how"] == "random" and drawn["seed"] == 3 and drawn["added"] > 0
    assert opened == {"status": ["draft", "open"]}
    assert all(e["at"].endswith("Z") for e in config["history"])
    page = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    assert "<code>settings.loudness_target_lufs</code>: -23.0 → -30.0" in page


def test_it_adds_ab_swapped_repeats_of_main_trials_without_one(client, alice, study):
    client.force_login(alice)
    url = reverse("studies:trials_repeats", args=[study.pk])
    before = set(study.trials.values_list("pk", flat=True))
    assert client.post(url, {"per_instrument": 5, "seed": 1}).status_code == 302
    made = study.trials.exclude(pk__in=before)
    originals = [t.repeat_of for t in made]
    # main[0] (drums) already had a repeat: the other three main trials get one each
    assert len(made) == 3 and all(t.catch_kind == "repeat" and t.is_catch for t in made)
    assert len(set(originals)) == 3 and all(not o.is_catch for o in originals)
    for t, o in zip(made, originals):
        assert (t.reference, t.candidate_a, t.candidate_b, t.instrument, t.model_choice) == (
            o.reference, o.candidate_a, o.candidate_b, o.instrument, o.model_choice)  # fmt: skip
    again = client.post(url, {"per_instrument": 5, "seed": 1})
    assert again.status_code == 400
    assert "no main trial without a repeat" in str(again.context["repeats_form"].non_field_errors())
    assert study.events.filter(kind="trials").count() == 1


def test_it_warns_when_the_trials_cannot_meet_the_catch_settings(client, alice, study):
    client.force_login(alice)
    url = reverse("studies:study_detail", args=[study.pk])
    assert b"shortfall" not in client.get(url).content  # 1 of each kind asked, 1 of each made
    study.settings = {**study.settings, "catch": {"identical": 1, "attention": 1, "repeat": 3}}
    study.save()
    page = client.get(url).content.decode()
    assert "ask for 3 repeat catch trial(s) per participant; the study has 1" in page
    assert page.count('class="error shortfall"') == 1


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
