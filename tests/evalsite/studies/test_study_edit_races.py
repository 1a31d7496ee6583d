"""Saving a live study's settings while something else changes it (evalsite/studies/experimenter.py,
`study_edit`): a Close or Pause that commits during the Save stays in force, and a Save from a
page loaded before another researcher's Save (or before the first upload made the catalogue)
undoes nothing: it is shown again, naming what changed meanwhile and by whom."""

from __future__ import annotations

import re
import threading
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from evalsite.studies.forms import StudyForm
from evalsite.studies.models import Study
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.form_pages import page_values_of, settings_page_values

pytestmark = pytest.mark.django_db


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _open(study: Study) -> None:
    study.status = Study.Status.OPEN
    study.save()


@pytest.mark.parametrize("action", ["close", "pause"])
def test_a_save_while_a_close_or_pause_commits_leaves_the_study_closed_or_paused(
    alice, carol, study, action
):
    _open(study)
    owner, shared = _logged_in(alice), _logged_in(carol)
    page = settings_page_values(shared, study) | {"description": "typo fixed"}
    validate = StudyForm.is_valid

    def status_change_meanwhile(form):  # alice's button, while carol's Save is validated
        posted = {"action": action, "confirm": "yes"}
        owner.post(reverse("studies:study_status", args=[study.pk]), posted)
        return validate(form)

    with mock.patch.object(StudyForm, "is_valid", status_change_meanwhile):
        response = shared.post(reverse("studies:study_edit", args=[study.pk]), page)
    study.refresh_from_db()
    expected = {"close": Study.Status.CLOSED, "pause": Study.Status.PAUSED}[action]
    assert study.status == expected
    assert [e.kind for e in study.events.order_by("id")] == ["status"] + (
        ["edited"] if action == "pause" else []
    )
    messages = [str(m) for m in response.wsgi_request._messages]
    if action == "close":  # refused: a closed study's settings are fixed
        assert response.status_code == 302 and study.description == ""
        assert messages == ["Study 'Drums and bass' is closed; it can no longer be changed."]
    else:  # a paused study may still be edited: the edit is saved, the pause kept
        assert study.description == "typo fixed" and messages == ["Study saved."]


def _send(gate: threading.Barrier, client: Client, url: str, data: dict) -> None:
    gate.wait()
    client.post(url, data)
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_save_and_a_close_sent_together_never_reopen_the_study(alice, carol, study):
    owner, shared = _logged_in(alice), _logged_in(carol)
    for round_ in range(12):
        Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN)
        page = settings_page_values(shared, study) | {"description": f"edit {round_}"}
        gate = threading.Barrier(2)
        edit = (shared, reverse("studies:study_edit", args=[study.pk]), page)
        close = (owner, reverse("studies:study_status", args=[study.pk]),
                 {"action": "close", "confirm": "yes"})  # fmt: skip
        threads = [threading.Thread(target=_send, args=(gate, *a)) for a in (edit, close)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        study.refresh_from_db()
        assert study.status == Study.Status.CLOSED, f"round {round_}: reopened"


def _edit(client: Client, study: Study, data: dict):
    return client.post(reverse("studies:study_edit", args=[study.pk]), data)


def test_a_save_from_a_page_loaded_before_anothers_save_is_shown_again_and_saves_nothing(
    alice, carol, study
):
    _open(study)
    owner, shared = _logged_in(alice), _logged_in(carol)
    alices, carols = settings_page_values(owner, study), settings_page_values(shared, study)
    alices |= {"target_answers_per_trial": "40", "min_listen_share": "0.5"}
    assert _edit(owner, study, alices).status_code == 302
    carols |= {"consent_text": "Updated consent."}  # from the page opened before alice's Save
    response = _edit(shared, study, carols)
    assert response.status_code == 409
    study.refresh_from_db()
    assert (study.setting("target_answers_per_trial"), study.setting("min_listen_share")) == (
        40,
        0.5,
    )
    assert study.consent_text == "" and study.events.filter(user=carol).count() == 0
    form = response.context["form"]
    html = response.content.decode()
    assert '<div role="alert">' in html and 'type="hidden" name="version"' in html
    (said,) = form.non_field_errors()
    assert said.startswith(
        "Not saved: alice changed Minimum listening before an answer (share), Target answers "
        "per trial since you opened this page."
    )
    # carol's own change kept, alice's shown instead of the stale values
    assert form["consent_text"].value() == "Updated consent."
    assert (form["target_answers_per_trial"].value(), form["min_listen_share"].value()) == (
        "40",
        "0.5",
    )
    again = _edit(shared, study, page_values_of(form))  # Save on the page shown again
    assert again.status_code == 302
    study.refresh_from_db()
    assert study.consent_text == "Updated consent."
    assert (study.setting("target_answers_per_trial"), study.setting("min_listen_share")) == (
        40,
        0.5,
    )


def test_a_field_both_researchers_changed_keeps_the_later_ones_input_and_names_the_saved_value(
    alice, carol, study
):
    owner, shared = _logged_in(alice), _logged_in(carol)
    alices, carols = settings_page_values(owner, study), settings_page_values(shared, study)
    assert _edit(owner, study, alices | {"target_answers_per_trial": "40"}).status_code == 302
    response = _edit(shared, study, carols | {"target_answers_per_trial": "5"})
    assert response.status_code == 409
    (said,) = response.context["form"].non_field_errors()
    assert "You changed Target answers per trial too: your value is shown (alice saved 40)" in said
    assert response.context["form"]["target_answers_per_trial"].value() == "5"
    study.refresh_from_db()
    assert study.setting("target_answers_per_trial") == 40


def test_a_stale_owner_page_keeps_the_catalogue_the_first_upload_made(alice, carol):
    from django.core.files.uploadedfile import SimpleUploadedFile

    study = Study.objects.create(owner=alice, name="New", instruments=["drums"])
    study.shared_with.add(carol)
    owner, shared = _logged_in(alice), _logged_in(carol)
    # Alice's page is loaded before the first upload made the study's catalogue.
    alices = settings_page_values(owner, study) | {"description": "Instructions."}
    upload = {"files": [SimpleUploadedFile("x.wav", wav_bytes(), "audio/wav")]}  # noqa: F405
    shared.post(reverse("studies:clips", args=[study.pk]), upload)
    study.refresh_from_db()
    catalogue = study.catalogue_id
    assert catalogue is not None
    response = _edit(owner, study, alices)
    assert response.status_code == 409
    (said,) = response.context["form"].non_field_errors()
    assert said.startswith("Not saved: carol changed Catalogue since you opened this page.")
    again = _edit(owner, study, page_values_of(response.context["form"]))
    assert again.status_code == 302
    study.refresh_from_db()
    assert (study.catalogue_id, study.description) == (catalogue, "Instructions.")


@pytest.mark.parametrize("whose", ["forged", "another study's"])
def test_a_page_version_that_is_not_the_sites_for_the_study_is_refused(alice, study, whose):
    owner = _logged_in(alice)
    other = Study.objects.create(owner=alice, name="Other", instruments=["drums"])
    version = {
        "forged": "forged",
        "another study's": settings_page_values(owner, other)["version"],
    }[whose]
    page = settings_page_values(owner, study) | {"version": version, "description": "x"}
    response = _edit(owner, study, page)
    assert response.status_code == 200
    assert response.context["form"].errors["version"] == [
        "This page's version is not one the site made for this study; reload the page and edit "
        "again."
    ]
    study.refresh_from_db()
    assert study.description == ""


def test_a_save_without_the_pages_version_saves_nothing_and_says_why(alice, study):
    """The version is the page's precondition (If-Match, as it were): a POST without it, from a
    script or a page from before versions, could not be checked against the study as loaded,
    so it is refused (428 Precondition Required) instead of being saved unchecked."""
    owner = _logged_in(alice)
    page = settings_page_values(owner, study) | {"description": "written by a script"}
    del page["version"]
    response = _edit(owner, study, page)
    assert response.status_code == 428
    assert response.context["form"].errors["version"] == [
        "Not saved: this Save carried no page version, so it could not be checked against "
        "changes made since the page was loaded. Reload the page and edit again."
    ]
    assert "Not saved: this Save carried no page version" in response.content.decode()
    study.refresh_from_db()
    assert study.description == "" and not study.events.filter(kind="edited").exists()
    reloaded = settings_page_values(owner, study) | {"description": "written by a script"}
    assert _edit(owner, study, reloaded).status_code == 302  # the page itself sends its version
    study.refresh_from_db()
    assert study.description == "written by a script"


def test_a_save_committing_while_the_page_is_shown_again_is_not_undone_by_its_save(
    alice, carol, study, monkeypatch
):
    """The page shown again is built from the state the conflict was found in (under the row
    lock): a Save that commits after that lock is released is not in its version, so the next
    Save from that page meets it instead of writing the page's stale value over it."""
    from evalsite.studies import experimenter

    _open(study)
    owner, shared = _logged_in(alice), _logged_in(carol)
    alices = settings_page_values(owner, study)  # alice's page, loaded first
    carols = settings_page_values(shared, study)
    assert _edit(shared, study, carols | {"target_answers_per_trial": "40"}).status_code == 302
    carols = settings_page_values(shared, study)  # carol reloads her page
    save_edit = experimenter._save_edit

    def carol_saves_again_meanwhile(*args, **kwargs):
        found = save_edit(*args, **kwargs)  # alice's Save met carol's first, lock released
        monkeypatch.undo()  # carol's Save below goes the usual way
        carols_second = carols | {"consent_text": "Carol's consent."}
        assert _edit(shared, study, carols_second).status_code == 302
        return found

    monkeypatch.setattr(experimenter, "_save_edit", carol_saves_again_meanwhile)
    response = _edit(owner, study, alices | {"name": "Alice's name"})
    assert response.status_code == 409
    form = response.context["form"]
    (said,) = form.non_field_errors()
    assert said.startswith("Not saved: carol changed Target answers per trial since you opened")
    assert form["target_answers_per_trial"].value() == "40"
    again = _edit(owner, study, page_values_of(form))  # alice saves the page shown again
    assert again.status_code == 409
    (said,) = again.context["form"].non_field_errors()
    assert said.startswith("Not saved: carol changed Consent text since you opened this page.")
    study.refresh_from_db()
    assert (study.name, study.consent_text) == ("Drums and bass", "Carol's consent.")
    third = _edit(owner, study, page_values_of(again.context["form"]))
    assert third.status_code == 302
    study.refresh_from_db()
    assert (study.name, study.consent_text) == ("Alice's name", "Carol's consent.")
    assert study.setting("target_answers_per_trial") == 40


def test_the_same_page_saved_twice_is_saved_not_refused(alice, study):
    """A double click or a resend posts the page again after its first Save committed: the only
    change since the page loaded is that Save's, with the values this POST proposes, so the
    result is the same and the second POST saves (nothing more) instead of a 409 naming the
    user's own Save."""
    owner = _logged_in(alice)
    page = settings_page_values(owner, study) | {"name": "Renamed", "consent_text": "Agree?"}
    assert _edit(owner, study, page).status_code == 302
    events = study.events.count()
    second = _edit(owner, study, page)
    assert second.status_code == 302
    study.refresh_from_db()
    assert (study.name, study.consent_text) == ("Renamed", "Agree?")
    assert study.events.count() == events  # the second Save changed nothing


def test_a_save_meeting_anothers_change_to_the_value_it_proposes_too_is_saved(alice, carol, study):
    owner, shared = _logged_in(alice), _logged_in(carol)
    alices, carols = settings_page_values(owner, study), settings_page_values(shared, study)
    assert _edit(owner, study, alices | {"target_answers_per_trial": "40"}).status_code == 302
    carols |= {"target_answers_per_trial": "40", "description": "Listen twice."}
    assert _edit(shared, study, carols).status_code == 302
    study.refresh_from_db()
    assert (study.setting("target_answers_per_trial"), study.description) == (40, "Listen twice.")


def test_a_save_meeting_a_change_it_proposes_and_one_it_does_not_is_shown_again(
    alice, carol, study
):
    owner, shared = _logged_in(alice), _logged_in(carol)
    alices, carols = settings_page_values(owner, study), settings_page_values(shared, study)
    alices |= {"target_answers_per_trial": "40", "consent_text": "Alice's consent."}
    assert _edit(owner, study, alices).status_code == 302
    response = _edit(shared, study, carols | {"target_answers_per_trial": "40"})
    assert response.status_code == 409
    (said,) = response.context["form"].non_field_errors()
    assert said.startswith("Not saved: alice changed Consent text, Target answers per trial")
    study.refresh_from_db()
    assert study.consent_text == "Alice's consent."


def test_the_settings_form_is_sent_once_by_the_script_that_disables_its_button(alice, study):
    owner = _logged_in(alice)
    html = owner.get(reverse("studies:study_edit", args=[study.pk])).content.decode()
    (form,) = re.findall(r"<form [^>]*>", html.split("<main", 1)[1])
    assert "data-submit-once" in form
    assert 'src="/static/studies/submit-once.js"' in html
