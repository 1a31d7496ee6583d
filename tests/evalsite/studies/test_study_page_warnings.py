"""The study page and settings form (evalsite/studies/experimenter.py): design warnings shown while
the study can still change and gone once it is closed; the settings labels."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evalsite.studies.models import Study
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def _page(client, study) -> str:
    return client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()


@pytest.mark.parametrize("status", [Study.Status.DRAFT, Study.Status.OPEN, Study.Status.PAUSED])
def test_it_warns_of_catch_settings_the_trials_cannot_meet_while_the_study_can_change(
    client, alice, study, status
):
    study.settings = {**study.settings, "catch": {"attention": 3}}
    study.status = status
    study.save()
    client.force_login(alice)
    assert "Settings ask for 3 attention catch trial(s)" in _page(client, study)


def test_it_no_longer_warns_of_catch_settings_once_the_study_is_closed(client, alice, study):
    study.settings = {**study.settings, "catch": {"attention": 3}}
    study.status = Study.Status.CLOSED
    study.save()
    client.force_login(alice)
    assert "Settings ask for" not in _page(client, study)


def test_the_settings_form_names_the_screen_out_code_as_the_docs_do(client, alice, study):
    client.force_login(alice)
    html = client.get(reverse("studies:study_edit", args=[study.pk])).content.decode()
    assert "Screen-out code" in html and "Screen out code" not in html


def test_it_warns_that_participants_would_see_no_consent_text_until_the_study_is_closed(
    client, alice, study
):
    # Opening stays allowed (a pilot may not need one), but a study about to recruit must not
    # miss that its consent page shows only the site's own paragraph.
    client.force_login(alice)
    study.consent_text = ""
    study.save()
    assert "No consent text" in _page(client, study)
    study.consent_text = "You agree to take part."
    study.save()
    assert "No consent text" not in _page(client, study)
    study.consent_text, study.status = "", Study.Status.CLOSED
    study.save()
    assert "No consent text" not in _page(client, study)


@pytest.mark.parametrize(
    ("languages", "texts"),
    [
        (["ja"], {"ja": {"consent_text": "参加に同意します。"}}),
        (
            ["en", "ja"],
            {"en": {"consent_text": "You agree."}, "ja": {"consent_text": "同意します。"}},
        ),
    ],
)
def test_it_does_not_warn_of_no_consent_text_when_each_offered_language_has_its_own(
    client, alice, study, languages, texts
):
    # The consent text given only under "Texts per language" is what those participants read.
    client.force_login(alice)
    study.consent_text, study.texts = "", texts
    study.settings = {**study.settings, "languages": languages}
    study.save()
    html = _page(client, study)
    assert "No consent text" not in html and "no consent text of its own" not in html


def test_it_names_the_offered_languages_whose_participants_would_see_no_consent_text(
    client, alice, study
):
    client.force_login(alice)
    study.consent_text, study.texts = "", {"ja": {"consent_text": "同意します。"}}
    study.settings = {**study.settings, "languages": ["en", "ja"]}
    study.save()
    html = _page(client, study)
    assert "No consent text for English (en)" in html and "Japanese (ja)" not in html
