"""The admin shows the study's record (answers, history) but cannot change it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evalsite.studies import history
from evalsite.studies.models import StudyEvent
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["answer", "studyevent"])
def test_the_admin_lists_the_record_but_cannot_add_change_or_delete_it(
    client, django_user_model, answered_study, model
):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123456")
    history.record(answered_study, admin, history.Kind.STATUS, {"status": ["draft", "open"]})
    client.force_login(admin)
    assert client.get(reverse(f"admin:studies_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:studies_{model}_add")).status_code == 403
    row = answered_study.participants.first().answers.first() if model == "answer" else (
        StudyEvent.objects.get())  # fmt: skip
    assert client.post(reverse(f"admin:studies_{model}_delete", args=[row.pk]),
                       {"post": "yes"}).status_code == 403  # fmt: skip
    assert type(row).objects.filter(pk=row.pk).exists()
    change = reverse(f"admin:studies_{model}_change", args=[row.pk])
    assert client.post(change, {}).status_code == 403  # shown read-only, never saved
