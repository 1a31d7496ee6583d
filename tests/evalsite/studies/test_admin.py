"""The admin shows the study's record (answers, history) but cannot change it."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.studies import history
from evalsite.studies.models import Answer, ConsentVersion, Participant, StudyEvent
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

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
