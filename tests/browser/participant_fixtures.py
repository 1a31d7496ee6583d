"""Fixtures the participant browser test modules share (imported with `import *`): media in a
temporary folder with the short screening, the study's owner, a page in a fresh context and the
screenshots folder; and the short study most of them run (quick_study, imported by name)."""

from __future__ import annotations

import pytest

# The studies tests' autouse fixture (media folder, fast hasher, short screening) and study
# factories, reused.
from tests.evalsite.studies.conftest import _media_and_screening, make_catalogue, make_study

WAIT_MS = 15000
CLIP_S = 0.6  # the clips' length (the stall test's are longer: its own CLIP_S)
# A study's catch setting that gives a participant no catch trial (walks that check pages only).
NO_CATCH = {"identical": 0, "attention": 0, "repeat": 0}

__all__ = ["WAIT_MS", "_media_and_screening", "owner", "page", "screens"]


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("erin", "erin@example.org", "listen-42-carefully")


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def screens(artifacts_dir):
    folder = artifacts_dir / "screens"
    folder.mkdir(exist_ok=True)
    return folder


def quick_study(owner):
    return make_study(owner, make_catalogue(owner, seconds=CLIP_S), per_instrument=1,
                      screening=False, practice_trials=0)  # fmt: skip
