"""Deleting a draft study's trials (experimenter_trials.trials_delete), and the messages that
send researchers there: removing a judged instrument, drawing into a study with trials."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from evalsite.reports.models import ReportSnapshot
from evalsite.stimuli.models import Clip
from evalsite.studies.models import Answer, Assignment, Participant, Study, StudyFold
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def _delete(client, study, **data):
    if data.get("confirm") == "yes":  # as the confirmation page sends it
        data.setdefault("n_trials", study.trials.count())
    return client.post(reverse("studies:trials_delete", args=[study.pk]), data)


def _preview_with_an_answer(study) -> Participant:
    trial = study.trials.filter(is_practice=False).first()
    now = timezone.now()
    p = Participant.objects.create(study=study, external_pid="preview-1", is_preview=True)
    Assignment.objects.create(participant=p, trial=trial, index=0, displayed_first="a",
                              reserved_until=now, shown_at=now)  # fmt: skip
    Answer.objects.create(participant=p, trial=trial, trial_index=0, chosen="a",
                          displayed_first="a", chosen_position="A", response_ms=900)  # fmt: skip
    StudyFold.objects.create(study=study, fill={str(trial.pk): 1})
    ReportSnapshot.objects.create(study=study, bundle=b"from the preview")
    return p


def test_it_deletes_a_drafts_trials_only_once_confirmed_and_keeps_the_clips(client, alice, study):
    client.force_login(alice)
    study.design = {"strategy": "random", "seed": 3}
    study.save()
    clips = Clip.objects.filter(catalogue=study.catalogue).count()
    offered = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert 'id="delete-trials"' in offered
    asked = _delete(client, study)
    assert asked.status_code == 200 and study.trials.count() == 8
    html = asked.content.decode()
    assert 'id="delete-trials-confirm"' in html and "Delete all 8 trials" in html
    assert "The clips stay in the study catalogue" in html
    assert not study.events.filter(kind="trials").exists()
    assert _delete(client, study, confirm="yes").status_code == 303
    study.refresh_from_db()
    assert study.trials.count() == 0 and study.design == {}
    assert Clip.objects.filter(catalogue=study.catalogue).count() == clips
    event = study.events.get(kind="trials")
    assert (event.user, event.changes) == (alice, {"deleted": 8})


def test_deleting_trials_deletes_the_previews_with_their_answers_and_reports(client, alice, study):
    _preview_with_an_answer(study)
    client.force_login(alice)
    assert "1 preview participant" in _delete(client, study).content.decode()
    _delete(client, study, confirm="yes")
    assert not study.participants.exists() and not Answer.objects.exists()
    assert not StudyFold.objects.filter(study=study).exists()
    assert not ReportSnapshot.objects.filter(study=study).exists()
    event = study.events.get(kind="trials")
    assert event.changes == {"deleted": 8, "preview participants": 1}


@pytest.mark.parametrize("status", ["open", "paused", "closed"])
def test_it_refuses_to_delete_the_trials_of_a_study_once_opened(client, alice, study, status):
    Study.objects.filter(pk=study.pk).update(status=status)
    client.force_login(alice)
    page = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert 'id="delete-trials"' not in page
    response = _delete(client, study, confirm="yes")
    assert response.status_code == 303 and study.trials.count() == 8
    shown = client.get(response["Location"]).content.decode()
    assert "Trials can be deleted only while the study is a draft" in shown
    assert not study.events.filter(kind="trials").exists()


def test_it_refuses_to_delete_trials_that_participants_answered(client, alice, answered_study):
    client.force_login(alice)
    response = _delete(client, answered_study, confirm="yes")
    assert answered_study.trials.count() == 8
    shown = client.get(response["Location"]).content.decode()
    assert "has 19 answers from participants" in shown


def test_the_draw_into_a_study_with_trials_says_how_to_go_on(client, alice, study):
    client.force_login(alice)
    page = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert "A draw needs a study without trials" in page
    data = {"per_instrument": 1, "catch_per_kind": 0, "seed": 1}
    response = client.post(reverse("studies:trials_random", args=[study.pk]), data)
    assert response.status_code == 400
    assert response.context["random_form"].non_field_errors() == [
        "Draw adds trials to a study without trials: delete the existing trials first (Trials "
        "page) or add more by form or CSV."
    ]


def test_it_deletes_nothing_when_trials_were_added_after_the_confirmation_was_shown(
    client, alice, study
):
    # A colleague, or a design job finishing, adds a trial between the page and the click.
    client.force_login(alice)
    shown = study.trials.count()
    html = _delete(client, study).content.decode()
    assert f'name="n_trials" value="{shown}"' in html
    extra = study.trials.filter(is_practice=False).first()
    extra.pk = None
    extra.save()
    response = _delete(client, study, confirm="yes", n_trials=shown)
    assert study.trials.count() == shown + 1  # nothing deleted
    page = client.get(response["Location"]).content.decode()
    assert f"now has {shown + 1} trials, not the {shown} the confirmation showed" in page
