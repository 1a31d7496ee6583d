"""The participant's state machine, without HTTP: entry by the study link (`create`; for one
coming back `find_existing`, `may_resume` and `resume`) and the step change every move goes
through (`advance`).

Views call these; each step change is one UPDATE guarded by the step the participant was in, so
a replayed or concurrent POST for a step already left changes nothing. The later steps' moves are
in `flow_screening` (calibration and screening), `flow_trials` (the trials, to the end) and
`flow_withdraw` (leaving the study, or deleted outright); the links back to Prolific in
`flow_prolific`.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Collection

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from evalsite.studies import design, design_fill
from evalsite.studies.models import FoldedParticipant, Participant, Study, StudyFold

log = logging.getLogger("evalsite.studies.participant")
Step = Participant.Step

PROLIFIC_KEYS = {"PROLIFIC_PID": "prolific_pid", "STUDY_ID": "prolific_study_id",
                 "SESSION_ID": "prolific_session_id", "pid": "external_pid"}  # fmt: skip


def _recruitment_ids(params) -> dict[str, str]:
    return {field: str(params.get(key, ""))[:64] for key, field in PROLIFIC_KEYS.items()}


PREVIEW_PREFIX = "preview-"  # the `pid` of "Preview as a participant" (experimenter.study_detail)


def is_preview_id(pid: str) -> bool:
    """Whether a `pid` is a researcher's preview link's: refused once the study left draft."""
    return pid.startswith(PREVIEW_PREFIX)


def find_existing(study: Study, params) -> Participant | None:
    """The participant these recruitment parameters name: by PROLIFIC_PID when given, else by pid.

    The entry's "may a paused or closed study let this one back in" check and the resume use this
    one lookup, so an id that lets someone in is always the id they resume with."""
    ids = _recruitment_ids(params)
    if ids["prolific_pid"]:
        return study.participants.filter(prolific_pid=ids["prolific_pid"]).last()
    if ids["external_pid"]:
        return study.participants.filter(external_pid=ids["external_pid"]).last()
    return None


def may_resume(found: Participant, params, bound: Collection[str]) -> bool:
    """Whether an entry with these recruitment parameters may continue as `found`, the
    participant they name (find_existing). A browser already bound to it may. Another one may
    when the participant started without a Prolific SESSION_ID (a generic `pid`: the id is the
    key, docs/site.md "Resume"), or with the same SESSION_ID: Prolific keeps a submission's
    SESSION_ID, so a participant coming back through Prolific has it, while someone who only
    knows a PROLIFIC_PID must not take the participant over (see its completion code, answer for
    it, or leave the study, which deletes its answers)."""
    if found.token in bound or not found.prolific_session_id:
        return True
    given = _recruitment_ids(params)["prolific_session_id"]
    return secrets.compare_digest(given.encode(), found.prolific_session_id.encode())


def resume(p: Participant, user_agent: str) -> Participant:
    """The participant an entry's recruitment ids named (find_existing, may_resume) coming back.
    One refused at the browser check (a phone, no Web Audio) starts that check again: the
    refusal page asks them to come back with the same link on another device. One turned away
    only because the trials left were reserved (`turn_away`) goes back to where it was turned
    away once a newcomer would get a trial: its full page asks it to come back later."""
    if p.step == Step.REFUSED:
        check_browser_again(p, user_agent)
        if p.step == Step.BROWSER_CHECK and design_fill.full_at_entry(p.study, timezone.now()):
            turn_away(p, Step.BROWSER_CHECK)
    elif p.step == Step.FULL and (back_to := p.state.get(FULL_FOR_NOW)) in TURNED_AWAY_AT:
        # only into an open study: a paused or closed one lets back only those it had let in
        if p.study.is_open and not design_fill.full_at_entry(p.study, timezone.now()):
            state = {k: v for k, v in p.state.items() if k != FULL_FOR_NOW}
            browser = {"user_agent": user_agent[:1000]} if back_to == Step.BROWSER_CHECK else {}
            _take_back(p, Step.FULL, back_to, state=state, **browser)
    return p


# A participant turned away while the trials it would need were only reserved by participants
# under way (temporary: reservations lapse) carries in its state the step it was turned away at,
# which `resume` takes it back to; turned away because every trial has its answers, it carries
# nothing and stays at the final step.
FULL_FOR_NOW = "full_for_now"
TURNED_AWAY_AT = (Step.BROWSER_CHECK, Step.INSTRUCTIONS)  # at the study link, at "Start"


def turn_away(p: Participant, from_step: str) -> bool:
    """Move p, which would get no trial, from `from_step` (one of TURNED_AWAY_AT, no slot held)
    to the study-full step: for good when the answers alone fill every main trial, otherwise
    marked so that `resume` takes it back (FULL_FOR_NOW). False if p was not at `from_step`."""
    if design_fill.answered_full(p.study):
        return advance(p, from_step, Step.FULL)
    return advance(p, from_step, Step.FULL, state={**p.state, FULL_FOR_NOW: from_step})


class StatusChanged(Exception):
    """The study's status is no longer the one the entry was let in under (a Close or Pause
    committed meanwhile): no participant was made. `status`: the study's status now."""

    def __init__(self, status: str):
        super().__init__(f"the study is {status} now")
        self.status = status


def _status_locked(study: Study) -> str:
    """The study's status, its row locked FOR KEY SHARE until the transaction ends: the weakest
    lock, the one the participant's INSERT takes anyway (its foreign key), so entries never wait
    for each other, while a status change (FOR UPDATE, experimenter.study_status) waits for the
    entries under way, and an entry that comes after it waits for it and reads the new status."""
    share = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status FROM {Study._meta.db_table} WHERE id = %s{share}", [study.pk]
        )
        (status,) = cursor.fetchone()
    return status


def create(study: Study, params: dict, user_agent: str, language: str) -> Participant | None:
    """A new participant entering by the study link (at `full` at once when the study is known
    to be full, `design_fill.full_at_entry`). None when another entry with the same recruitment id
    made it since this one looked (a double click, two tabs): the database holds one
    participant per id (Participant's constraints); find_existing now finds that one.
    StatusChanged when the study's status changed since `study` was read (it is checked again,
    under the study's row lock, as the participant is inserted). A participant entering a draft
    is a researcher's preview, marked so by the same insert: an Open committing after it then
    removes it with the other previews (experimenter.remove_previews)."""
    ids = _recruitment_ids(params)
    p = Participant(
        study=study,
        is_preview=study.status == Study.Status.DRAFT,
        recruitment={k: str(v)[:200] for k, v in list(params.items())[:30]},
        user_agent=user_agent[:1000],
        language=language,
        seed=random.SystemRandom().getrandbits(62),
        session=ids["prolific_session_id"] or Participant._meta.get_field("session").default(),
        **ids,
    )
    try:
        with transaction.atomic():  # a savepoint: the entry goes on after a refused INSERT
            if (now := _status_locked(study)) != study.status:
                raise StatusChanged(now)
            p.save(force_insert=True)
    except IntegrityError:
        if not (ids["prolific_pid"] or ids["external_pid"]):
            raise  # not a recruitment id's conflict
        log.info("study %s: an entry with the same recruitment id made the participant first",
                 study.pk)  # fmt: skip
        return None
    if design_fill.full_at_entry(study, timezone.now()):  # told now, not after the screening
        turn_away(p, Step.BROWSER_CHECK)
    return p


def check_browser_again(p: Participant, user_agent: str) -> None:
    """Take a participant refused at the browser check back to it."""
    _take_back(p, Step.REFUSED, Step.BROWSER_CHECK, state={}, user_agent=user_agent[:1000])


def _take_back(p: Participant, from_step: str, to_step: str, **fields) -> None:
    """Take a participant out of the final step `from_step` (REFUSED, or FULL marked as for now:
    the only ways out of a final step) back to `to_step`. There it has no slots and no answers;
    it leaves the study's fold (under the study's lock, as every change to the fold), which it
    had entered with nothing."""
    with transaction.atomic():
        design_fill.lock_study(p.study_id)
        if not advance(p, from_step, to_step, finished_at=None, **fields):
            return  # another request took it back first
        if FoldedParticipant.objects.filter(participant_id=p.pk).delete()[0]:
            StudyFold.objects.filter(study_id=p.study_id).update(participants=F("participants") - 1)
    log.info("participant %s: back from %s to %s", p.pk, from_step, to_step)


def advance(p: Participant, from_step: str, to_step: str, **fields) -> bool:
    """Move p from `from_step` to `to_step` (saving `fields`); False if p was not there."""
    now = timezone.now()
    if to_step in Participant.FINAL_STEPS:
        fields.setdefault("finished_at", now)
    updated = Participant.objects.filter(pk=p.pk, step=from_step).update(
        step=to_step, last_seen_at=now, **fields
    )
    if updated:
        for key, value in fields.items():
            setattr(p, key, value)
        p.step = to_step
        log.info("participant %s: %s -> %s", p.pk, from_step, to_step)
        if to_step in {Step.SCREENED_OUT, Step.DECLINED, Step.REFUSED}:
            design.release_reservations(p)
    return bool(updated)
