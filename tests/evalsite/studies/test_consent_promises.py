"""What the consent page's paragraph promises, kept: every participant is shown an ID to quote
from the consent page on (a derived reference where the study link gave none) that finds them,
and only them, in the admin and in participants.csv; leaving does to the answers what the consent
page said when they agreed, whatever the study's setting is now, and participants.csv records
that setting."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies.export_answers import participants_dataframe
from evalsite.studies.models import Answer, Participant
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    finish_practice,
    leave,
    post,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db


def _page(client, p: Participant) -> str:
    return client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()


def _set_on_leave(study, on_leave: str) -> None:
    study.settings = {**study.settings, "withdrawn_answers": on_leave}
    study.save()


@pytest.mark.parametrize(
    "params",
    [{}, {"PROLIFIC_PID": "pp-quote"}, {"pid": "lab-quote"}],
    ids=["plain", "prolific", "pid"],
)
def test_it_shows_every_participant_an_id_that_finds_them_in_the_admin(
    client, django_user_model, listening_study, params
):
    p = to_step(client, enter(client, listening_study, **params), "consent")
    shown = params.get("PROLIFIC_PID") or params.get("pid") or p.token[:8]
    for step in ("consent", "questionnaire"):
        p = to_step(client, p, step)
        assert f'Your participant ID: <strong id="participant-id">{shown}</strong>' in _page(
            client, p
        )
    elsewhere = Client()  # another participant, not found
    to_step(elsewhere, enter(elsewhere, listening_study), "consent")
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))
    found = client.get(reverse("admin:studies_participant_changelist"), {"q": shown})
    assert found.context["cl"].result_count == 1
    assert list(found.context["cl"].result_list) == [p]


@pytest.mark.parametrize(("consented", "now"), [("delete", "keep"), ("keep", "delete")])
def test_leaving_does_what_the_consent_page_said_when_the_participant_agreed(
    client, listening_study, consented, now
):
    _set_on_leave(listening_study, consented)
    p = to_step(client, enter(client, listening_study), "consent")
    post(client, p, "consent", decision="agree", on_leave=consented)
    p = to_step(client, p, "practice")
    finish_practice(client, p)
    answer_current(client, p)
    _set_on_leave(listening_study, now)  # edited while the study is open
    said = "are kept" if consented == "keep" else "will be deleted"
    assert said in _page(client, p)  # the Leave button's confirmation
    leave(client, p)
    p.refresh_from_db()
    assert p.step == "withdrawn"
    assert Answer.objects.filter(participant=p).exists() == (consented == "keep")
    assert ("are kept" if consented == "keep" else "have been deleted") in _page(client, p)


def test_a_participant_who_consented_before_the_setting_was_recorded_follows_the_study(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    Participant.objects.filter(pk=p.pk).update(withdrawn_answers="")  # agreed before the field
    finish_practice(client, p)
    answer_current(client, p)
    _set_on_leave(listening_study, "keep")
    leave(client, p)
    assert Answer.objects.filter(participant=p).exists()


def test_agreeing_to_a_paragraph_the_study_has_since_changed_shows_the_new_one(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "consent")
    _set_on_leave(listening_study, "keep")  # after the page said "delete"
    page = post(client, p, "consent", decision="agree", on_leave="delete").content.decode()
    p.refresh_from_db()
    assert p.step == "consent" and p.consented_at is None
    assert "Either way" in page and 'name="on_leave" value="keep"' in page
    post(client, p, "consent", decision="agree", on_leave="keep")
    p.refresh_from_db()
    assert p.step == "questionnaire" and p.withdrawn_answers == "keep"


def _admin_search(client, django_user_model, q: str) -> list[Participant]:
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))
    found = client.get(reverse("admin:studies_participant_changelist"), {"q": q})
    return list(found.context["cl"].result_list)


def test_the_admin_search_for_an_id_finds_only_the_participant_shown_it(
    client, django_user_model, listening_study
):
    quoting = enter(Client(), listening_study, pid="lab-7")
    for params in ({"pid": "lab-77"}, {"PROLIFIC_PID": "xlab-7"}):  # their IDs contain it
        enter(Client(), listening_study, **params)
    assert _admin_search(client, django_user_model, "lab-7") == [quoting]


def test_the_admin_search_for_a_token_start_tells_case_apart(
    client, django_user_model, listening_study
):
    plain, other = (enter(Client(), listening_study) for _ in range(2))
    Participant.objects.filter(pk=plain.pk).update(token="abcdefgh" + plain.token[8:])
    Participant.objects.filter(pk=other.pk).update(token="ABCDEFGH" + other.token[8:])
    assert _admin_search(client, django_user_model, "abcdefgh") == [plain]


@pytest.mark.parametrize(
    "params",
    [{}, {"PROLIFIC_PID": "pp-quote"}, {"pid": "lab-quote"}],
    ids=["plain", "prolific", "pid"],
)
def test_participants_csv_holds_the_id_shown_and_the_setting_agreed_to(
    client, listening_study, params
):
    _set_on_leave(listening_study, "keep")
    p = to_step(client, enter(client, listening_study, **params), "questionnaire")
    not_yet = enter(Client(), listening_study)  # before consent: nothing agreed to
    _set_on_leave(listening_study, "delete")  # edited since
    rows = participants_dataframe(listening_study).set_index("participant")
    assert rows.loc[p.pk, "participant_id"] in _page(client, p)
    assert rows.loc[p.pk, "participant_id"] == (
        params.get("PROLIFIC_PID") or params.get("pid") or p.token[:8]
    )
    assert rows.loc[p.pk, "withdrawn_answers"] == "keep"
    assert rows.loc[not_yet.pk, "withdrawn_answers"] == ""
