"""What the pages say when a sound stops part-way: on the screening, whose sounds play once and
whose answers stay locked until they have, reloading the page is the only way on, so the message
asks for it (in English and in Japanese), not only says what a reload would do."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import DESKTOP_UA, to_step, url

pytestmark = pytest.mark.django_db

ASKS_TO_RELOAD = {"en": "Please reload this page", "ja": "このページを再読み込みして"}


def _stalled_message(page: str) -> str:
    found = re.search(r"<p[^>]*data-stalled[^>]*>(.*?)</p>", page, re.S)
    assert found, "the page has the message for a sound that stopped"
    return found.group(1)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_screening_asks_to_reload_when_a_sound_stops(listening_study, lang):
    listening_study.settings = {**listening_study.settings, "languages": ["en", "ja"]}
    listening_study.save()
    client = Client()
    p = to_step(client, enter(client, listening_study, pid=f"stall-{lang}", lang=lang),
                "screening")  # fmt: skip
    assert p.language == lang
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    message = _stalled_message(page)
    assert ASKS_TO_RELOAD[lang] in message
    assert ("saved" if lang == "en" else "保存されています") in message
