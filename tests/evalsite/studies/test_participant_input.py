"""Participant input that PostgreSQL cannot store (a NUL character in text or jsonb, a lone
surrogate in jsonb) at each boundary it enters by: the answer's client log, the browser check,
the study link's parameters and its slug. None may end in a 500 (`storable_text`)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Answer, Participant
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    answer,
    finish_practice,
    open_trial,
    post,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(raise_request_exception=False)  # a 500 is the failure looked for, not raised


@pytest.mark.parametrize(
    ("log", "kept"),
    [('{"viewport": "1280x720\\u0000", "hidden_ms": 5}', {"viewport": None, "hidden_ms": 5}),
     ('{"viewport": "\\ud800", "hidden_ms": 5}', {"viewport": None, "hidden_ms": 5}),
     ('{"viewport\\u0000": "1280x720", "hidden_ms": 5}', {"hidden_ms": 5}),
     ('{"events": [[412, "play r"], [5433, "\\u0000"]], "hidden_ms": 5}',
      {"events": [[412, "play r"], [5433, None]], "hidden_ms": 5})],
    ids=["nul-in-a-value", "lone-surrogate", "nul-in-a-key", "nul-in-an-event"],
)  # fmt: skip
def test_it_stores_an_answer_whose_log_holds_unstorable_text_with_that_text_unknown(
    client, listening_study, log, kept
):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    response = post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=log)
    assert response.status_code == 302
    stored = Answer.objects.get(participant=p, trial=slot.trial)
    assert stored.client == kept and stored.chosen_position == "A"


@pytest.mark.parametrize("field", ["web_audio", "touch", "screen", "ua_mobile"])
def test_it_takes_a_browser_check_field_holding_nul_as_unknown(client, listening_study, field):
    p = enter(client, listening_study)
    report = {"web_audio": "1", "touch": "0", "screen": "1920x1080", "ua_mobile": "0"}
    response = post(client, p, "browser_check", **(report | {field: report[field] + "\x00"}))
    assert response.status_code == 302
    p.refresh_from_db()
    assert p.browser[field] == ""  # as if not sent
    assert p.step == ("refused" if field == "web_audio" else "consent")


@pytest.mark.parametrize("key", ["pid", "PROLIFIC_PID", "STUDY_ID", "SESSION_ID"])
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_it_refuses_a_study_link_whose_recruitment_id_holds_nul(client, listening_study, key, lang):
    listening_study.settings["languages"] = ["en", "ja"]
    listening_study.save()
    link = reverse("studies:entry", args=[listening_study.slug])
    response = client.get(link, {key: "a\x00b", "lang": lang})
    assert response.status_code == 400
    message = {"en": "This study link is not valid", "ja": "この実験のリンクは正しくありません"}
    assert message[lang] in response.content.decode()
    assert not Participant.objects.filter(study=listening_study).exists()


@pytest.mark.parametrize(
    "odd", [{"foo": "x\x00"}, {"foo\x00": "x"}], ids=["nul-in-a-value", "nul-in-a-name"]
)
def test_it_drops_a_parameter_holding_nul_from_the_recruitment_it_keeps(
    client, listening_study, odd
):
    p = enter(client, listening_study, pid="p-17", source="panel", **odd)
    assert p.recruitment == {"pid": "p-17", "source": "panel"} and p.external_pid == "p-17"


def test_it_keeps_an_invalid_utf8_parameter_as_replacement_characters(client, listening_study):
    link = reverse("studies:entry", args=[listening_study.slug])
    response = client.post(link + "?pid=p-18&foo=%ED%A0%80")  # a surrogate, UTF-8 encoded
    assert response.status_code == 302
    p = Participant.objects.get(study=listening_study, external_pid="p-18")
    assert p.recruitment["foo"] == "\ufffd" * 3


def test_it_answers_a_study_link_with_nul_in_its_slug_with_not_found(client):
    assert client.get("/s/%00/").status_code == 404
    assert client.get("/s/a%00b/?pid=x").status_code == 404


def test_it_stores_nothing_from_a_trial_form_without_its_slot(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    for named in ({}, {"slot": ""}, {"slot": "x"}, {"slot": "9" * 19}):
        response = post(client, p, "trials", index=slot.index, choice="A", log="{}", **named)
        assert response.status_code == 302 and response["Location"] == url(p)
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()
    answer(client, p, slot)
    assert Answer.objects.filter(participant=p, trial=slot.trial).exists()
