"""Fixtures the participant browser test modules share (imported with `import *`): media in a
temporary folder with the short screening, the study's owner, and a page in a fresh context."""

from __future__ import annotations

import pytest

from tests.evalsite.studies.conftest import SHORT_SCREENING

WAIT_MS = 15000

__all__ = ["WAIT_MS", "_media_and_screening", "owner", "page"]


@pytest.fixture(autouse=True)
def _media_and_screening(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # A fast hasher: the default one costs about a second per user on this machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CSN_SCREENING = SHORT_SCREENING


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("erin", "erin@example.org", "listen-42-carefully")


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()
