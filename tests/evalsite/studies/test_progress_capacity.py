"""How many more participants the study can take (`progress.capacity`, the progress page's "The
study can take N more participants"), against the participants a run actually needs."""

from __future__ import annotations

import pytest
from django.test import Client

from evalsite.studies import progress
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import finish, post, to_step
from tests.evalsite.studies.return_steps import answer_elsewhere

pytestmark = pytest.mark.django_db


def test_the_places_left_cover_the_trial_missing_the_most_answers(
    experimenter, listening_catalogue
):
    """One participant gives a trial at most one answer: a trial 3 answers short takes 3 more
    participants however few answers the others miss."""
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=3,
                       trials_per_participant=3, screening=False, min_listen_share=0)  # fmt: skip
    main = list(study.trials.filter(is_practice=False, is_catch=False).order_by("id"))
    for _ in range(3):
        answer_elsewhere(study, main[1:])
    shown = []
    for k in range(5):
        shown.append(progress.capacity(study, progress.answers_per_trial(study))["places"])
        client = Client()
        p = enter(client, study, pid=f"n{k}")
        if p.step != "full":
            p = to_step(client, p, "instructions")
            post(client, p, "instructions")
            p.refresh_from_db()
        if p.step == "full":
            break
        finish(client, p)
    assert shown == [3, 2, 1, 0]
