"""The consent page's paragraph on what is recorded (`consent.RECORDING`) names everything the
site stores about a participant: every field of `Participant` and `Answer`, every key of their
JSON records that the pages send (the browser check's report, the trial page's log) and every
column of the export's participants and answers tables is either covered by a phrase of the
paragraph, in English and in Japanese, or is something the site makes itself (ids, the design,
codes). A new field or column fails here until the paragraph says it (or it is listed as the
site's own). Changing the paragraph makes a new consent version, as editing the consent text
does (test_consent_versions.py)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import translation

from evalsite.studies import consent
from evalsite.studies.export_codebook import CODEBOOK
from evalsite.studies.models import Answer, Participant
from tests.conftest import ROOT
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.participant_steps import DESKTOP_UA, post, to_step, url

pytestmark = pytest.mark.django_db

# English phrase of RECORDING -> (its Japanese in the translation, what it covers: model fields
# "Model.field", keys of their JSON fields "Model.field.key", export columns "table.column").
COVERED: dict[str, tuple[str, set[str]]] = {
    "your answers": ("回答", {
        "Answer.chosen", "Answer.chosen_position", "Participant.early_answers",
        "answers.chosen", "answers.chosen_position", "answers.agree", "answers.catch_correct",
        "participants.answers", "participants.practice_answers", "participants.catch_answers",
        "participants.catch_correct", "participants.early_answers",
    }),
    "how long each took": ("それぞれにかかった時間", {
        "Answer.response_ms", "Answer.client.response_ms", "answers.response_ms",
    }),
    "how often you played each sound": ("各音声を再生した回数", {
        "Answer.plays_reference", "Answer.plays_a", "Answer.plays_b", "Answer.client.plays",
        "Answer.client.events", "answers.plays_reference", "answers.plays_a", "answers.plays_b",
    }),
    "how much of it you heard": ("聴いた長さ", {
        "Answer.heard_reference", "Answer.heard_a", "Answer.heard_b", "Answer.client.heard",
        "answers.heard_reference", "answers.heard_a", "answers.heard_b",
    }),
    "your questionnaire answers": ("アンケート", {
        "Participant.questionnaire", "participants.musical_training",
        "participants.plays_instrument", "participants.device", "participants.headphones",
    }),
    "the results of the headphone check": ("ヘッドホンチェック", {
        "Participant.screening", "Participant.screening_passed", "participants.screening_passed",
        "participants.antiphase_correct", "participants.antiphase_trials",
        "participants.huggins_correct", "participants.huggins_trials",
        "participants.screening_reloads", "answers.screening_passed",
    }),
    "the IDs in your study link": ("実験のリンクに含まれる ID", {
        "Participant.prolific_pid", "Participant.prolific_study_id",
        "Participant.prolific_session_id", "Participant.external_pid", "Participant.session",
        "Participant.recruitment", "participants.prolific_pid", "participants.prolific_study_id",
        "participants.prolific_session_id", "participants.external_pid", "participants.session",
        "participants.participant_id", "participants.recruitment", "answers.session",
    }),
    "which pages you reached and when": ("どのページにいつ進んだか", {
        "Participant.step", "Participant.started_at", "Participant.consented_at",
        "Participant.last_seen_at", "Participant.finished_at", "Answer.shown_at",
        "Answer.created_at", "participants.status", "participants.started_at",
        "participants.consented_at", "participants.finished_at", "participants.last_seen_at",
        "answers.shown_at", "answers.created_at",
    }),
    "in which language": ("表示言語", {"Participant.language", "participants.language"}),
    "its name and version": ("ブラウザの種類とバージョン", {
        "Participant.user_agent", "Participant.browser.ua_mobile", "Participant.browser.phone",
        "participants.user_agent", "participants.phone",
    }),
    "whether it supports the audio the study needs": ("実験に必要な音声機能への対応", {
        "Participant.browser.web_audio", "participants.web_audio",
    }),
    "your screen and window size": ("画面とウィンドウの大きさ", {
        "Participant.browser.screen", "Answer.client.viewport",
    }),
    "whether your device has a touch screen": ("タッチ操作の有無", {"Participant.browser.touch"}),
    "its audio output sample rate": ("音声の出力サンプリング周波数", {
        "Participant.audio_sample_rate", "Answer.audio_sample_rate",
        "Answer.client.audio_sample_rate", "participants.audio_sample_rate",
        "answers.audio_sample_rate",
    }),
    "how often and for how long you switched to another window or tab": (
        "別のウィンドウやタブに切り替えた回数と時間", {
            "Answer.blur_events", "Answer.client.blur_events", "Answer.client.hidden_ms",
            "Answer.client.hidden_before_unlock_ms", "answers.blur_events",
        },
    ),
    "a one-way coded form of your network address": ("ネットワークのアドレスを", {
        "Participant.entry_address", "Participant.entry_network",
    }),
}  # fmt: skip
# What the site makes itself, about the study or the participant's place in it, not observed of
# the participant: ids, the design and order of trials, the codes it shows, what the consent page
# said (its version), step state.
SITE_MADE = {
    "Participant.id", "Participant.study", "Participant.token", "Participant.state",
    "Participant.seed", "Participant.is_preview", "Participant.withdrawn_answers",
    "Participant.consent_version", "Participant.screen_out_code",
    "Participant.completion_code", "Answer.id", "Answer.participant", "Answer.trial",
    "Answer.trial_index", "Answer.displayed_first", "answers.study", "answers.participant",
    "answers.trial", "answers.trial_index", "answers.instrument", "answers.reference",
    "answers.candidate_a", "answers.candidate_b", "answers.displayed_first",
    "answers.model_choice", "answers.model_margin", "answers.is_catch", "answers.catch_kind",
    "answers.is_practice", "participants.study", "participants.participant",
    "participants.withdrawn_answers", "participants.consent_version",
    "participants.screen_out_code", "participants.completion_code",
    "participants.completion_code_now", "participants.slots",
}  # fmt: skip
# The JSON fields whose keys the pages send (the rest hold what the site computes or a form's
# validated fields: questionnaire, screening, recruitment are covered as wholes).
SENT_KEYS = {"Participant.browser", "Answer.client"}


def _stored_names() -> set[str]:
    names = set()
    for model in (Participant, Answer):
        for field in model._meta.get_fields():
            if field.concrete:
                names.add(f"{model.__name__}.{field.name}")
    return names - SENT_KEYS


def _trial_log_keys() -> set[str]:
    """The keys of the trial log participant.js posts with each answer (stored whole)."""
    js = (ROOT / "static" / "studies" / "participant.js").read_text(encoding="utf-8")
    body = re.search(r"form\.elements\.log\.value = JSON\.stringify\(\{(.*?)\}\);", js, re.S)
    assert body, "participant.js posts its trial log as JSON.stringify({...})"
    return {f"Answer.client.{k}" for k in re.findall(r"(\w+):", body.group(1))}


def _browser_report_keys(study) -> set[str]:
    """The keys of the browser check's report as stored from the welcome page's form."""
    study.status = "open"
    study.save()
    client = Client()
    p = enter(client, study, pid="keys")
    post(client, p, "browser_check", web_audio="1", touch="0", screen="1280x800", ua_mobile="0",
         sample_rate="48000")  # fmt: skip
    p.refresh_from_db()
    return {f"Participant.browser.{k}" for k in p.browser}


def _covered() -> set[str]:
    return set().union(*(names for _ja, names in COVERED.values()))


def test_every_stored_field_and_exported_column_is_named_or_made_by_the_site(study):
    stored = _stored_names() | _trial_log_keys() | _browser_report_keys(study)
    exported = {f"{t}.{c}" for t in ("participants", "answers") for c in CODEBOOK[t]}
    assert {"Answer.client.viewport", "Participant.browser.touch"} <= stored  # found at all
    unnamed = sorted((stored | exported) - _covered() - SITE_MADE)
    assert unnamed == [], "add these to the consent page's RECORDING (consent.py) and here"
    assert _covered() & SITE_MADE == set()


def test_the_english_recording_paragraph_says_each_phrase():
    with translation.override("en"):
        text = str(consent.RECORDING)
    assert [p for p in COVERED if p not in text] == []
    assert "We do not record audio from your device." in text


def test_the_japanese_recording_paragraph_says_each_phrase_and_no_closed_list():
    with translation.override("ja"):
        text = str(consent.RECORDING)
    assert [ja for ja, _names in COVERED.values() if ja not in text] == []
    assert "お使いの端末の音声は録音しません。" in text


def test_the_consent_page_shows_what_is_recorded_in_japanese(study):
    study.settings = {**study.settings, "languages": ["en", "ja"]}
    study.status = "open"
    study.save()
    client = Client()
    p = to_step(client, enter(client, study, pid="ja-rec", lang="ja"), "consent")
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert "タッチ操作の有無" in page and "別のウィンドウやタブに切り替えた回数と時間" in page


def test_a_changed_recording_paragraph_is_a_new_consent_version(study, monkeypatch):
    # A new site paragraph (a deploy) changes the page: one loaded before it agrees to nothing
    # and is shown again; agreeing then records a version with the new paragraph.
    study.status = "open"
    study.save()
    client = Client()
    p = to_step(client, enter(client, study, pid="rec-v"), "consent")
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    before = re.search(r'name="consent_version" value="([0-9a-f]{64})"', page).group(1)
    monkeypatch.setattr(consent, "RECORDING", "We record a new list of things.")
    again = post(client, p, "consent", decision="agree", consent_version=before)
    p.refresh_from_db()
    assert p.step == "consent" and p.consent_version is None
    assert "We record a new list of things." in again.content.decode()
    now = re.search(r'name="consent_version" value="([0-9a-f]{64})"', again.content.decode())
    assert now.group(1) != before
    post(client, p, "consent", decision="agree", consent_version=now.group(1))
    p.refresh_from_db()
    assert p.consent_version.sha256 == now.group(1)
    assert p.consent_version.text.endswith("We record a new list of things.")
