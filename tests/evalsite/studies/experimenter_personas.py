"""Named personas and a small study shared by the experimenter-side tests.

alice owns the study, carol is a researcher it is shared with, bob is another researcher who must
not see it. Clips are catalogue rows without audio files (the export and views never read audio).
Import the fixtures into a test module with `from ...experimenter_personas import *`.
"""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
import soundfile as sf
from django.utils import timezone

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial

PASSWORD = "listen-carefully-42"

__all__ = [
    "fast_passwords",
    "alice",
    "bob",
    "carol",
    "study",
    "answered_study",
    "wav_bytes",
    "PASSWORD",
]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """PBKDF2 costs seconds per user on a busy 2-core machine; tests need no strong hashes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(django_user_model, name):
    return django_user_model.objects.create_user(name, f"{name}@example.org", PASSWORD)


@pytest.fixture
def alice(django_user_model):
    return _user(django_user_model, "alice")


@pytest.fixture
def bob(django_user_model):
    return _user(django_user_model, "bob")


@pytest.fixture
def carol(django_user_model):
    return _user(django_user_model, "carol")


def _clip(catalogue, i, **fields):
    return Clip.objects.create(
        catalogue=catalogue, name=f"clip{i:02d}.wav", piece=f"Track{i:05d}", status="ready",
        sha256=f"{i:064x}", loudness_lufs=-23.0 + i / 10, duration_s=5.0, sample_rate=22050,
        channels=1, **fields,
    )  # fmt: skip


@pytest.fixture
def study(alice, carol) -> Study:
    """alice's study on drums and bass, shared with carol: 4 main trials (2 with a model
    choice), an identical and an attention catch trial, a repeat of main trial 0, a practice."""
    catalogue = Catalogue.objects.create(owner=alice, name="alice clips")
    clips = [_clip(catalogue, i) for i in range(8)]
    s = Study.objects.create(
        owner=alice, name="Drums and bass", instruments=["drums", "bass"], catalogue=catalogue,
        settings={"target_answers_per_trial": 2},
    )  # fmt: skip
    s.shared_with.add(carol)

    def trial(i, instrument, **fields):
        ref, a, b = clips[i % 8], clips[(i + 1) % 8], clips[(i + 2) % 8]
        return Trial.objects.create(
            study=s, reference=ref, candidate_a=a, candidate_b=b, instrument=instrument, **fields
        )

    main = [
        trial(0, "drums", model_choice="a", model_margin=0.4),
        trial(1, "drums", model_choice="b", model_margin=0.1),
        trial(2, "bass"),
        trial(3, "bass"),
    ]
    trial(4, "drums", is_catch=True, catch_kind="identical", expected="a")
    trial(5, "bass", is_catch=True, catch_kind="attention", expected="b")
    Trial.objects.create(
        study=s, reference=main[0].reference, candidate_a=main[0].candidate_a,
        candidate_b=main[0].candidate_b, instrument="drums", is_catch=True, catch_kind="repeat",
        repeat_of=main[0], model_choice="a", model_margin=0.4,
    )  # fmt: skip
    trial(6, "drums", is_practice=True, expected="b")
    return s


@pytest.fixture
def answered_study(study) -> Study:
    """`study` with three participants: two answered every trial (one kept the repeat, one
    switched), one is half-way; one screened out before any trial."""
    now = timezone.now()
    trials = list(study.trials.order_by("is_practice", "id"))
    trials = [t for t in trials if t.is_practice] + [t for t in trials if not t.is_practice]
    plans = {"p1": len(trials), "p2": len(trials), "p3": 3}
    for n, (name, answered) in enumerate(plans.items()):
        p = Participant.objects.create(
            study=study, external_pid=name, step="done" if answered == len(trials) else "trials",
            screening_passed=True, seed=n,
        )  # fmt: skip
        for index, t in enumerate(trials):
            first = "a" if (index + n) % 2 == 0 else "b"
            Assignment.objects.create(
                participant=p, trial=t, index=index, displayed_first=first,
                reserved_until=now + timedelta(hours=1), shown_at=now,
            )  # fmt: skip
            if index >= answered:
                continue
            chosen = _choice(t, n)
            Answer.objects.create(
                participant=p, trial=t, trial_index=index, chosen=chosen, displayed_first=first,
                chosen_position="A" if chosen == first else "B", response_ms=1000 + index,
                plays_reference=1, plays_a=1, plays_b=2, shown_at=now,
            )  # fmt: skip
    Participant.objects.create(study=study, external_pid="p4", step="screened_out",
                               screening_passed=False)  # fmt: skip
    return study


def _choice(t: Trial, n: int) -> str:
    if t.expected:
        return t.expected
    if t.catch_kind == "repeat":  # p1 (n=0) repeats its choice on the original ("a"), p2 not
        return "a" if n == 0 else "b"
    return "a"


def wav_bytes(seconds=1.0, sr=22050, amplitude=0.3, freq=440.0, fmt="WAV") -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buffer = io.BytesIO()
    sf.write(buffer, (amplitude * np.sin(2 * np.pi * freq * t)).astype("float32"), sr, format=fmt)
    return buffer.getvalue()
