"""Fixtures the participant browser test modules share (imported with `import *`): media in a
temporary folder with the short screening, the study's owner, and a page in a fresh context."""

from __future__ import annotations

import pytest

# The studies tests' autouse fixture (media folder, fast hasher, short screening), reused.
from tests.evalsite.studies.conftest import _media_and_screening

WAIT_MS = 15000

__all__ = ["WAIT_MS", "_media_and_screening", "owner", "page"]


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("erin", "erin@example.org", "listen-42-carefully")


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()
