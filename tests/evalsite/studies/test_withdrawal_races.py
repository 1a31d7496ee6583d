"""A participant withdraws while its rows are deleted (in the admin, or as a preview when its
study leaves draft): both take the participant's row and the study's report lock, in one order."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from evalsite.reports import tasks
from evalsite.reports.models import ReportState
from evalsite.studies import experimenter, flow_withdraw
from evalsite.studies.models import Answer, Participant
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.lock_waits import until_blocked

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),  # each side commits on its own connection
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL"),
]


def _delete_in_the_admin(p: Participant) -> None:
    flow_withdraw.delete_participants([Participant.objects.get(pk=p.pk)])


def _open_the_draft(p: Participant) -> None:
    with transaction.atomic():  # as experimenter.set_status calls it
        experimenter.remove_previews(p.study)


@pytest.mark.parametrize(
    "delete", [_delete_in_the_admin, _open_the_draft], ids=lambda f: f.__name__[1:]
)
def test_a_participant_deleted_while_it_withdraws_is_deleted_without_a_deadlock(
    answered_study, monkeypatch, delete
):
    p = answered_study.participants.get(external_pid="p3")  # in its trials: it may leave
    Participant.objects.filter(pk=p.pk).update(is_preview=True)
    monkeypatch.setattr(tasks, "_enqueue", lambda study_id, countdown: None)  # no broker
    lock, other, withdrawing = ReportState.lock, {}, threading.current_thread()
    report_locked = threading.Event()

    def deleting():
        try:
            delete(p)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            other["error"] = error
        finally:
            connection.close()

    def lock_in_turn(study_id):
        if threading.current_thread() is not withdrawing:
            state = lock(study_id)
            report_locked.set()
            return state
        if "thread" not in other:  # the withdrawal's step UPDATE holds p's row until its commit
            other["thread"] = threading.Thread(target=deleting)
            other["thread"].start()
            _until_report_locked_or_waiting(other["thread"], report_locked)
        return lock(study_id)

    monkeypatch.setattr(ReportState, "lock", lock_in_turn)
    withdrew = flow_withdraw.withdraw(p)
    other["thread"].join(timeout=30)
    assert not other["thread"].is_alive() and "error" not in other, other.get("error")
    assert withdrew and not Participant.objects.filter(pk=p.pk).exists()
    assert not Answer.objects.filter(participant_id=p.pk).exists()
    assert answered_study.participants.filter(external_pid="p1").exists()


def _until_report_locked_or_waiting(thread: threading.Thread, report_locked) -> None:
    """Until the deleting side holds the report lock, or waits for a row lock (on p's row)."""
    until_blocked(thread, 30, done=report_locked.is_set)
