"""Shared personas and fixtures for the studies tests.

- `experimenter`: the researcher who owns the study (erin).
- `listening_catalogue`: real, short WAV clips generated here (1.2 s tones and noise, 6 pieces,
  plus two attention sets built from "stems"), stored under a temporary MEDIA_ROOT.
- `listening_study`: an open study on drums and guitar built by the random design: per instrument
  3 main trials, one catch trial of each kind, and 2 practice trials; screening shortened.
- `enter(client, study, **params)`: enters a study through its link like a participant.
- `participant(study, seed)`: a participant made at the instructions, for the design tests
  that assign trials without the pages.
"""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import pytest
from django.urls import reverse

from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue
from evalsite.studies.models import Participant, Study
from evalsite.studies.random_design import build_random_trials

SR = 22050
SECONDS = 1.2
SHORT_SCREENING = {"trials": 2, "pass_correct": 2, "tone_s": 0.25, "gap_s": 0.1,
                   "calibration_s": 0.5}  # fmt: skip


@pytest.fixture(autouse=True)
def _media_and_screening(settings, tmp_path):
    """Every studies test writes media to its own folder and uses the short screening."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # A fast hasher: the default one costs about a second per user on this machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CSN_SCREENING = SHORT_SCREENING


@pytest.fixture
def experimenter(django_user_model):
    return django_user_model.objects.create_user("erin", "erin@example.org", "listen-42-carefully")


def tone(freq: float, seed: int, seconds: float = SECONDS) -> np.ndarray:
    """A decaying tone plus a little noise: distinct per piece, never silent. (T,)"""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-2 * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def make_catalogue(owner, pieces: int = 6, seconds: float = SECONDS) -> Catalogue:
    catalogue = Catalogue.objects.create(owner=owner, name="generated")
    mixes = []
    for i in range(pieces):
        mixes.append(
            clip_from_array(tone(220 * 1.25**i, i, seconds), SR, catalogue, -23.0,
                            name=f"piece{i} mix", piece=f"Piece{i:02d}")
        )  # fmt: skip
    for n, (instrument, x, y) in enumerate([("drums", 0, 1), ("guitar", 2, 3)]):
        group = f"Piece{x:02d}+Piece{y:02d}:{instrument}"
        for role, freq in (("same", 220 * 1.25**x), ("different", 220 * 1.25**y)):
            clip_from_array(
                tone(freq, 100 + n, seconds) + tone(330, 200 + n, seconds), SR, catalogue, -23.0,
                name=f"attention {role}", piece=f"Piece{x:02d}",
                parts={instrument: f"Piece{x if role == 'same' else y:02d}"},
                meta={"kind": "attention", "group": group, "condition": instrument, "role": role,
                      "reference": mixes[x].pk},
            )  # fmt: skip
    return catalogue


@pytest.fixture
def listening_catalogue(experimenter) -> Catalogue:
    return make_catalogue(experimenter)


def make_study(owner, catalogue, per_instrument: int = 3, **settings) -> Study:
    study = Study.objects.create(
        owner=owner, name="Drums and guitar", instruments=["drums", "guitar"],
        status=Study.Status.OPEN, consent_text="You agree to listen carefully.",
        settings={"target_answers_per_trial": 2, "practice_trials": 2,
                  "catch": {"identical": 1, "attention": 1, "repeat": 1}} | settings,
    )  # fmt: skip
    practice = settings.get("practice_trials", 2)
    build_random_trials(study, catalogue, per_instrument, seed=1, practice=practice,
                        catch_per_kind=1)  # fmt: skip
    return study


def participant(study: Study, seed: int) -> Participant:
    return Participant.objects.create(study=study, seed=seed, step="instructions")


@pytest.fixture
def listening_study(experimenter, listening_catalogue) -> Study:
    return make_study(experimenter, listening_catalogue)


def enter(client, study: Study, **params) -> Participant:
    """Open the study link with recruitment parameters and continue from its welcome page
    without answering the browser check (the participant is at it); returns the participant
    made or resumed. (The link's GET alone makes no participant: test_entry.)"""
    link = reverse("studies:entry", args=[study.slug])
    response = client.post(f"{link}?{urlencode(params)}" if params else link)
    assert response.status_code == 302, response.content[:500]
    token = response["Location"].rstrip("/").split("/")[-1]
    return Participant.objects.get(token=token)
