"""End to end through the views: an experimenter builds and opens a study, participants take it
with the real flow (one double-submits an answer, one stops half-way), and the export holds every
stored answer exactly once, in the form the report's input check accepts."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from evalsite.reports.analysis.inputs import normalise_answers
from evalsite.studies.export_answers import ANSWER_COLUMNS, answers_dataframe
from evalsite.studies.models import Answer, Study
from tests.evalsite.studies import participant_steps as steps
from tests.evalsite.studies.conftest import enter, make_catalogue

pytestmark = pytest.mark.django_db


def _build_study(experimenter) -> Study:
    catalogue = make_catalogue(experimenter)
    web = Client()
    web.force_login(experimenter)
    post = {
        "name": "Export end to end", "instruments": ["drums", "guitar"], "languages": ["en"],
        "consent_text": "ok", "catalogue": catalogue.pk, "screening": "on",
        "catch_identical": 1, "catch_attention": 1, "catch_repeat": 1, "min_catch_accuracy": 0.75,
        "max_same_position_share": 0.9, "min_median_rt_ms": 1500, "target_answers_per_trial": 5,
        "reservation_timeout_s": 1800, "loudness_target_lufs": -23, "practice_trials": 1,
        "min_listen_share": 0.9, "withdrawn_answers": "delete",
    }  # fmt: skip
    assert web.post(reverse("studies:study_create"), post).status_code == 302
    study = Study.objects.get(name="Export end to end")
    random = {"per_instrument": 2, "catch_per_kind": 1, "seed": 3}
    assert web.post(reverse("studies:trials_random", args=[study.pk]), random).status_code == 302
    web.post(reverse("studies:study_status", args=[study.pk]), {"action": "open"})
    study.refresh_from_db()
    assert study.status == "open" and study.trials.exists()
    return study


def test_it_exports_every_answer_of_real_participants_once(experimenter):
    study = _build_study(experimenter)
    for n in range(3):
        client = Client()
        p = steps.to_step(client, enter(client, study, pid=f"e2e-{n}"), "practice")
        if n == 0:  # a double click: the same answer posted twice
            slot, _ = steps.answer_current(client, p, expected=True)
            steps.answer(client, p, slot, "A")
        if n == 2:  # leaves after two more answers
            steps.post(client, p, p.step, action="continue")
            steps.answer_current(client, p)
            steps.answer_current(client, p)
            continue
        steps.finish(client, p)
    stored = sorted(Answer.objects.filter(participant__study=study)
                    .values_list("participant_id", "trial_id"))  # fmt: skip

    web = Client()
    web.force_login(experimenter)
    csv = web.get(reverse("studies:export_file", args=[study.pk, "answers.csv"]))
    table = pd.read_csv(io.BytesIO(csv.content))
    assert sorted(zip(table["participant"], table["trial"])) == stored
    assert len(stored) == len(set(stored))

    frame = answers_dataframe(study)
    assert list(frame.columns) == list(ANSWER_COLUMNS)
    assert len(frame) == len(stored) - 3  # one practice answer per participant left out
    checked = normalise_answers(frame, source="export")
    assert len(checked) == len(frame)
    assert set(frame.loc[frame["is_catch"], "catch_kind"]) <= {"identical", "attention", "repeat"}
