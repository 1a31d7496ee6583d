"""The participant's steps other than the screening and the trials, through Django's test
client: browser check, consent, questionnaire, instructions, and the pages' language.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from evalsite.studies import design_fill
from evalsite.studies.models import FoldedParticipant, Participant, StudyFold
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import post, to_step, url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("rate", ["\u00b2", "99999999999", "-1", "48k"])
def test_it_stores_an_unreadable_output_sample_rate_as_unknown(client, listening_study, rate):
    p = enter(client, listening_study)
    response = post(client, p, "browser_check", web_audio="1", ua_mobile="0", sample_rate=rate)
    assert response.status_code == 302
    p.refresh_from_db()
    assert p.step == "consent" and p.audio_sample_rate is None


def test_it_refuses_phones_when_the_study_does(client, listening_study):
    p = enter(client, listening_study)
    post(client, p, "browser_check", web_audio="1", ua_mobile="1")
    p.refresh_from_db()
    assert p.step == "refused" and p.browser["phone"] is True


def test_it_refuses_a_browser_without_web_audio(client, listening_study):
    p = enter(client, listening_study)
    post(client, p, "browser_check", web_audio="0", ua_mobile="0")
    p.refresh_from_db()
    assert p.step == "refused" and p.state == {"reason": "web_audio"}
    assert b"cannot play the sounds" in client.get(url(p)).content


def test_a_participant_refused_on_a_phone_takes_the_check_again_on_another_device(
    client, listening_study
):
    p = enter(client, listening_study, PROLIFIC_PID="pp-phone")
    post(client, p, "browser_check", web_audio="1", ua_mobile="1")
    design_fill.count_fill(listening_study, timezone.now())  # folds the refused participant
    assert FoldedParticipant.objects.filter(participant=p).exists()

    laptop = Client()
    assert enter(laptop, listening_study, PROLIFIC_PID="pp-phone") == p  # same link, same id
    p.refresh_from_db()
    assert p.step == "browser_check" and p.finished_at is None and p.state == {}
    assert not FoldedParticipant.objects.filter(participant=p).exists()
    fold = StudyFold.objects.get(study=listening_study)
    assert fold.participants == FoldedParticipant.objects.filter(study=listening_study).count()
    post(laptop, p, "browser_check", web_audio="1", ua_mobile="0")
    p.refresh_from_db()
    assert p.step == "consent" and p.browser["phone"] is False
    assert listening_study.participants.count() == 1


def test_a_participant_who_declined_stays_declined_when_coming_back(client, listening_study):
    p = to_step(client, enter(client, listening_study, pid="no-thanks"), "consent")
    post(client, p, "consent", decision="decline")
    assert enter(Client(), listening_study, pid="no-thanks") == p
    p.refresh_from_db()
    assert p.step == "declined"


def test_it_records_a_declined_consent_and_stops(client, listening_study):
    p = to_step(client, enter(client, listening_study), "consent")
    post(client, p, "consent", decision="decline")
    p.refresh_from_db()
    assert p.step == "declined" and not p.slots.exists()


def test_it_shows_questionnaire_errors_without_advancing(client, listening_study):
    p = to_step(client, enter(client, listening_study), "questionnaire")
    response = post(client, p, "questionnaire", musical_training="", device="laptop")
    assert response.status_code == 200 and b'role="alert"' in response.content
    p.refresh_from_db()
    assert p.step == "questionnaire"


def test_it_promises_practice_trials_only_when_the_study_has_some(client, listening_study):
    p = to_step(client, enter(client, listening_study), "instructions")
    assert b"practice trials" in client.get(url(p)).content
    listening_study.settings = {**listening_study.settings, "practice_trials": 0}
    listening_study.save()
    assert b"practice trials" not in client.get(url(p)).content


def test_it_lists_the_instruments_with_the_language_s_separator(client, listening_study):
    p = to_step(client, enter(client, listening_study, lang="ja"), "instructions")
    Participant.objects.filter(pk=p.pk).update(language="ja")
    assert "ドラム、ギター" in client.get(url(p)).content.decode()


def test_it_translates_participant_pages_to_japanese(client, listening_study):
    p = enter(client, listening_study, lang="ja")
    assert p.language == "ja"
    page = client.get(url(p)).content.decode()
    assert "ようこそ" in page and 'lang="ja"' in page
    client.get(url(p), {"lang": "en"})
    assert "Welcome" in client.get(url(p)).content.decode()
