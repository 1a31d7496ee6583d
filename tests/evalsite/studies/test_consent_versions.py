"""Which consent each participant agreed to (`ConsentVersion`): the consent page's whole content
in the participant's language (the study's consent text and the site's paragraphs) is recorded
at "I agree"; an edit between loading the page and agreeing shows the page again with the new
text, recording nothing; the export lists each version with its text and who agreed to it; the
study page says when participants agreed to more than one."""

from __future__ import annotations

import hashlib
import io
import json
import re

import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from evalsite.studies.export import export_file
from evalsite.studies.export_answers import participants_dataframe
from evalsite.studies.export_codebook import CODEBOOK
from evalsite.studies.models import Participant, Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.participant_steps import DESKTOP_UA, post, to_step, url

pytestmark = pytest.mark.django_db

FIRST, SECOND = "You agree to take part in the first version.", "The second version of the text."
JA_CONSENT = "参加に同意します。"


@pytest.fixture
def open_study(study) -> Study:
    study.consent_text = FIRST
    study.status = Study.Status.OPEN
    study.settings = {**study.settings, "languages": ["en", "ja"]}
    study.save()
    return study


def _edit(study: Study, **fields) -> None:
    for name, value in fields.items():
        setattr(study, name, value)
    study.save()


def _at_consent(study: Study, **params) -> tuple[Client, Participant, str]:
    """A new participant at the consent page, and the version the page they loaded shows."""
    client = Client()
    p = to_step(client, enter(client, study, **params), "consent")
    return client, p, _shown_version(client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA))


def _shown_version(response) -> str:
    found = re.search(r'name="consent_version" value="([0-9a-f]{64})"', response.content.decode())
    assert found, "the consent form posts the version it shows"
    return found.group(1)


def _agree(client, p: Participant, version: str) -> Participant:
    post(client, p, "consent", decision="agree", consent_version=version)
    p.refresh_from_db()
    return p


def test_agreeing_to_a_consent_text_edited_since_the_page_loaded_shows_the_new_text(open_study):
    client, p, shown = _at_consent(open_study)
    _edit(open_study, consent_text=SECOND)
    again = post(client, p, "consent", decision="agree", consent_version=shown)
    p.refresh_from_db()
    assert p.step == "consent" and p.consented_at is None and p.consent_version is None
    assert SECOND in again.content.decode() and FIRST not in again.content.decode()
    now = _shown_version(again)
    assert now != shown
    p = _agree(client, p, now)
    assert p.step == "questionnaire" and p.consent_version.sha256 == now
    assert SECOND in p.consent_version.text


def test_turning_screening_off_since_the_page_loaded_shows_the_page_again(open_study):
    client, p, shown = _at_consent(open_study)
    _edit(open_study, settings={**open_study.settings, "screening": False})
    page = post(client, p, "consent", decision="agree", consent_version=shown).content.decode()
    p.refresh_from_db()
    assert p.step == "consent" and "If you do not pass the headphone check" not in page


def test_participants_before_and_after_an_edit_record_their_own_versions_in_the_export(
    open_study,
):
    before = _agree(*_at_consent(open_study))
    _edit(open_study, consent_text=SECOND)
    after = _agree(*_at_consent(open_study))
    assert before.consent_version != after.consent_version
    participants = participants_dataframe(open_study).set_index("participant")
    assert participants.loc[before.pk, "consent_version"] == before.consent_version.sha256
    assert participants.loc[after.pk, "consent_version"] == after.consent_version.sha256
    versions = pd.read_csv(io.BytesIO(export_file(open_study, "consent_versions.csv")))
    assert list(versions.columns) == list(CODEBOOK["consent_versions"])
    by_version = versions.set_index("version")
    first = by_version.loc[before.consent_version.sha256]
    second = by_version.loc[after.consent_version.sha256]
    assert FIRST in first["text"] and SECOND not in first["text"] and first["participants"] == 1
    assert SECOND in second["text"] and second["participants"] == 1
    assert "If you do not pass the headphone check" in first["text"]  # the site's paragraph too
    assert set(versions["language"]) == {"en"}


def test_a_japanese_participant_records_the_japanese_texts_version(open_study):
    _edit(open_study, texts={"ja": {"consent_text": JA_CONSENT}})
    client, p, shown = _at_consent(open_study, lang="ja")
    p = _agree(client, p, shown)
    version = p.consent_version
    assert p.step == "questionnaire" and version.sha256 == shown and version.language == "ja"
    assert JA_CONSENT in version.text and FIRST not in version.text
    assert "Taking part is voluntary" not in version.text  # the site's paragraph in Japanese
    english = _agree(*_at_consent(open_study, lang="en"))
    assert english.consent_version != version and FIRST in english.consent_version.text


def test_a_form_from_before_versions_were_posted_records_the_version_shown_now(open_study):
    client, p, shown = _at_consent(open_study)
    post(client, p, "consent", decision="agree")
    p.refresh_from_db()
    assert p.step == "questionnaire" and p.consent_version.sha256 == shown


def test_the_study_page_says_when_participants_agreed_to_more_than_one_version(
    client, alice, open_study
):
    client.force_login(alice)
    page = reverse("studies:study_detail", args=[open_study.pk])
    _agree(*_at_consent(open_study))
    _agree(*_at_consent(open_study, lang="ja"))  # another language's page is no edit
    assert "consent_versions.csv" not in client.get(page).content.decode()
    _edit(open_study, consent_text=SECOND)
    _agree(*_at_consent(open_study))
    html = client.get(page).content.decode()
    assert "agreed to 2 versions of the consent page" in html and "consent_versions.csv" in html


def test_a_consent_text_starting_like_a_formula_hashes_back_to_its_version_from_the_json(
    open_study,
):
    # A bullet list starts with "-": the CSV cell gets the spreadsheet guard's apostrophe, so the
    # exact text to check a version against is in consent_versions.json.
    _edit(open_study, consent_text="- You agree to take part.\n- You may stop at any time.")
    p = _agree(*_at_consent(open_study))
    (row,) = json.loads(export_file(open_study, "consent_versions.json"))
    assert list(row) == list(CODEBOOK["consent_versions"])
    assert row["version"] == p.consent_version.sha256 and row["participants"] == 1
    assert row["text"].startswith("- You agree")
    assert (
        hashlib.sha256(f"{row['language']}\n{row['text']}".encode()).hexdigest() == row["version"]
    )
    csv_text = pd.read_csv(io.BytesIO(export_file(open_study, "consent_versions.csv")))["text"][0]
    assert csv_text == "'" + row["text"]


def test_the_page_shown_again_after_an_edit_says_the_text_was_updated(open_study):
    # Without a word, the same-looking page comes back and the second click is made unread.
    client, p, shown = _at_consent(open_study)
    notice = "The consent text was updated since this page was loaded."
    assert notice not in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    _edit(open_study, consent_text=SECOND)
    again = post(client, p, "consent", decision="agree", consent_version=shown).content.decode()
    assert re.search(rf'<p [^>]*role="alert"[^>]*>{re.escape(notice)}', again)
    assert notice not in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()


def test_the_updated_notice_is_in_japanese_for_a_japanese_participant(open_study):
    client, p, shown = _at_consent(open_study, lang="ja")
    _edit(open_study, texts={"ja": {"consent_text": JA_CONSENT}})
    again = post(client, p, "consent", decision="agree", consent_version=shown).content.decode()
    assert "同意書の内容が更新されました" in again
