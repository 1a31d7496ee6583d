"""Experimenter study pages (evalsite/studies/experimenter.py): create, edit, status changes,
overview, progress, history. Stimuli and trials pages: test_experimenter_stimuli.py and
test_experimenter_trials.py."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from evalsite.stimuli.models import Catalogue
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial
from evalsite.studies.progress import participant_counts
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.experimenter_personas import wav_bytes
from tests.evalsite.studies.form_pages import page_version

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
    post = _study_post(name="Renamed", instruments=["drums", "bass"], target_answers_per_trial=3,
                       screening="", version=page_version(client, study))  # fmt: skip
    response = client.post(reverse("studies:study_edit", args=[study.pk]), post)
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.name == "Renamed" and study.setting("target_answers_per_trial") == 3
    assert study.setting("screening") is False
    assert study.settings["lab_note"] == "booth 2"


def test_it_edits_exclusion_and_catch_keeping_their_keys_it_does_not_show(client, alice, study):
    # Keys set in the admin or by an import: the report reads fast_ms, a later version may
    # read a new catch kind. A save through the form changes only what the form shows.
    study.settings = {**study.settings, "exclusion": {"fast_ms": 300, "min_catch_accuracy": 0.5},
                      "catch": {"identical": 3, "glitch": 2}}  # fmt: skip
    study.save()
    client.force_login(alice)
    post = _study_post(instruments=study.instruments, min_catch_accuracy=0.8, catch_identical=2,
                       version=page_version(client, study))  # fmt: skip
    assert client.post(reverse("studies:study_edit", args=[study.pk]), post).status_code == 302
    study.refresh_from_db()
    assert study.settings["exclusion"] == {
        "fast_ms": 300, "min_catch_accuracy": 0.8, "max_same_position_share": 0.9,
        "min_median_rt_ms": 1000,
    }  # fmt: skip
    assert study.settings["catch"] == {"identical": 2, "attention": 1, "repeat": 1, "glitch": 2}
    changed = study.events.get(kind="edited").changes
    assert changed["settings.exclusion.min_catch_accuracy"] == [0.5, 0.8]
    assert changed["settings.catch.identical"] == [3, 2]
    assert not any("fast_ms" in key or "glitch" in key for key in changed)


def test_a_refused_edit_shows_the_study_as_saved_around_the_form(client, alice, study):
    client.force_login(alice)
    post = _study_post(name="Unsaved name", target_answers_per_trial=0,
                       version=page_version(client, study))  # fmt: skip
    response = client.post(reverse("studies:study_edit", args=[study.pk]), post)
    assert (
        response.status_code == 200
        and "target_answers_per_trial" in response.context["form"].errors
    )
    html = response.content.decode()
    assert "<title>Settings · Drums and bass · csn-eval</title>" in html
    assert "Studies</a> / Drums and bass" in html
    assert html.count("Unsaved name") == 1  # only in the form's name field, as typed
    study.refresh_from_db()
    assert study.name == "Drums and bass"


def test_it_keeps_sharing_unchanged_when_a_collaborator_edits(client, carol, study):
    client.force_login(carol)
    # the field is disabled for non-owners
    post = _study_post(instruments=["drums", "bass"], shared_with_names="",
                       version=page_version(client, study))  # fmt: skip
    assert client.post(reverse("studies:study_edit", args=[study.pk]), post).status_code == 302
    assert list(study.shared_with.all()) == [carol]


@pytest.mark.parametrize("status", ["draft", "open", "paused"])
def test_it_refuses_removing_an_instrument_the_studys_trials_judge(client, alice, study, status):
    Study.objects.filter(pk=study.pk).update(status=status)
    client.force_login(alice)
    edit = reverse("studies:study_edit", args=[study.pk])
    version = page_version(client, study)
    response = client.post(
        edit, _study_post(name=study.name, instruments=["drums"], version=version)
    )
    assert response.status_code == 200
    then = {
        "draft": "keep bass, or delete the study's trials first (Trials page, Delete all trials).",
        "open": "keep bass: trials cannot be deleted once the study has been opened.",
        "paused": "keep bass: trials cannot be deleted once the study has been opened.",
    }[status]
    assert response.context["form"].errors["instruments"] == [
        "bass is judged in 3 of the study's trials: participants would get them while the "
        f"instructions no longer name it; {then}"
    ]
    response = client.post(
        edit, _study_post(name=study.name, instruments=["piano"], version=version)
    )
    errors = response.context["form"].errors["instruments"]
    assert [e.split(":")[0] for e in errors] == [
        "bass is judged in 3 of the study's trials",
        "drums is judged in 5 of the study's trials",
    ]
    study.refresh_from_db()
    assert study.instruments == ["drums", "bass"]
    assert not study.events.exists()


def test_it_lets_an_instrument_be_added_to_a_study_with_trials(client, alice, study):
    Study.objects.filter(pk=study.pk).update(status="open")
    client.force_login(alice)
    post = _study_post(name=study.name, instruments=["drums", "bass", "piano"],
                       version=page_version(client, study))  # fmt: skip
    assert client.post(reverse("studies:study_edit", args=[study.pk]), post).status_code == 302
    study.refresh_from_db()
    assert study.instruments == ["drums", "bass", "piano"]
    changed = study.events.get().changes["instruments"]
    assert changed == [["drums", "bass"], ["drums", "bass", "piano"]]
    empty = Study.objects.create(owner=alice, name="empty", instruments=["drums", "bass"])
    post = _study_post(name=empty.name, instruments=["guitar"],  # no trial judges either
                       version=page_version(client, empty))  # fmt: skip
    assert client.post(reverse("studies:study_edit", args=[empty.pk]), post).status_code == 302


def test_only_the_owner_can_change_the_studys_catalogue(client, alice, carol, study):
    private = Catalogue.objects.create(owner=alice, name="alice unpublished")
    client.force_login(carol)
    edit = reverse("studies:study_edit", args=[study.pk])
    field = client.get(edit).context["form"]["catalogue"]
    assert field.field.disabled and [c.pk for c in field.field.queryset] == [study.catalogue_id]
    assert "alice unpublished" not in field.as_widget()
    forged = _study_post(name=study.name, instruments=study.instruments, catalogue=private.pk,
                         version=page_version(client, study))  # fmt: skip
    assert client.post(edit, forged).status_code == 302
    study.refresh_from_db()
    assert study.catalogue.name == "alice clips"
    client.force_login(alice)
    offered = client.get(edit).context["form"]["catalogue"].field
    assert not offered.disabled and set(offered.queryset) == {study.catalogue, private}
    version = page_version(client, study)
    client.post(edit, _study_post(name=study.name, instruments=study.instruments,
                                  catalogue=private.pk, version=version))  # fmt: skip
    study.refresh_from_db()
    assert study.catalogue == private


def _status(client, study, action):
    data = {"action": action, **({"confirm": "yes"} if action == "close" else {})}
    return client.post(reverse("studies:study_status", args=[study.pk]), data)


@pytest.mark.parametrize("status", ["draft", "open", "paused"])
def test_it_closes_a_study_only_once_the_close_is_confirmed(client, alice, study, status):
    Study.objects.filter(pk=study.pk).update(status=status)
    client.force_login(alice)
    url = reverse("studies:study_status", args=[study.pk])
    asked = client.post(url, {"action": "close"})
    study.refresh_from_db()
    assert asked.status_code == 200 and study.status == status
    html = asked.content.decode()
    assert 'id="close-confirm"' in html
    assert "cannot be reopened" in html and "No new participant can start it" in html
    assert 'name="confirm" value="yes"' in html
    assert not study.events.filter(kind="status").exists()
    assert client.post(url, {"action": "close", "confirm": "yes"}).status_code == 302
    study.refresh_from_db()
    assert study.status == "closed"
    assert list(study.events.filter(kind="status").values_list("changes", flat=True)) == [
        {"status": [status, "closed"]}
    ]


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
    client.force_login(alice)
    post = _study_post(name="Changed", version=page_version(client, study))  # loaded while open
    study.status = "closed"
    study.save()
    client.post(reverse("studies:study_edit", args=[study.pk]), post)
    study.refresh_from_db()
    assert study.name == "Drums and bass"


def test_a_closed_studys_pages_show_what_it_holds_and_offer_no_change(client, alice, study):
    study.status = "closed"
    study.save()
    client.force_login(alice)
    html = client.get(reverse("studies:study_edit", args=[study.pk])).content.decode()
    form = html[html.index('<form method="post" class="form-grid"') :]
    form = form[: form.index("</form>")]
    fields = re.findall(r"<(?:input|select|textarea)\b[^>]*>", form)
    fields = [f for f in fields if 'type="hidden"' not in f]  # the CSRF token
    assert len(fields) > 20 and all(" disabled" in f for f in fields)
    assert "<button" not in form and 'value="Drums and bass"' in form
    assert 'id="study-closed"' in html
    pages = {"clips": 'name="files"', "dataset_import": 'name="split"',
             "trials": reverse("studies:trials_random", args=[study.pk])}  # fmt: skip
    for page, offered in pages.items():
        html = client.get(reverse(f"studies:{page}", args=[study.pk])).content.decode()
        assert offered not in html and 'id="study-closed"' in html, page
        assert "can no longer be changed" in html, page
    study.status = "paused"
    study.save()
    for page, offered in pages.items():
        html = client.get(reverse(f"studies:{page}", args=[study.pk])).content.decode()
        assert offered in html and 'id="study-closed"' not in html, page


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
    assert participant_counts(answered_study)["inactive"] == 0  # its trials are still reserved
    Assignment.objects.filter(participant__in=under_way).update(reserved_until=long_ago)
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
    unchanged = _study_post(target_answers_per_trial=7, version=page_version(client, study))
    assert client.post(edit, unchanged).status_code == 302  # nothing changed: no event
    client.post(edit, _study_post(target_answers_per_trial=3, loudness_target_lufs=-30,
                                  consent_text="New consent.", instruments=["guitar"],
                                  version=page_version(client, study)))  # fmt: skip
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


def test_it_warns_when_the_trials_cannot_meet_the_catch_settings(client, alice, study):
    client.force_login(alice)
    url = reverse("studies:study_detail", args=[study.pk])
    assert b"shortfall" not in client.get(url).content  # 1 of each kind asked, 1 of each made
    study.settings = {**study.settings, "catch": {"identical": 1, "attention": 1, "repeat": 3}}
    study.save()
    page = client.get(url).content.decode()
    assert "ask for 3 repeat catch trial(s) per participant; the study has 1" in page
    assert page.count('class="error shortfall"') == 1


def test_it_says_when_recurring_references_shorten_a_participants_trials(client, alice, study):
    client.force_login(alice)
    url = reverse("studies:study_detail", args=[study.pk])
    first = study.trials.get(instrument="drums", is_catch=False, is_practice=False,
                             model_margin=0.4)  # fmt: skip
    other = study.trials.get(catch_kind="identical").reference  # a clip of another piece
    Trial.objects.create(study=study, instrument="drums", reference=first.reference,
                         candidate_a=first.candidate_b, candidate_b=other)  # fmt: skip
    page = client.get(url).content.decode()
    assert (
        "Each participant gets at most 4 main trials (drums 2, bass 2), not all 5 of the "
        "study&#x27;s: main trials of one instrument whose references are of one piece go to "
        "different participants"
    ) in page
    assert page.count('class="error shortfall"') == 1
    study.settings = {**study.settings, "trials_per_participant": 3}
    study.save()
    assert "shortfall" not in client.get(url).content.decode()  # 3 asked: 3 given


@pytest.mark.parametrize("status", ["draft", "paused", "closed"])
def test_the_overview_says_what_the_status_means_for_participants(client, alice, study, status):
    """Closing is final: a closed study's overview never says it can be opened."""
    study.status = status
    study.save()
    client.force_login(alice)
    html = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    reopen = f"The study is {status}: participants cannot start it until it is opened."
    final = "The study is closed: participants can no longer start it, and it cannot be opened"
    assert (reopen in html, final in html) == (status != "closed", status == "closed")
