"""A participant leaving the study (`withdraw`) or deleted outright (`delete_participants`), and
what goes with it (`_forget`): its answers, its trial list and their copies in stored reports,
unless the study keeps the answers of those who leave.
"""

from __future__ import annotations

import logging

from django.db import transaction

from evalsite.studies import design
from evalsite.studies.flow import advance
from evalsite.studies.models import Answer, Participant

log = logging.getLogger("evalsite.studies.participant")
Step = Participant.Step


def withdraw(p: Participant) -> bool:
    """The participant leaves the study from the step it is at (a final step, `withdrawn`): its
    unanswered trials go back to the pool and, unless the participant agreed to a study that
    keeps them (`Participant.answers_on_leave`), its answers and trial list are deleted. Where
    another tab moved it on since `p` was read, it leaves from the step it moved to. False
    (nothing done) when it is at no step one can leave from."""
    for _ in range(3):  # each retry follows a step change by another tab: a few at most
        if p.step not in Participant.WITHDRAWABLE_STEPS:
            return False
        if _withdraw_from(p, p.step):
            return True
        try:
            p.refresh_from_db()
        except Participant.DoesNotExist:  # deleted meanwhile (a preview as its study left draft)
            return False
    return False


def _withdraw_from(p: Participant, step: str) -> bool:
    """`withdraw` while p is at `step`; False (nothing done) when it is no longer there."""
    delete = p.answers_on_leave() != "keep"
    with transaction.atomic():
        # The step's UPDATE holds the participant's row until the commit: an answer POST from
        # another tab in the same instant waits for it and then stores nothing
        # (participant_writes.ANSWER_SQL), or was stored before and is deleted here.
        given = {"questionnaire": {}, "screening": {}, "browser": {}, "user_agent": ""}
        if not advance(p, step, Step.WITHDRAWN, state={}, **(given if delete else {})):
            return False  # moved on meanwhile (another tab)
        if delete:
            _forget(p)
        else:  # the answers count by themselves; no slot stays reserved
            design.release_finished(p)
    if delete:
        from evalsite.reports.tasks import schedule_report

        schedule_report(p.study_id)  # reports without their answers
    log.info("participant %s withdrew; answers %s", p.pk, "deleted" if delete else "kept")
    return True


def _forget(p: Participant) -> None:
    """Delete what a leaving participant gave (its answers, its trial list, the study's report
    bundles that held them, its rows in stored report tables); its ids stay, to record that it
    left. In `withdraw`'s transaction.

    Under the study's report lock, counted in `deletions`: a report computation that read the
    answers before stores nothing, and one saving now is waited for, then emptied here."""
    from evalsite.reports.models import ReportState

    state = ReportState.lock(p.study_id)
    state.deletions += 1
    state.save(update_fields=["deletions"])
    Answer.objects.filter(participant=p).delete()
    p.slots.all().delete()
    p.study.report_snapshots.exclude(bundle=b"").update(bundle=b"")
    for snap in p.study.report_snapshots.all():  # and its rows in the stored tables (e.g. rates)
        kept = {name: [r for r in rows if str(r.get("participant")) != str(p.pk)]
                for name, rows in snap.tables.items()}  # fmt: skip
        if kept != snap.tables:
            snap.tables = kept
            snap.save(update_fields=["tables"])


def delete_participants(participants) -> None:
    """Delete participants outright (a test run removed in the admin), their ids too, with what
    `_forget` deletes of a withdrawal, so that no stored report keeps their answers; the reports
    of their studies are computed again."""
    participants = sorted(participants, key=lambda p: (p.study_id, p.pk))  # locks in one order
    with transaction.atomic():
        # Their rows first, then the report lock (in `_forget`), as `withdraw` takes them: the
        # other order deadlocks with a participant withdrawing meanwhile.
        design.lock_participants([p.pk for p in participants])
        for p in participants:
            _forget(p)
            p.delete()
    from evalsite.reports.tasks import schedule_report

    for study_id in sorted({p.study_id for p in participants}):
        schedule_report(study_id)
