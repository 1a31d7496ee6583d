"""A server error (500) shows a participant-style page in the participant's language (en/ja): the
fault is the site's, nothing the participant did; what they answered on earlier pages is stored;
reload, or come back through the study link later. Django renders 500.html with no context and no
request, so the language is the one LocaleMiddleware activated for the request, and the page must
not need anything that can fail again: no database query and no static-manifest lookup."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousOperation
from django.test import Client
from django.urls import path

from tests.evalsite.studies.test_refusal_pages import TITLE


def _raise(request):
    raise RuntimeError("secret-detail-in-the-traceback")


def _suspicious(request):
    raise SuspiciousOperation("secret-detail-in-the-log")  # e.g. too many form fields


urlpatterns = [path("boom/", _raise), path("odd/", _suspicious)]  # the URLconf of these tests
from evalsite.urls import handler400, handler500  # noqa: E402, F401 (the site's, for this URLconf)

SERVER_ERROR = {
    "en": ("Something went wrong", "Something went wrong on our side; it was nothing you did. "
           "Your answers from earlier pages are saved. Please reload the page in a moment, or "
           "come back later through your study link (for example, on Prolific)."),
    "ja": ("問題が発生しました", "サイト側で問題が発生しました。あなたの操作によるものではありま"
           "せん。これまでのページの回答は保存されています。しばらくしてからページを再読み込み"
           "するか、後ほど実験のリンク（Prolific など）からもう一度開いてください。"),
}  # fmt: skip
BAD_REQUEST = {
    "en": ("Bad request", "The site could not read what your browser sent. Your answers from "
           "earlier pages are saved. Please open the study again from the page where you found "
           "the link (for example, Prolific)."),
    "ja": ("不正なリクエスト", "ブラウザから送信された内容を読み取れませんでした。これまでのペー"
           "ジの回答は保存されています。リンクがあったページ（Prolific など）から、もう一度実験"
           "を開いてください。"),
}  # fmt: skip


@pytest.fixture
def broken_site(settings, tmp_path):
    settings.DEBUG = False  # Django renders 500.html only with DEBUG off
    settings.ROOT_URLCONF = __name__
    # The production storage with no manifest: any {% static %} lookup would raise again.
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    return settings


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).strip()


@pytest.mark.django_db
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_server_error_is_a_participant_page_in_the_browsers_language(
    broken_site, django_assert_num_queries, lang
):
    browser = Client(HTTP_ACCEPT_LANGUAGE=lang, raise_request_exception=False)
    with django_assert_num_queries(0):
        response = browser.get("/boom/")
    assert response.status_code == 500
    page, text = response.content.decode(), _text(response)
    heading, body = SERVER_ERROR[lang]
    assert heading in text and body in text
    assert f'<html lang="{lang}">' in page and response["Content-Language"] == lang
    assert re.search(r"<title>\s*(.*?)\s*</title>", page).group(1) == TITLE[lang]
    assert "secret-detail" not in page and "RuntimeError" not in page and "boom" not in page
    assert "csn-eval" not in page and not re.search(r'href="/"', page)
    assert "participant-header" in page
    linked = re.findall(r'href="/static/([^"]+)"', page)
    assert len(linked) == 3 and all(finders.find(name) for name in linked), linked


@pytest.mark.django_db
def test_a_server_error_follows_the_language_cookie(broken_site):
    browser = Client(HTTP_ACCEPT_LANGUAGE="en", raise_request_exception=False)
    browser.cookies[broken_site.LANGUAGE_COOKIE_NAME] = "ja"
    assert SERVER_ERROR["ja"][0] in _text(browser.get("/boom/"))


@pytest.mark.django_db
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_bad_request_is_a_participant_page_in_the_browsers_language(
    broken_site, django_assert_num_queries, lang
):
    browser = Client(HTTP_ACCEPT_LANGUAGE=lang, raise_request_exception=False)
    with django_assert_num_queries(0):
        response = browser.get("/odd/")
    assert response.status_code == 400
    page, text = response.content.decode(), _text(response)
    heading, body = BAD_REQUEST[lang]
    assert heading in text and body in text
    assert f'<html lang="{lang}">' in page and "participant-header" in page
    assert response["Content-Language"] == lang
    assert "secret-detail" not in page and "csn-eval" not in page


@pytest.mark.parametrize(("before", "lang"), [("ja", "en"), ("en", "ja")])
def test_a_request_refused_before_its_language_is_read_gets_its_own_language_not_the_last_ones(
    broken_site, before, lang
):
    # A bad Host read by SecurityMiddleware's HTTPS redirect fails before LocaleMiddleware: the
    # page must not keep the language the thread last served (another participant's).
    broken_site.ALLOWED_HOSTS = ["testserver"]
    broken_site.SECURE_SSL_REDIRECT = True
    Client(HTTP_ACCEPT_LANGUAGE=before, raise_request_exception=False).get("/boom/", secure=True)
    browser = Client(HTTP_ACCEPT_LANGUAGE=lang, raise_request_exception=False)
    response = browser.get("/boom/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert BAD_REQUEST[lang][0] in _text(response)
    assert f'<html lang="{lang}">' in response.content.decode()
