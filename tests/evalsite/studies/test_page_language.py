"""Which language a page speaks to a Japanese browser: the researchers' pages are in English
throughout (their `lang`, Content-Language and the site navigation, as their text), while the
participant side (the study link, the participant's pages and sounds, their refusals and error
pages, a researcher's preview of a draft) keeps the participant's language. The login page and
its lockout page are translated whole and follow the browser (test_login_throttle)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import DESKTOP_UA, url

pytestmark = pytest.mark.django_db

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and kanji
NAV = ("Datasets", "Studies", "Retrieval")


def _japanese_researcher(experimenter) -> Client:
    browser = Client(HTTP_ACCEPT_LANGUAGE="ja")
    browser.force_login(experimenter)
    return browser


def _nav(page: str) -> str:
    return re.search(r"<nav>(.*?)</nav>", page, re.S).group(1)


def _bilingual(study: Study, status: str = Study.Status.OPEN) -> Study:
    study.settings = {**study.settings, "languages": ["en", "ja"]}
    study.status = status
    study.save()
    return study


@pytest.mark.parametrize(
    "path",
    ["/", "/studies/", "/studies/new/", "/datasets/", "/retrieval/", "study", "progress"],
)
def test_it_shows_a_researchers_pages_in_english_to_a_japanese_browser(
    experimenter, listening_study, path
):
    if path in ("study", "progress"):
        name = "studies:study_detail" if path == "study" else "studies:progress"
        path = reverse(name, args=[_bilingual(listening_study).pk])
    response = _japanese_researcher(experimenter).get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<html lang="en">' in page and response["Content-Language"] == "en"
    nav = _nav(page)
    assert all(name in nav for name in NAV) and "Log out" in nav
    assert not JAPANESE.search(nav), nav


def test_it_shows_the_home_page_in_english_to_a_japanese_browser_not_signed_in(db):
    response = Client(HTTP_ACCEPT_LANGUAGE="ja").get("/")
    page = response.content.decode()
    assert '<html lang="en">' in page and response["Content-Language"] == "en"
    assert not JAPANESE.search(page), _nav(page)
    assert "Log in" in _nav(page)


def test_it_keeps_the_login_page_in_the_browsers_language(db):
    # translated whole, its navigation too (a5aa7f9): not a page of mixed languages
    response = Client(HTTP_ACCEPT_LANGUAGE="ja").get(reverse("login"))
    page = response.content.decode()
    assert '<html lang="ja">' in page and response["Content-Language"] == "ja"
    assert "実験者ログイン" in page and "データセット" in _nav(page)


def test_it_refuses_a_researchers_stale_form_in_english_to_a_japanese_browser(experimenter):
    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="ja")
    browser.force_login(experimenter)
    browser.get(reverse("studies:study_create"))  # the CSRF cookie; the form posts no token
    response = browser.post(reverse("studies:study_create"), {"name": "x"})
    assert response.status_code == 403
    page = response.content.decode()
    assert '<html lang="en">' in page and response["Content-Language"] == "en"
    assert not JAPANESE.search(page), page


def test_it_keeps_the_participants_pages_in_the_participants_language(listening_study):
    _bilingual(listening_study)
    browser = Client(HTTP_ACCEPT_LANGUAGE="ja")
    link = reverse("studies:entry", args=[listening_study.slug])
    welcome = browser.get(link)
    assert '<html lang="ja">' in welcome.content.decode()
    assert welcome["Content-Language"] == "ja"
    p = enter(browser, listening_study, PROLIFIC_PID="pp-ja")
    response = browser.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert '<html lang="ja">' in response.content.decode()
    assert response["Content-Language"] == "ja"


def test_it_shows_a_researchers_preview_in_the_participants_language(experimenter, listening_study):
    _bilingual(listening_study, Study.Status.DRAFT)
    browser = _japanese_researcher(experimenter)
    welcome = browser.get(reverse("studies:entry", args=[listening_study.slug]))
    assert '<html lang="ja">' in welcome.content.decode()
    p = enter(browser, listening_study)
    assert p.is_preview
    response = browser.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert '<html lang="ja">' in response.content.decode()
    assert response["Content-Language"] == "ja"


def test_it_keeps_the_browsers_language_for_a_participants_sound_that_is_not_there(settings, db):
    settings.DEBUG = False  # Django renders 404.html only with DEBUG off
    response = Client(HTTP_ACCEPT_LANGUAGE="ja").get("/p/no-such-token/calibration")
    assert response.status_code == 404
    assert '<html lang="ja">' in response.content.decode()
    assert "ページが見つかりません" in response.content.decode()
