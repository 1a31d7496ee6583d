"""Saving a live study's settings while something else changes it (evalsite/studies/experimenter.py,
`study_edit`): a Close or Pause that commits during the Save stays in force, and a Save from a
page loaded before another researcher's Save (or before the first upload made the catalogue)
undoes nothing: it is shown again, naming what changed meanwhile and by whom."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
from django import forms
from django.db import connection
from django.test import Client
from django.urls import reverse

from evalsite.studies.forms import StudyForm
from evalsite.studies.models import Study
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def page_values(client: Client, study: Study) -> dict:
    """What a browser posts back from the edit page as loaded now: every field's shown value."""
    form = client.get(reverse("studies:study_edit", args=[study.pk])).context["form"]
    data: dict = {}
    for name, bound in form._bound_items():
        value = bound.value()
        if bound.field.disabled:
            continue
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        else:
            data[name] = "" if value is None else str(getattr(value, "pk", value))
    return data


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
    page = page_values(shared, study) | {"description": "typo fixed"}
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
        page = page_values(shared, study) | {"description": f"edit {round_}"}
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
