"""The admin shows the study's record (answers, history) but cannot change it."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin import site
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.studies import history
from evalsite.studies.models import Answer, ConsentVersion, Participant, StudyEvent, Trial
from tests.evalsite.studies.conftest import make_catalogue, make_study
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.form_pages import admin_trial_post

pytestmark = pytest.mark.django_db


def _consent_version(study) -> ConsentVersion:
    return ConsentVersion.objects.create(study=study, sha256="0" * 64, language="en", text="Agree.")


@pytest.mark.parametrize("model", ["answer", "studyevent", "consentversion"])
def test_the_admin_lists_the_record_but_cannot_add_change_or_delete_it(
    client, django_user_model, answered_study, model
):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123456")
    history.record(answered_study, admin, history.Kind.STATUS, {"status": ["draft", "open"]})
    client.force_login(admin)
    assert client.get(reverse(f"admin:studies_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:studies_{model}_add")).status_code == 403
    row = {"answer": lambda: answered_study.participants.first().answers.first(),
           "studyevent": StudyEvent.objects.get,
           "consentversion": lambda: _consent_version(answered_study)}[model]()  # fmt: skip
    assert client.post(reverse(f"admin:studies_{model}_delete", args=[row.pk]),
                       {"post": "yes"}).status_code == 403  # fmt: skip
    assert type(row).objects.filter(pk=row.pk).exists()
    change = reverse(f"admin:studies_{model}_change", args=[row.pk])
    assert client.post(change, {}).status_code == 403  # shown read-only, never saved


@pytest.fixture
def root(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(admin)
    return admin


def test_the_admin_deletes_a_study_with_its_answers_and_history(client, root, answered_study):
    history.record(answered_study, root, history.Kind.CREATED, {})
    _consent_version(answered_study)
    url = reverse("admin:studies_study_delete", args=[answered_study.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not type(answered_study).objects.filter(pk=answered_study.pk).exists()
    assert not StudyEvent.objects.exists() and not Answer.objects.exists()
    assert not ConsentVersion.objects.exists()


@pytest.mark.parametrize("how", ["page", "action"])
def test_the_admin_deletes_a_test_run_and_its_answers_from_stored_reports(
    client, root, answered_study, how
):
    p = answered_study.participants.get(external_pid="p3")
    kept = answered_study.participants.get(external_pid="p1")
    rows = [{"participant": p.pk, "rate": 1.0}, {"participant": kept.pk, "rate": 0.5}]
    snapshot = ReportSnapshot.objects.create(
        study=answered_study, bundle=b"every answer", tables={"rates": rows}
    )
    if how == "page":
        url = reverse("admin:studies_participant_delete", args=[p.pk])
        response = client.post(url, {"post": "yes"})
    else:
        url = reverse("admin:studies_participant_changelist")
        response = client.post(
            url, {"action": "delete_selected", "_selected_action": [p.pk], "post": "yes"}
        )
    assert response.status_code == 302
    assert not Participant.objects.filter(pk=p.pk).exists()
    assert not Answer.objects.filter(participant_id=p.pk).exists()
    assert kept.answers.exists()
    snapshot.refresh_from_db()
    assert bytes(snapshot.bundle) == b""  # the reproducibility zip held its answers
    assert snapshot.tables == {"rates": [{"participant": kept.pk, "rate": 0.5}]}
    state = ReportState.objects.get(study=answered_study)
    assert state.deletions == 1 and state.pending  # a computation that read them stores nothing


def test_the_admin_shows_a_studys_status_but_leaves_changing_it_to_the_dashboard(
    client, root, study
):
    # The dashboard's status controls follow TRANSITIONS and delete previews as a draft opens.
    url = reverse("admin:studies_study_change", args=[study.pk])
    data = {"owner": study.owner_id, "shared_with": [u.pk for u in study.shared_with.all()],
            "name": "Renamed", "slug": study.slug, "catalogue": study.catalogue_id,
            "instruments": json.dumps(study.instruments), "consent_text": "", "description": "",
            "settings": json.dumps(study.settings), "design": "{}"}  # fmt: skip
    assert client.post(url, {**data, "status": "open"}).status_code == 302
    study.refresh_from_db()
    assert (study.name, study.status) == ("Renamed", "draft")  # the rest is saved
    assert 'name="status"' not in client.get(url).content.decode()


@pytest.mark.parametrize("instruments", [["drums", "Piano"], "drums", ["drums", "drums"], [3]])
def test_a_study_refuses_instruments_it_does_not_know(alice, instruments):
    # The admin edits instruments as raw JSON: the study form only offers known names.
    from django.core.exceptions import ValidationError

    from evalsite.studies.models import Study

    study = Study(owner=alice, name="Typo", instruments=instruments)
    with pytest.raises(ValidationError) as caught:
        study.full_clean()
    assert "instruments" in caught.value.message_dict
    assert "drums, bass, piano, guitar, others" in caught.value.message_dict["instruments"][0]


@pytest.mark.parametrize("how", ["add", "change"])
def test_the_admin_refuses_a_trial_the_study_already_has_as_the_trials_page_does(
    client, root, study, how
):
    first, other = study.trials.filter(is_catch=False, is_practice=False).order_by("id")[:2]
    events, trials = study.events.count(), study.trials.count()
    swapped = {"candidate_a": first.candidate_b_id, "candidate_b": first.candidate_a_id}
    if how == "add":  # the same trial, candidates in the other order
        url = reverse("admin:studies_trial_add")
        data = admin_trial_post(first, **swapped)
    else:  # another trial changed into it
        url = reverse("admin:studies_trial_change", args=[other.pk])
        data = admin_trial_post(first, **swapped)
    response = client.post(url, data)
    assert response.status_code == 200
    (said,) = response.context["adminform"].form.non_field_errors()
    assert said == (
        f"This trial is already in the study as trial {first.pk} (reference "
        f"{first.reference_id}, candidates {first.candidate_b_id} and {first.candidate_a_id}, "
        f"{first.instrument}, main); nothing was saved. For a second look at the same clips, "
        "add a repeat (Add repeats with A/B swapped)."
    )
    assert (study.events.count(), study.trials.count()) == (events, trials)
    other_before = admin_trial_post(other)
    other.refresh_from_db()
    assert admin_trial_post(other) == other_before
    unchanged = client.post(  # saving a trial as it is is no repeat of itself
        reverse("admin:studies_trial_change", args=[first.pk]), admin_trial_post(first)
    )
    assert unchanged.status_code == 302 and study.events.count() == events  # nothing to record


def test_the_admin_adds_no_trial_to_a_closed_study(client, root, study):
    first = study.trials.filter(is_catch=False, is_practice=False).order_by("id").first()
    trials = study.trials.count()
    study.status = "closed"
    study.save()
    clips = study.catalogue.clips.exclude(
        pk__in=[first.reference_id, first.candidate_a_id, first.candidate_b_id]
    )
    a, b = clips.order_by("id")[:2]
    response = client.post(reverse("admin:studies_trial_add"),
                           admin_trial_post(first, candidate_a=a.pk, candidate_b=b.pk))  # fmt: skip
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "Study 'Drums and bass' is closed; its trials can no longer change."
    ]
    assert study.trials.count() == trials


@pytest.mark.parametrize("how", ["page", "action"])
def test_the_admin_keeps_the_trials_of_a_study_that_was_opened_as_the_trials_page_does(
    client, root, study, how
):
    # Deleting a trial deletes its slots and answers with it (CASCADE): once a study was opened,
    # participants may have been given it, and the export must keep what they were given.
    trial = study.trials.filter(is_catch=False, is_practice=False).order_by("id").first()
    study.status = "open"
    study.save()
    events, trials = study.events.count(), study.trials.count()
    if how == "page":
        url = reverse("admin:studies_trial_delete", args=[trial.pk])
        assert client.post(url, {"post": "yes"}).status_code == 403
    else:
        url = reverse("admin:studies_trial_changelist")
        client.post(url, {"action": "delete_selected", "_selected_action": [trial.pk],
                          "post": "yes"})  # fmt: skip
    assert (study.events.count(), study.trials.count()) == (events, trials)


def test_the_admin_deletes_none_of_the_selected_trials_where_one_studys_trials_are_kept(
    client, root, alice
):
    # "Delete selected" over a draft's trial and an open study's: refused as a whole, with a
    # message naming the study that keeps its trials; before, the draft's trial was deleted (the
    # higher id goes first) and then a 403 came for the open study's (review rdiff, finding 5).
    catalogue = make_catalogue(alice)
    opened = make_study(alice, catalogue, 2, practice_trials=0)  # open; the lower ids
    opened.name = "Opened already"
    opened.save()
    study = make_study(alice, catalogue, 2, practice_trials=0)
    study.status = "draft"
    study.save()
    drafts = study.trials.filter(is_catch=False, is_practice=False).order_by("id").first()
    kept = opened.trials.order_by("id").last()
    before = (Trial.objects.count(), StudyEvent.objects.count())
    url = reverse("admin:studies_trial_changelist")
    for post in ({}, {"post": "yes"}):  # the confirmation page, and its confirmation
        response = client.post(url, {"action": "delete_selected",
                                     "_selected_action": [drafts.pk, kept.pk], **post},
                               follow=True)  # fmt: skip
        assert response.status_code == 200
        shown = [str(m) for m in response.context["messages"]]
        assert any("Nothing was deleted" in m and "'Opened already'" in m and "open" in m
                   for m in shown), shown  # fmt: skip
        assert (Trial.objects.count(), StudyEvent.objects.count()) == before


def test_the_admins_confirmed_delete_checks_every_study_under_its_lock_before_deleting_any(
    rf, root, alice
):
    # A study opened between the action's check and the delete: delete_queryset refuses the
    # whole selection (a 403), the draft's trial, reached first, included.
    catalogue = make_catalogue(alice)
    opened = make_study(alice, catalogue, 2, practice_trials=0)  # open; the lower ids
    study = make_study(alice, catalogue, 2, practice_trials=0)
    study.status = "draft"
    study.save()
    selected = Trial.objects.filter(pk__in=[study.trials.order_by("id").last().pk,
                                            opened.trials.order_by("id").first().pk])  # fmt: skip
    before = (Trial.objects.count(), StudyEvent.objects.count())
    request = rf.post("/")
    request.user = root
    with pytest.raises(PermissionDenied, match=f"study {opened.name!r}: .* this one is open"):
        site._registry[Trial].delete_queryset(request, selected)
    assert (Trial.objects.count(), StudyEvent.objects.count()) == before


def test_the_admin_deletes_a_drafts_trial_and_records_it_in_the_history(client, root, study):
    trial = study.trials.filter(is_catch=False, is_practice=False).order_by("id").last()
    trials = study.trials.count()
    response = client.post(reverse("admin:studies_trial_delete", args=[trial.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert study.trials.count() == trials - 1
    event = study.events.filter(kind=history.Kind.TRIALS).latest("id")
    assert event.changes == {"deleted": 1, "how": "admin", "trial": trial.pk}
    assert event.user == root
