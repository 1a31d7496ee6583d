"""A participant whose browser lost or blocks the site's cookies: a form posted without the CSRF
cookie and a page opened without the binding cookie are refused (403) with a page in the site's
style that says what happened and how to go on; nothing they answered is lost. Researchers'
pages get the same refusal without the study's wording. A form refused for another CSRF reason,
with the cookies there (a token made stale by signing in in another tab, a missing token, a
foreign origin), is not blamed on cookies: the page was out of date; reload and try again."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Answer
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    client_log,
    finish_practice,
    open_trial,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def _token(response) -> str:
    """The CSRF token of the page's form, as the browser would post it."""
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())[1]


def _sign_in_in_another_tab(browser) -> None:
    # Django rotates the CSRF token on login: every form open in the other tabs is now stale.
    get_user_model().objects.create_user("pilot", password="pilot-pass-123")
    form = {"username": "pilot", "password": "pilot-pass-123"}
    login = browser.get(reverse("login"))
    response = browser.post(reverse("login"), {**form, "csrfmiddlewaretoken": _token(login)})
    assert response.status_code == 302


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


def test_an_answer_from_a_page_made_stale_in_another_tab_asks_to_reload_not_for_cookies(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-stale"), "practice")
    finish_practice(client, p)
    answer_current(client, p)
    browser = Client(enforce_csrf_checks=True)  # the same browser, checking tokens as it would
    browser.cookies = client.cookies
    slot = open_trial(browser, p)
    stale = _token(browser.get(url(p), HTTP_USER_AGENT=DESKTOP_UA))
    _sign_in_in_another_tab(browser)
    answered = Answer.objects.filter(participant=p).count()
    data = {"step": "trials", "index": slot.index, "slot": slot.pk, "choice": "A",
            "log": client_log()}  # fmt: skip
    response = browser.post(url(p), {**data, "csrfmiddlewaretoken": stale},
                            HTTP_USER_AGENT=DESKTOP_UA)  # fmt: skip
    assert response.status_code == 403
    text = _text(response)
    assert "This page was out of date" in text and "nothing you answered before is lost" in text
    assert "Go back, reload this page and try again" in text and "Prolific" in text
    assert "cookie" not in text.lower() and "CSRF" not in text
    assert Answer.objects.filter(participant=p).count() == answered
    # What the page says works: reloaded, the same answer goes through.
    fresh = _token(browser.get(url(p), HTTP_USER_AGENT=DESKTOP_UA))
    browser.post(url(p), {**data, "csrfmiddlewaretoken": fresh}, HTTP_USER_AGENT=DESKTOP_UA)
    assert Answer.objects.filter(participant=p).count() == answered + 1


def test_the_out_of_date_refusal_is_in_japanese_for_a_japanese_browser(listening_study):
    link = reverse("studies:entry", args=[listening_study.slug])
    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="ja")
    browser.get(link)  # sets the CSRF cookie; the form is posted without its token
    response = browser.post(link, {"step": "browser_check"})
    assert response.status_code == 403
    text = _text(response)
    assert "有効期限が切れ" in text and "再読み込み" in text and "Prolific" in text
    assert "Cookie" not in text and "out of date" not in text
    assert not listening_study.participants.exists()


@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_ORIGIN": "https://elsewhere.example"}],
    ids=["token-missing", "foreign-origin"],
)
def test_a_researcher_page_refused_with_its_cookies_there_asks_to_reload(db, headers):
    browser = Client(enforce_csrf_checks=True)
    login = browser.get(reverse("login"))
    form = {"username": "erin", "password": "x"}
    if headers:
        form["csrfmiddlewaretoken"] = _token(login)
    response = browser.post(reverse("login"), form, **headers)
    assert response.status_code == 403
    text = _text(response)
    assert "This page was out of date" in text and "reload this page and try again" in text
    assert "cookie" not in text.lower() and "CSRF" not in text and "Prolific" not in text


def _participant_reading_japanese(client, study):
    """A participant who chose 日本語 in a browser whose language is English."""
    p = enter(client, study, PROLIFIC_PID="pp-ja")
    client.get(url(p) + "?lang=ja", HTTP_USER_AGENT=DESKTOP_UA)
    p.refresh_from_db()
    assert p.language == "ja"
    return p


def test_the_out_of_date_refusal_of_a_participants_page_is_in_the_language_they_chose(
    client, listening_study
):
    p = _participant_reading_japanese(client, listening_study)
    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")  # the same browser
    browser.cookies = client.cookies
    browser.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)  # sets the CSRF cookie
    response = browser.post(url(p), {"step": p.step}, HTTP_USER_AGENT=DESKTOP_UA)  # no token
    assert response.status_code == 403
    text = _text(response)
    assert "有効期限が切れ" in text and "再読み込み" in text and "out of date" not in text
    assert response["Content-Language"] == "ja"


def test_a_refusal_on_another_browsers_participant_page_keeps_the_browsers_language(
    client, listening_study
):
    p = _participant_reading_japanese(client, listening_study)
    other = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")  # not bound to p
    other.get(reverse("studies:entry", args=[listening_study.slug]))  # sets the CSRF cookie
    response = other.post(url(p), {"step": p.step}, HTTP_USER_AGENT=DESKTOP_UA)  # no token
    assert response.status_code == 403
    text = _text(response)
    assert "This page was out of date" in text and "有効期限が切れ" not in text
    assert response["Content-Language"] == "en"
