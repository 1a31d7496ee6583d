"""What the tests of a participant's return after its reservations lapsed (`design_return`) set
up: the lapse itself, another participant answering meanwhile, and a participant walked
past the practice to a main trial whose page is open.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from evalsite.studies import flow_trials
from evalsite.studies.models import Answer, Assignment, Participant
from tests.evalsite.studies.participant_steps import (
    acknowledge,
    answer,
    answer_current,
    open_trial,
)


def lapse(p: Participant) -> None:
    """The participant went away past the timeout: every reservation of its slots has lapsed."""
    Assignment.objects.filter(participant=p).update(
        reserved_until=timezone.now() - timedelta(seconds=1)
    )


def answer_elsewhere(study, trials) -> None:
    """Another participant, finished meanwhile, answered these trials."""
    other = Participant.objects.create(study=study, seed=99, step=Participant.Step.DONE)
    for i, t in enumerate(trials):
        Answer.objects.create(participant=other, trial=t, trial_index=i, chosen="a",
                              chosen_position="A", displayed_first="a")  # fmt: skip


def to_main_trials(client, p: Participant) -> Participant:
    """Through the practice to the first main trial (practice answered right)."""
    while p.step == "practice":
        if p.state.get("feedback"):
            acknowledge(client, p)
        else:
            slot = open_trial(client, p)
            choice = "A" if slot.displayed_first == slot.trial.expected else "B"
            answer(client, p, slot, choice, step="practice")
        p.refresh_from_db()
    return p


def to_a_main_trial(client, p: Participant) -> Assignment:
    """Past the practice and any check trial before the first main one; that one's page open
    (its listening time passed): a trial a return may take out."""
    p = to_main_trials(client, p)
    while flow_trials.current_slot(p).trial.is_catch:
        answer_current(client, p)
    return open_trial(client, p)
