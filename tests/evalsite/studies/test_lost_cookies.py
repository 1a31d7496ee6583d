"""A participant whose browser lost or blocks the site's cookies: a form posted without the CSRF
cookie and a page opened without the binding cookie are refused (403) with a page in the site's
style that says what happened and how to go on; nothing they answered is lost. Researchers'
pages get the same refusal without the study's wording."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Answer
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    finish_practice,
    open_trial,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_an_answer_sent_without_cookies_is_refused_with_a_way_back_to_the_study(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-cookie"), "practice")
    finish_practice(client, p)
    answer_current(client, p)
    slot = open_trial(client, p)
    answered = Answer.objects.filter(participant=p).count()
    cleared = Client(enforce_csrf_checks=True)  # the same browser, its cookies cleared
    data = {"step": "trials", "index": slot.index, "slot": slot.pk, "choice": "A"}
    response = cleared.post(url(p), data, HTTP_USER_AGENT=DESKTOP_UA)
    assert response.status_code == 403
    text = _text(response)
    assert "CSRF" not in text and "Cookies are needed" in text
    assert "needs cookies" in text and "nothing you answered before is lost" in text
    assert "allow cookies for this site" in text and "Prolific" in text
    assert Answer.objects.filter(participant=p).count() == answered  # kept; nothing added


def test_the_cookie_refusal_is_in_japanese_for_a_japanese_browser(client, listening_study):
    link = reverse("studies:entry", args=[listening_study.slug])
    cleared = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="ja")
    response = cleared.post(link, {"step": "browser_check"})
    assert response.status_code == 403
    text = _text(response)
    assert "Cookie" in text and "Prolific" in text and "needs cookies" not in text
    assert not listening_study.participants.exists()


def test_a_researcher_page_posted_without_cookies_gets_the_neutral_refusal(db):
    response = Client(enforce_csrf_checks=True).post(
        reverse("login"), {"username": "erin", "password": "x"}
    )
    assert response.status_code == 403
    text = _text(response)
    assert "needs cookies" in text and "CSRF" not in text and "Prolific" not in text


def test_a_page_opened_without_the_binding_cookie_says_how_to_come_back(client, listening_study):
    p = to_step(client, enter(client, listening_study), "questionnaire")
    response = Client().get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert response.status_code == 403
    text = _text(response)
    assert "This page belongs to another session." in text
    assert "first started it (for example, Prolific)" in text and "are kept" in text
