"""Study settings that participants under way depend on: the loudness target cannot change once a
participant has set their volume at it (the volume calibration), since their trials would then
play at another level than they calibrated to."""

from __future__ import annotations

import json
import threading

import pytest
from django import forms
from django.db import connection
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Answer, Participant, Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.form_pages import settings_page_values
from tests.evalsite.studies.participant_steps import (
    answer_questionnaire,
    pass_browser_check,
    to_step,
)
from tests.lock_waits import until_blocked

pytestmark = pytest.mark.django_db

CALIBRATED = ["calibration", "screening", "instructions", "practice", "trials", "done",
              "screened_out"]  # fmt: skip
# "withdrawn": left with no answer kept (those with answers: below)
NOT_YET = ["browser_check", "consent", "questionnaire", "declined", "refused", "full", "withdrawn"]


def _edit(client, study: Study, **changes):
    client.force_login(study.owner)
    values = settings_page_values(client, study) | {k: str(v) for k, v in changes.items()}
    return client.post(reverse("studies:study_edit", args=[study.pk]), values)


def test_it_refuses_a_new_loudness_target_once_a_participant_has_calibrated(
    client, listening_study
):
    p = enter(client, listening_study, pid="under-way")
    to_step(client, p, "instructions")  # set their volume at -23 LUFS
    response = _edit(client, listening_study, loudness_target_lufs=-35)
    assert response.status_code == 200
    (error,) = response.context["form"].errors["loudness_target_lufs"]
    assert error.startswith(
        "1 participant has set their volume at -23.0 LUFS (the volume calibration)"
    )
    assert "make a new study with the new target" in error
    listening_study.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -23.0
    assert not listening_study.events.exists()


def test_it_saves_other_edits_of_a_running_study_at_the_same_target(client, listening_study):
    p = enter(client, listening_study, pid="under-way")
    to_step(client, p, "instructions")
    response = _edit(client, listening_study, description="Read carefully.")
    assert response.status_code == 302
    listening_study.refresh_from_db()
    assert listening_study.description == "Read carefully."


@pytest.mark.parametrize("step", CALIBRATED)
def test_a_participant_from_the_calibration_on_holds_the_target(client, listening_study, step):
    Participant.objects.create(study=listening_study, seed=1, step=step)
    assert _edit(client, listening_study, loudness_target_lufs=-30).status_code == 200
    listening_study.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -23.0


@pytest.mark.parametrize("step", NOT_YET)
def test_the_target_may_change_until_someone_calibrates(client, listening_study, step):
    Participant.objects.create(study=listening_study, seed=1, step=step)
    pass_browser_check(client, enter(client, listening_study, pid="at-consent"))
    assert _edit(client, listening_study, loudness_target_lufs=-30).status_code == 302
    listening_study.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -30.0


def test_a_participant_who_left_keeping_their_answers_holds_the_target(client, listening_study):
    # left with "keep": their answers, heard at -23, stay in the data
    p = Participant.objects.create(
        study=listening_study, seed=1, step="withdrawn", withdrawn_answers="keep"
    )
    trial = listening_study.trials.filter(is_practice=False).first()
    Answer.objects.create(participant=p, trial=trial, trial_index=0, chosen="a",
                          chosen_position="A", displayed_first="a")  # fmt: skip
    assert _edit(client, listening_study, loudness_target_lufs=-30).status_code == 200


def test_a_researchers_preview_does_not_hold_the_target(client, listening_study):
    Study.objects.filter(pk=listening_study.pk).update(status=Study.Status.DRAFT)
    listening_study.refresh_from_db()
    Participant.objects.create(study=listening_study, seed=1, step="trials", is_preview=True)
    assert _edit(client, listening_study, loudness_target_lufs=-30).status_code == 302


def _admin_save(client, django_user_model, study: Study, **settings):
    """Post the study's Django admin page back as it shows it, with `settings` merged into the
    raw settings JSON."""
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(root)
    url = reverse("admin:studies_study_change", args=[study.pk])
    form = client.get(url).context["adminform"].form
    data = {}
    for bound in form:
        value = bound.value()
        if value is None or bound.field.disabled:
            continue
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[bound.name] = "on"
        elif isinstance(value, list | tuple):
            data[bound.name] = [str(v) for v in value]
        else:
            data[bound.name] = str(value)
    data["settings"] = json.dumps({**(study.settings or {}), **settings})
    return client.post(url, data)


def test_the_admin_refuses_a_new_loudness_target_once_a_participant_has_calibrated(
    client, django_user_model, listening_study
):
    Participant.objects.create(study=listening_study, seed=1, step="trials")
    Participant.objects.create(study=listening_study, seed=2, step="instructions")
    response = _admin_save(client, django_user_model, listening_study, loudness_target_lufs=-35)
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["settings"]
    assert error.startswith(
        "loudness_target_lufs: 2 participants have set their volume at -23.0 LUFS (the volume "
        "calibration)"
    )
    listening_study.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -23.0


def test_the_admin_saves_a_new_loudness_target_before_anyone_calibrated(
    client, django_user_model, listening_study
):
    Participant.objects.create(study=listening_study, seed=1, step="consent")
    Participant.objects.create(study=listening_study, seed=2, step="trials", is_preview=True)
    response = _admin_save(client, django_user_model, listening_study, loudness_target_lufs=-30)
    assert response.status_code == 302
    listening_study.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -30


def test_a_participant_calibrating_while_the_save_waits_for_the_lock_holds_the_target(
    client, listening_study, monkeypatch
):
    """The form's check runs before the Save takes the study's row lock; a participant who
    reaches the calibration in between is counted by the check made again on the locked row,
    and the Save is refused with the form's message."""
    from evalsite.studies import experimenter

    p = Participant.objects.create(study=listening_study, seed=1, step="questionnaire")
    lock_editable = experimenter.lock_editable

    def participant_calibrates_meanwhile(request, study):
        Participant.objects.filter(pk=p.pk).update(step="calibration")
        return lock_editable(request, study)

    monkeypatch.setattr(experimenter, "lock_editable", participant_calibrates_meanwhile)
    response = _edit(client, listening_study, loudness_target_lufs=-35, description="New.")
    assert response.status_code == 200
    (error,) = response.context["form"].errors["loudness_target_lufs"]
    assert error.startswith(
        "1 participant has set their volume at -23.0 LUFS (the volume calibration)"
    )
    listening_study.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -23.0
    assert listening_study.description == "" and not listening_study.events.exists()


def test_the_admin_checks_the_target_against_the_stored_one_not_the_one_its_page_read(
    client, django_user_model, listening_study, monkeypatch
):
    """An admin Save of the target its page read (-23) after the settings page changed it to
    -30 and a participant set their volume at -30: refused (the check reads the locked row),
    where comparing with the page's -23 saw no change and wrote -23 under the participant."""
    from evalsite.studies.admin import StudyAdmin

    get_object = StudyAdmin.get_object

    def changed_meanwhile(self, request, *args, **kwargs):
        obj = get_object(self, request, *args, **kwargs)  # the admin's copy, read before them
        if request.method != "POST":
            return obj
        stored = Study.objects.get(pk=listening_study.pk)
        Study.objects.filter(pk=stored.pk).update(
            settings={**stored.settings, "loudness_target_lufs": -30.0}
        )
        Participant.objects.create(study=listening_study, seed=1, step="calibration")
        return obj

    monkeypatch.setattr(StudyAdmin, "get_object", changed_meanwhile)
    response = _admin_save(client, django_user_model, listening_study, loudness_target_lufs=-23)
    monkeypatch.undo()
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["settings"]
    assert error.startswith(
        "loudness_target_lufs: 1 participant has set their volume at -30.0 LUFS"
    )
    listening_study.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -30.0


def _calibration_sound(client, p: Participant) -> bytes:
    response = client.get(reverse("studies:calibration_audio", args=[p.token]))
    assert response.status_code == 200
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db(transaction=True)
def test_a_participant_calibrating_while_a_save_commits_hears_the_target_saved(
    listening_study, monkeypatch
):
    """A participant moving to the calibration after a Save's check on the locked row and before
    its commit waits for the commit (its move takes the study's row lock too), so the calibration
    sound it is then served is at the target saved. Without the wait it moved at once, was served
    the noise at the old target, and the Save then changed it under the participant's volume."""
    from evalsite.studies import experimenter

    participant_client = Client()
    p = enter(participant_client, listening_study, pid="between")
    to_step(participant_client, p, "questionnaire")
    checked, go, heard = threading.Event(), threading.Event(), {}
    record = experimenter.history.record

    def hold_before_commit(*args, **kwargs):  # the Save's check passed; its write is not committed
        checked.set()
        go.wait(timeout=30)
        return record(*args, **kwargs)

    def saving():
        try:
            _edit(Client(), listening_study, loudness_target_lufs=-35)
        finally:
            connection.close()

    def calibrating():
        try:
            answer_questionnaire(participant_client, p)
            heard["sound"] = _calibration_sound(participant_client, p)
        finally:
            connection.close()

    monkeypatch.setattr(experimenter.history, "record", hold_before_commit)
    save = threading.Thread(target=saving)
    save.start()
    assert checked.wait(timeout=30)
    participant = threading.Thread(target=calibrating)
    participant.start()
    until_blocked(participant, 30)  # its move waits for the Save's lock, or it moved at once
    go.set()
    for thread in (save, participant):
        thread.join(timeout=30)
        assert not thread.is_alive()
    listening_study.refresh_from_db()
    p.refresh_from_db()
    assert listening_study.setting("loudness_target_lufs") == -35.0 and p.step == "calibration"
    assert heard["sound"] == _calibration_sound(participant_client, p)
