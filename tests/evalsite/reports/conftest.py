"""Personas (alice owns, carol is shared, bob is an outsider; from the studies tests) and a small
answered study whose participants agree with the model at known per-instrument rates."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial
from tests.evalsite.studies.experimenter_personas import alice, bob, carol, fast_passwords  # noqa: F401

RATES = {"drums": 0.9, "guitar": 0.6}


def _clip(catalogue, i):
    return Clip.objects.create(
        catalogue=catalogue,
        name=f"clip{i:02d}.wav",
        piece=f"Track{i:05d}",
        status="ready",
        sha256=f"{i:064x}",
        loudness_lufs=-23.0,
        duration_s=5.0,
        sample_rate=22050,
        channels=1,
    )


def _trials(study, clips, rng):
    trials = []
    for k, instrument in enumerate(RATES):
        for i in range(5):
            ref, a, b = (clips[(3 * (5 * k + i) + j) % len(clips)] for j in range(3))
            trials.append(
                Trial.objects.create(
                    study=study,
                    reference=ref,
                    candidate_a=a,
                    candidate_b=b,
                    instrument=instrument,
                    model_choice=rng.choice(["a", "b"]),
                    model_margin=float(rng.uniform(0, 1)),
                )
            )
        trials.append(
            Trial.objects.create(
                study=study,
                reference=clips[k],
                candidate_a=clips[k],
                candidate_b=clips[k + 5],
                instrument=instrument,
                is_catch=True,
                catch_kind="identical",
                expected="a",
            )
        )
    return trials


def answer_all(study, participant, trials, rng):
    now = timezone.now()
    for index, t in enumerate(trials):
        first = "a" if rng.uniform() < 0.5 else "b"
        Assignment.objects.create(
            participant=participant,
            trial=t,
            index=index,
            displayed_first=first,
            reserved_until=now + timedelta(hours=1),
        )
        if t.is_catch:
            chosen = t.expected
        else:
            agree = rng.uniform() < RATES[t.instrument]
            chosen = t.model_choice if agree else {"a": "b", "b": "a"}[t.model_choice]
        Answer.objects.create(
            participant=participant,
            trial=t,
            trial_index=index,
            chosen=chosen,
            displayed_first=first,
            chosen_position="A" if chosen == first else "B",
            response_ms=int(rng.integers(2000, 6000)),
            plays_reference=1,
            plays_a=1,
            plays_b=1,
            shown_at=now,
        )


@pytest.fixture
def sim_study(alice, carol) -> Study:  # noqa: F811
    rng = np.random.default_rng(7)
    catalogue = Catalogue.objects.create(owner=alice, name="clips")
    clips = [_clip(catalogue, i) for i in range(30)]
    study = Study.objects.create(
        owner=alice,
        name="Simulated",
        instruments=list(RATES),
        catalogue=catalogue,
        design={"seed": 3},
        settings={"report": {"n_boot": 200}},  # report settings of the study: fewer replicates
    )
    study.shared_with.add(carol)
    trials = _trials(study, clips, rng)
    for n in range(8):
        p = Participant.objects.create(
            study=study, external_pid=f"p{n}", step="done", screening_passed=True, seed=100 + n
        )
        answer_all(study, p, trials, rng)
    return study
