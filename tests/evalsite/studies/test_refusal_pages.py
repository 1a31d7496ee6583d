"""The pages that turn a participant away (a paused or closed study, the entry limit, an invalid
link, another session's page, cookies needed, a page out of date, a link to nothing) have the
participant layout in the participant's language: no internal site name and no link to the
researchers' home page, which would tell a participant what the study tests. A closed study says
it takes no one any more (closing is final); a paused one asks to try again later. A link to
nothing (404) says the link is wrong or no longer valid, without naming any study."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import DESKTOP_UA, to_step, url

pytestmark = pytest.mark.django_db

CLOSED = {
    "en": "This study is no longer accepting participants. Thank you for your interest. You can "
    "close this page.",
    "ja": "この実験の受付は終了しました。ご関心をお寄せいただきありがとうございます。このページを"
    "閉じてください。",
}
PAUSED = {
    "en": "This study is not open at the moment. Please try again later.",
    "ja": "この実験は現在受け付けていません。しばらくしてからもう一度お試しください。",
}
NOT_FOUND = {
    "en": ("Page not found", "This link is wrong or no longer valid. Please open the study again "
           "from the page where you found the link (for example, Prolific)."),
    "ja": ("ページが見つかりません", "このリンクは正しくないか、すでに無効になっています。リンクが"
           "あったページ（Prolific など）から、もう一度実験を開いてください。"),
}  # fmt: skip
TITLE = {"en": "Study", "ja": "実験"}


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).strip()


def _title(response) -> str:
    return re.search(r"<title>(.*?)</title>", response.content.decode(), re.S).group(1).strip()


def _bilingual(study: Study, status: str = "open") -> Study:
    study.settings = {**study.settings, "languages": ["en", "ja"]}
    study.status = status
    study.save()
    return study


def _link(study: Study, **params) -> str:
    link = reverse("studies:entry", args=[study.slug])
    return f"{link}?{urlencode(params)}" if params else link


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_closed_study_says_it_takes_no_more_participants(listening_study, lang):
    _bilingual(listening_study, Study.Status.CLOSED)
    response = Client().get(_link(listening_study, pid="late", lang=lang))
    assert response.status_code == 403
    assert CLOSED[lang] in _text(response)
    assert PAUSED[lang] not in _text(response)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_paused_study_asks_to_try_again_later(listening_study, lang):
    _bilingual(listening_study, Study.Status.PAUSED)
    response = Client().get(_link(listening_study, pid="early", lang=lang))
    assert response.status_code == 403 and PAUSED[lang] in _text(response)


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("path", ["/s/doesnotexist123/", "/s/doesnotexist123/xx", "/nothing/"])
def test_a_link_to_nothing_is_a_participant_page_in_the_browsers_language(
    listening_study, settings, lang, path
):
    settings.DEBUG = False  # Django renders 404.html only with DEBUG off
    _bilingual(listening_study)
    response = Client(HTTP_ACCEPT_LANGUAGE=lang).get(path)
    assert response.status_code == 404
    heading, body = NOT_FOUND[lang]
    text = _text(response)
    assert heading in text and body in text
    assert f'<html lang="{lang}">' in response.content.decode()
    assert _title(response) == TITLE[lang]
    assert listening_study.name not in text and "doesnotexist123" not in text
    _assert_participant_layout(response)


def test_a_link_to_nothing_follows_the_language_cookie(settings, db):
    settings.DEBUG = False
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    browser.cookies[settings.LANGUAGE_COOKIE_NAME] = "ja"
    assert NOT_FOUND["ja"][0] in _text(browser.get("/s/gone/"))


@pytest.mark.parametrize("path", ["/studies/999999/", "/nothing/"])
def test_a_signed_in_researchers_link_to_nothing_keeps_the_site_layout_and_no_prolific_advice(
    settings, django_user_model, path
):
    # another researcher's study is a 404 too (not even confirmed to exist)
    settings.DEBUG = False
    browser = Client()
    browser.force_login(django_user_model.objects.create_user("rita", password="x-y-z-123"))
    response = browser.get(path)
    assert response.status_code == 404
    text = _text(response)
    assert "Page not found" in text and "Prolific" not in text
    assert "participant-header" not in response.content.decode()
    assert 'href="/studies/"' in response.content.decode()


@pytest.mark.parametrize("path", ["/studies/999999/", "/nothing/"])
def test_a_signed_in_researchers_link_to_nothing_is_english_throughout_in_a_japanese_browser(
    settings, django_user_model, path
):
    # the researcher's 404 says in English that the address is not a page; its lang and its
    # Content-Language say so too, not the browser's Japanese
    settings.DEBUG = False
    browser = Client(HTTP_ACCEPT_LANGUAGE="ja")
    browser.force_login(django_user_model.objects.create_user("rita", password="x-y-z-123"))
    response = browser.get(path)
    assert response.status_code == 404
    page, text = response.content.decode(), _text(response)
    assert '<html lang="en">' in page and response["Content-Language"] == "en"
    assert "Page not found" in text and "Your studies" in text
    assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", page), "Japanese on the page"
    browser.logout()  # the same browser signed out is a participant's: Japanese again
    response = browser.get("/nothing/")
    assert NOT_FOUND["ja"][0] in _text(response)
    assert '<html lang="ja">' in response.content.decode() and response["Content-Language"] == "ja"


def _assert_participant_layout(response) -> None:
    page = response.content.decode()
    assert "csn-eval" not in page
    assert not re.search(r'href="/"', page), "a link to the researchers' home page"
    assert "participant-header" in page


def _refusals(study: Study, settings) -> dict[str, object]:
    """Each participant refusal page, its response, for a Japanese browser."""
    ja = {"HTTP_ACCEPT_LANGUAGE": "ja"}
    pages: dict[str, object] = {}
    for status in (Study.Status.PAUSED, Study.Status.CLOSED):
        Study.objects.filter(pk=study.pk).update(status=status)
        pages[status] = Client(**ja).get(_link(study, pid="someone"))
    Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN)
    pages["400 invalid link"] = Client(**ja).get(_link(study, pid="a\x00b"))
    prolific = {"PROLIFIC_PID": "pp-ref", "STUDY_ID": "st", "SESSION_ID": "se-1"}
    first = Client(**ja)
    p = to_step(first, enter(first, study, **prolific), "consent")
    pages["403 other session"] = Client(**ja).post(
        _link(study, **{**prolific, "SESSION_ID": "se-2"})
    )
    pages["403 not this browser"] = Client(**ja).get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    no_cookies = Client(enforce_csrf_checks=True, **ja)
    pages["403 cookies needed"] = no_cookies.post(_link(study), {"step": "browser_check"})
    stale = Client(enforce_csrf_checks=True, **ja)
    stale.get(_link(study))  # the CSRF cookie, and a form posted without its token
    pages["403 out of date"] = stale.post(_link(study), {"step": "browser_check"})
    settings.CSN_ENTRY_LIMIT = 1  # the participant `p` entered has used it
    settings.CSN_ENTRY_WINDOW_MINUTES = 10
    pages["429"] = Client(**ja).post(_link(study, pid="one-more"))
    return pages


def test_no_refusal_page_shows_the_site_name_or_links_to_the_researchers_home(
    listening_study, settings
):
    _bilingual(listening_study)
    pages = _refusals(listening_study, settings)
    codes = {name: r.status_code for name, r in pages.items()}
    assert codes == {"paused": 403, "closed": 403, "400 invalid link": 400,
                     "403 other session": 403, "403 not this browser": 403,
                     "403 cookies needed": 403, "403 out of date": 403, "429": 429}  # fmt: skip
    for name, response in pages.items():
        page = response.content.decode()
        assert "csn-eval" not in page, name
        assert not re.search(r'href="/"', page), name
        assert _title(response) == "実験", name
        assert 'lang="ja"' in page and "participant-header" in page, name


def test_a_researchers_page_refused_for_cookies_keeps_the_site_header(db):
    response = Client(enforce_csrf_checks=True).post(reverse("login"), {"username": "x"})
    assert response.status_code == 403 and 'href="/"' in response.content.decode()
