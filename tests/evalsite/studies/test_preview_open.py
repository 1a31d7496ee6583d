"""A researcher's preview (`pid=preview-...`, "Preview as a participant") once its study left
draft: the preview link is refused with a page saying why, whether the tab was still at the
welcome page or mid-flow when the study opened, so that no preview continues as a real
participant whose answers count. The page says what is true of that case: what a preview this
browser entered was deleted; a welcome page never continued stored nothing, and one opened by
the study's own link need only be opened again (findings_rfollow F2)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies.models import Study
from tests.evalsite.studies.participant_steps import DESKTOP_UA, to_step, url

pytestmark = pytest.mark.django_db

WHY = "This was a preview"
DELETED = "what it entered has been deleted"
PREVIEW_LINK = "This is a preview link"  # a preview link this browser entered nothing by
OPEN_AGAIN = "This page was opened while the study was a draft"
USE_THE_LINK = {
    "en": "To take part as a real participant, use the study's link.",
    "ja": "実際の参加者として参加するには、実験のリンクを使ってください。",
}
# What the study's own link says when not open (test_refusal_pages.py): what to do instead.
NOT_OPEN = {
    ("paused", "en"): "This study is not open at the moment. Please try again later.",
    ("paused", "ja"): "この実験は現在受け付けていません。しばらくしてからもう一度お試しください。",
    ("closed", "en"): "This study is no longer accepting participants. Thank you for your "
    "interest. You can close this page.",
    ("closed", "ja"): "この実験の受付は終了しました。ご関心をお寄せいただきありがとうございます。"
    "このページを閉じてください。",
}


def _draft(study: Study) -> Study:
    study.status = Study.Status.DRAFT
    study.save()
    return study


def _open(client, study: Study) -> None:
    response = client.post(reverse("studies:study_status", args=[study.pk]), {"action": "open"})
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN


def _link(study: Study, pid: str) -> str:
    return reverse("studies:entry", args=[study.slug]) + f"?pid={pid}"


def test_a_preview_tab_at_the_welcome_page_cannot_continue_once_the_study_opened(
    client, listening_study, experimenter
):
    study = _draft(listening_study)
    client.force_login(experimenter)
    link = _link(study, "preview-tab")
    assert client.get(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 200  # the welcome page
    _open(client, study)  # in the overview's tab
    response = client.post(link, {"preview": "1"}, HTTP_USER_AGENT=DESKTOP_UA)  # its Continue
    assert response.status_code == 403
    page = response.content.decode()
    assert PREVIEW_LINK in page and "To take part as a real participant" in page
    assert DELETED not in page  # it entered nothing
    assert not study.participants.exists()
    japanese = client.get(link + "&lang=ja", HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert "プレビュー用のリンク" in japanese and "削除" not in japanese


def test_a_preview_mid_flow_cannot_go_on_as_a_real_participant(
    client, listening_study, experimenter
):
    study = _draft(listening_study)
    client.force_login(experimenter)
    link = _link(study, "preview-mid")
    client.post(link, HTTP_USER_AGENT=DESKTOP_UA)
    p = to_step(client, study.participants.get(external_pid="preview-mid"), "consent")
    _open(client, study)  # deletes the preview
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code in (403, 404)
    for method in (client.get, client.post):  # its link again, from the same browser
        response = method(link, HTTP_USER_AGENT=DESKTOP_UA)
        assert response.status_code == 403 and DELETED in response.content.decode()
    assert not study.participants.exists()


@pytest.mark.parametrize("status", [Study.Status.OPEN, Study.Status.PAUSED, Study.Status.CLOSED])
def test_a_preview_link_reused_after_the_draft_makes_no_participant(listening_study, status):
    listening_study.status = status
    listening_study.save()
    response = Client().post(_link(listening_study, "preview-e6b88128"))
    page = response.content.decode()  # a browser that entered nothing by it: nothing deleted
    assert response.status_code == 403 and PREVIEW_LINK in page and DELETED not in page
    assert not listening_study.participants.exists()
    # any other id is a participant's, as before
    other = Client().post(_link(listening_study, "previewer-1"))
    assert other.status_code == (302 if status == Study.Status.OPEN else 403)


@pytest.mark.parametrize(
    "query", ["", "?PROLIFIC_PID=test-pid&STUDY_ID=s&SESSION_ID=se", "?pid=erin-test"]
)
def test_a_draft_welcome_page_by_the_study_link_is_told_to_open_it_again_once_it_opened(
    client, listening_study, experimenter, query
):
    study = _draft(listening_study)
    client.force_login(experimenter)
    link = reverse("studies:entry", args=[study.slug]) + query
    welcome = client.get(link, HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert "Preview of a draft study" in welcome
    _open(client, study)
    response = client.post(link, {"preview": "1"}, HTTP_USER_AGENT=DESKTOP_UA)  # its Continue
    page = response.content.decode()  # nothing was stored, and its own link is the way in
    assert (
        response.status_code == 403
        and OPEN_AGAIN in page
        and "now open: to take part, open the study" in page
    )
    assert WHY not in page and DELETED not in page and "preview link" not in page
    assert not study.participants.exists()
    # the same link's welcome page of the open study is a participant's, and lets one in
    assert "Preview of a draft study" not in client.get(link).content.decode()
    assert client.post(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 302


def test_a_draft_welcome_page_says_on_its_form_that_it_is_a_preview(
    client, listening_study, experimenter
):
    client.force_login(experimenter)
    link = reverse("studies:entry", args=[listening_study.slug])
    assert 'name="preview"' not in client.get(link).content.decode()  # open: no preview
    _draft(listening_study)
    assert 'name="preview" value="1"' in client.get(link).content.decode()


def test_a_preview_tab_mid_flow_after_open_is_told_it_was_a_preview(
    client, listening_study, experimenter
):
    study = _draft(listening_study)
    client.force_login(experimenter)
    client.post(_link(study, "preview-mid"), HTTP_USER_AGENT=DESKTOP_UA)
    p = to_step(client, study.participants.get(external_pid="preview-mid"), "consent")
    _open(client, study)  # deletes the preview
    for response in (
        client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA),
        client.post(url(p), {"step": "consent", "decision": "agree"}, HTTP_USER_AGENT=DESKTOP_UA),
    ):
        page = response.content.decode()
        assert response.status_code == 403 and WHY in page and "answers so far are kept" not in page
    # another browser with that page's address is not told whose it was
    other = Client().get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert other.status_code == 403 and WHY not in other.content.decode()


def test_a_draft_welcome_page_continued_once_the_study_paused_says_it_is_not_open(
    client, listening_study, experimenter
):
    study = _draft(listening_study)
    client.force_login(experimenter)
    link = reverse("studies:entry", args=[study.slug])
    client.get(link, HTTP_USER_AGENT=DESKTOP_UA)
    Study.objects.filter(pk=study.pk).update(status=Study.Status.PAUSED)  # opened, then paused
    response = client.post(link, {"preview": "1"}, HTTP_USER_AGENT=DESKTOP_UA)
    page = response.content.decode()
    assert response.status_code == 403 and "not open at the moment" in page
    assert OPEN_AGAIN not in page and not study.participants.exists()


def test_a_draft_welcome_page_continued_after_the_study_opened_is_told_so_in_japanese(
    client, listening_study, experimenter
):
    study = _draft(listening_study)
    client.force_login(experimenter)
    link = reverse("studies:entry", args=[study.slug]) + "?lang=ja"
    client.get(link, HTTP_USER_AGENT=DESKTOP_UA)
    _open(client, study)
    page = client.post(link, {"preview": "1"}, HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert "下書き段階" in page and "もう一度開いて" in page and "削除" not in page


def test_a_preview_tab_whose_browser_entered_a_preview_is_told_what_it_entered_was_deleted(
    client, listening_study, experimenter
):
    # The welcome page of a preview link posted again (the back button) after that preview
    # was entered in this browser and the study opened: its answers were deleted, and it says so.
    study = _draft(listening_study)
    client.force_login(experimenter)
    link = _link(study, "preview-back")
    client.get(link, HTTP_USER_AGENT=DESKTOP_UA)
    client.post(link, {"preview": "1"}, HTTP_USER_AGENT=DESKTOP_UA)
    assert study.participants.filter(external_pid="preview-back").exists()
    _open(client, study)
    response = client.post(link, {"preview": "1"}, HTTP_USER_AGENT=DESKTOP_UA)
    assert response.status_code == 403 and DELETED in response.content.decode()
    assert not study.participants.exists()


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("status", [Study.Status.PAUSED, Study.Status.CLOSED])
def test_a_preview_link_on_a_study_not_open_says_what_the_study_link_would(
    listening_study, status, lang
):
    """Not "use the study's link", which refuses too while the study is paused or closed
    (findings_rdiff2, 2): the refusal says what that link says."""
    listening_study.settings |= {"languages": ["en", "ja"]}
    listening_study.status = status
    listening_study.save()
    browser = Client()
    preview = browser.get(_link(listening_study, "preview-x1") + f"&lang={lang}")
    plain = browser.get(reverse("studies:entry", args=[listening_study.slug]) + f"?lang={lang}")
    page = preview.content.decode()
    assert preview.status_code == 403 and NOT_OPEN[status, lang] in page
    assert USE_THE_LINK[lang] not in page
    assert ("preview link" if lang == "en" else "プレビュー用のリンク") in page
    assert plain.status_code == 403 and NOT_OPEN[status, lang] in plain.content.decode()


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("status", [Study.Status.PAUSED, Study.Status.CLOSED])
def test_a_preview_this_browser_entered_on_a_study_not_open_says_what_the_study_link_would(
    client, listening_study, experimenter, status, lang
):
    study = _draft(listening_study)
    study.settings |= {"languages": ["en", "ja"]}
    study.save()
    client.force_login(experimenter)
    link = _link(study, "preview-mid") + f"&lang={lang}"
    client.post(link, HTTP_USER_AGENT=DESKTOP_UA)
    p = to_step(client, study.participants.get(external_pid="preview-mid"), "consent")
    _open(client, study)  # deletes the preview
    Study.objects.filter(pk=study.pk).update(status=status)
    page_of_it = url(p) + f"?lang={lang}"  # its participant is gone, and with it its language
    for response in (client.get(link), client.get(page_of_it, HTTP_USER_AGENT=DESKTOP_UA)):
        page = response.content.decode()
        assert response.status_code == 403 and NOT_OPEN[status, lang] in page
        assert USE_THE_LINK[lang] not in page
        assert ("has been deleted" if lang == "en" else "削除されました") in page
