"""studies migration 0018 marks the participants the code before `flow.turn_away` turned away at
"Start" while the trials left were only reserved, as `turn_away` marks them now, so that they are
taken back once trials are free; not those turned away for good: at entry because the answers
alone filled the study, or in their trials (their list emptied on a return), nor any in a study
whose answers alone fill every main trial (findings_rupg.md, 3), nor any sent to `full` before
0017 was applied (findings_rupg2.md, 1). It writes one UPDATE per study (findings_rupg2.md, 3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from evalsite.studies import flow
from evalsite.studies.models import Answer, Assignment, Participant, Study, TakenOutTrial
from tests.evalsite.studies.conftest import make_study

BEFORE = ("studies", "0017_participant_taken_out_trials")


def _full(study: Study, seed: int, consented: bool = True, at=None) -> Participant:
    """At `full` with no mark, as the code before turn_away left it (sent there `at`, else now)."""
    now = at or timezone.now()
    return Participant.objects.create(study=study, seed=seed, step="full", finished_at=now,
                                      consented_at=now if consented else None)  # fmt: skip


def _applied_0017():
    return MigrationRecorder(connection).migration_qs.get(app=BEFORE[0], name=BEFORE[1]).applied


def _answer(p: Participant, trial, index: int) -> None:
    Answer.objects.create(participant=p, trial=trial, trial_index=index, chosen="a",
                          chosen_position="A", displayed_first="a")  # fmt: skip


def _migrate_0018_again() -> None:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([BEFORE])  # 0018 reversed: a no-op
    MigrationExecutor(connection).migrate(latest)


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_marks_only_participants_turned_away_at_start_while_trials_were_reserved(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    main = list(study.trials.filter(is_practice=False, is_catch=False))
    practice = study.trials.filter(is_practice=True).first()
    at_start = _full(study, 1)
    at_entry = _full(study, 2, consented=False)
    taken_out = _full(study, 3)  # every slot taken out on a return, none answered
    TakenOutTrial.objects.create(participant=taken_out, trial=main[0])
    practice_only = _full(study, 4)  # only the practice answered, the rest taken out
    Assignment.objects.create(participant=practice_only, trial=practice, index=0,
                              displayed_first="a", reserved_until=timezone.now())  # fmt: skip
    _answer(practice_only, practice, 0)
    answered = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    done = Participant.objects.create(study=answered, seed=5, step="done")
    for i, trial in enumerate(answered.trials.filter(is_practice=False, is_catch=False)):
        _answer(done, trial, i)  # the answers alone fill every main trial: full for good
    in_answered = _full(answered, 6)

    _migrate_0018_again()

    state = dict(Participant.objects.values_list("pk", "state"))
    assert state[at_start.pk] == {flow.FULL_FOR_NOW: Participant.Step.INSTRUCTIONS}
    for p in (at_entry, taken_out, practice_only, in_answered):
        assert flow.FULL_FOR_NOW not in state[p.pk], p
    # back by its link with trials free (no one holds a reservation now): taken back
    for p in Participant.objects.filter(step="full"):
        flow.resume(p, "Mozilla/5.0")
    steps = dict(Participant.objects.values_list("pk", "step"))
    assert steps[at_start.pk] == Participant.Step.INSTRUCTIONS
    assert {steps[p.pk] for p in (at_entry, taken_out, practice_only, in_answered)} == {"full"}


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_running_it_again_keeps_a_participants_mark_and_state(experimenter, listening_catalogue):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    p = _full(study, 1)
    Participant.objects.filter(pk=p.pk).update(state={"feedback": None})
    _migrate_0018_again()
    _migrate_0018_again()
    p.refresh_from_db()
    assert p.state == {"feedback": None, flow.FULL_FOR_NOW: "instructions"}


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_leaves_participants_sent_to_full_before_0017_was_applied_unmarked(
    experimenter, listening_catalogue
):
    # The code before 0017 recorded no trial it took out of a returning participant's list: one
    # it emptied in its trials looks like one turned away at "Start", and may have heard a trial
    # that is free again. Sent to `full` before 0017 was applied, neither is marked.
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    before = _full(study, 1, at=_applied_0017() - timedelta(seconds=1))
    after = _full(study, 2, at=_applied_0017() + timedelta(seconds=1))
    _migrate_0018_again()
    state = dict(Participant.objects.values_list("pk", "state"))
    assert state[before.pk] == {}
    assert state[after.pk] == {flow.FULL_FOR_NOW: "instructions"}


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_marks_each_study_in_one_update_keeping_each_participants_state(
    experimenter, listening_catalogue
):
    studies = [make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
               for _ in range(2)]  # fmt: skip
    marked = [_full(s, seed) for s in studies for seed in range(3)]
    for i, p in enumerate(marked):
        Participant.objects.filter(pk=p.pk).update(state={"feedback": i} if i % 2 else {})
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([BEFORE])
    with CaptureQueriesContext(connection) as queries:
        MigrationExecutor(connection).migrate(latest)
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "studies_participant"')]
    assert len(updates) == len(studies)
    state = dict(Participant.objects.values_list("pk", "state"))
    for i, p in enumerate(marked):
        kept = {"feedback": i} if i % 2 else {}
        assert state[p.pk] == {**kept, flow.FULL_FOR_NOW: "instructions"}, p
