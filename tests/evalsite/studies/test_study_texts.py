"""A study's participant-facing texts per language (`Study.texts`): the name, description and
consent text a researcher gives for one language are what that language's participants see on
every page; a language without its own sees the study's default texts. The researcher sets them
in Settings, sees them in the edit history and the export, and is warned on the study page when
an offered language has no consent text of its own."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from evalsite.studies import history
from evalsite.studies.export_provenance import config_snapshot
from evalsite.studies.models import Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.form_pages import page_version
from tests.evalsite.studies.participant_steps import to_step, url
from tests.evalsite.studies.test_experimenter import _study_post

pytestmark = pytest.mark.django_db

JA = {"name": "ドラムとベースの聴き比べ", "description": "ドラムとベースについての実験です。",
      "consent_text": "参加に同意します。"}  # fmt: skip


@pytest.fixture
def bilingual(study) -> Study:
    study.consent_text = "You agree to take part."
    study.description = "A study of drums and bass."
    study.status = Study.Status.OPEN
    study.settings = {**study.settings, "languages": ["en", "ja"]}
    study.texts = {"ja": JA}
    study.save()
    return study


def _page(client, study: Study, language: str, step: str) -> str:
    """The page at `step` of a new participant who opened the study link in `language`."""
    client = Client()  # a participant of their own: the link resumes the session's participant
    p = to_step(client, enter(client, study, lang=language), step)
    assert p.language == language
    return client.get(url(p)).content.decode()


def _title_and_header(html: str) -> tuple[str, str]:
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    brand = re.search(r'<span class="brand">(.*?)</span>', html, re.S)
    assert title and brand
    return title.group(1).strip(), brand.group(1).strip()


@pytest.mark.parametrize("step", ["consent", "instructions"])
def test_a_japanese_participant_sees_the_studys_japanese_name_on_every_page(
    client, bilingual, step
):
    title, brand = _title_and_header(_page(client, bilingual, "ja", step))
    assert JA["name"] in title and brand == JA["name"]
    title, brand = _title_and_header(_page(client, bilingual, "en", step))
    assert "Drums and bass" in title and brand == "Drums and bass"


def test_each_participant_reads_the_consent_text_and_description_of_their_language(
    client, bilingual
):
    ja_consent = _page(client, bilingual, "ja", "consent")
    assert JA["consent_text"] in ja_consent and "You agree to take part." not in ja_consent
    en_consent = _page(client, bilingual, "en", "consent")
    assert "You agree to take part." in en_consent and JA["consent_text"] not in en_consent
    ja_instructions = _page(client, bilingual, "ja", "instructions")
    assert JA["description"] in ja_instructions
    assert "A study of drums and bass." not in ja_instructions


def test_a_language_without_a_text_of_its_own_gets_the_default_text(client, bilingual):
    bilingual.texts = {"ja": {"consent_text": JA["consent_text"]}}
    bilingual.save()
    html = _page(client, bilingual, "ja", "consent")
    assert _title_and_header(html)[1] == "Drums and bass"
    assert JA["consent_text"] in html
    assert bilingual.text("description", "ja") == "A study of drums and bass."


def test_the_researcher_sets_each_languages_texts_in_settings(client, alice, bilingual):
    client.force_login(alice)
    edit = reverse("studies:study_edit", args=[bilingual.pk])
    form = client.get(edit).content.decode()
    assert 'name="name_ja"' in form and 'name="consent_text_ja"' in form
    assert JA["consent_text"] in form  # the saved text is shown for editing
    post = _study_post(name="Drums and bass", instruments=["drums", "bass"], name_ja="新しい名前",
                       consent_text_ja="同意します。", description_ja="",
                       version=page_version(client, bilingual))  # fmt: skip
    assert client.post(edit, post).status_code == 302
    bilingual.refresh_from_db()
    assert bilingual.texts == {"ja": {"name": "新しい名前", "consent_text": "同意します。"}}
    changed = bilingual.events.latest("at").changes
    assert changed["texts.ja.name"] == [JA["name"], "新しい名前"]
    assert changed["texts.ja.description"] == [JA["description"], None]


def test_the_export_and_history_keep_each_languages_texts(bilingual):
    assert config_snapshot(bilingual)["texts"] == {"ja": JA}
    assert history.state(bilingual)["texts.ja.consent_text"] == JA["consent_text"]


def test_it_refuses_texts_for_a_field_participants_are_not_shown(bilingual):
    bilingual.texts = {"ja": {"slug": "x"}}
    with pytest.raises(ValidationError, match="texts"):
        bilingual.full_clean()


def test_it_warns_when_an_offered_language_has_no_consent_text_of_its_own(client, alice, bilingual):
    client.force_login(alice)
    page = reverse("studies:study_detail", args=[bilingual.pk])
    assert "no consent text of its own" not in client.get(page).content.decode()
    bilingual.texts = {"ja": {"name": JA["name"]}}
    bilingual.save()
    html = client.get(page).content.decode()
    assert "Japanese (ja) has no consent text of its own" in html
    bilingual.settings = {**bilingual.settings, "languages": ["en"]}
    bilingual.save()
    assert "no consent text of its own" not in client.get(page).content.decode()
    # With no consent text at all, the "No consent text" warning says what is missing.
    bilingual.settings, bilingual.consent_text = {"languages": ["en", "ja"]}, ""
    bilingual.save()
    html = client.get(page).content.decode()
    assert "No consent text" in html and "no consent text of its own" not in html
