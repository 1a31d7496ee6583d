"""The participant's trials, without HTTP: the list assigned at the instructions
(`start_trials`), the current slot, a page view recorded (`touch`), an answer refused as too
early (`note_early_answer`), practice feedback, and `done` once every answer is stored
(`finish_if_complete`). An answer itself is one statement (`participant_writes.store_answer`).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from evalsite.stimuli.models import Clip
from evalsite.studies import design, design_return, flow_prolific
from evalsite.studies.completion_codes import new_completion_code
from evalsite.studies.flow import advance, turn_away
from evalsite.studies.models import Answer, Assignment, Participant, Trial
from evalsite.studies.participant_writes import epoch_ms, mark_shown
from evalsite.studies.served_audio import participant_key

log = logging.getLogger("evalsite.studies.participant")
Step = Participant.Step


def start_trials(p: Participant) -> None:
    """Assign the trials (or mark the study full) and go to practice or the main trials."""
    if not design.assign(p, timezone.now()):
        turn_away(p, Step.INSTRUCTIONS)  # for now when the trials left are only reserved
        return
    has_practice = p.slots.filter(trial__is_practice=True).exists()
    moved = advance(p, Step.INSTRUCTIONS, Step.PRACTICE if has_practice else Step.TRIALS)
    if not moved and Participant.objects.filter(pk=p.pk, step=Step.WITHDRAWN).exists():
        p.slots.all().delete()  # left (another tab) while these were assigned


def current_slot(p: Participant) -> Assignment | None:
    """The first slot without an answer (practice slots come first)."""
    answered = Answer.objects.filter(participant=p, trial=OuterRef("trial"))
    return p.slots.exclude(Exists(answered)).select_related("trial").order_by("index").first()


def note_early_answer(token: str, index: int, slot_id: int, now) -> bool:
    """After an answer was refused: count it in the participant's `early_answers` when it was to
    the current slot before its page had been open long enough to play the clips (or to a slot
    never shown), which only a script sends; False (nothing written) for any other refusal, such
    as one from a page showing a slot that is no longer at that number."""
    slot = (
        Assignment.objects.filter(participant__token=token, index=index, pk=slot_id)
        .select_related("participant")
        .first()
    )
    if slot is None or slot.participant.step not in (Step.PRACTICE, Step.TRIALS):
        return False
    if slot.answerable_ms is not None and slot.answerable_ms <= epoch_ms(now):
        return False
    current = current_slot(slot.participant)
    if current is None or current.pk != slot.pk:
        return False
    Participant.objects.filter(pk=slot.participant_id).update(early_answers=F("early_answers") + 1)
    left = "never shown" if slot.answerable_ms is None else slot.answerable_ms - epoch_ms(now)
    log.warning("early answer refused participant=%s index=%s ms_left=%s",
                slot.participant_id, index, left)  # fmt: skip
    return True


def answered_already(token: str, slot_id: int) -> bool:
    """After an answer was refused: whether the participant with this token had answered that
    slot's trial already (from another window showing the same trial)."""
    slot = Assignment.objects.filter(pk=slot_id, participant__token=token)
    return Answer.objects.filter(
        participant__token=token, trial__in=slot.values("trial_id")
    ).exists()


# `last_seen_at` is rewritten at most this often by page views alone (a step change or a first
# view of a trial writes anyway): a trial page then costs one write, not two.
LAST_SEEN_RESOLUTION = timedelta(seconds=30)


def touch(p: Participant, now, slot: Assignment | None = None, shows_slot: bool = True) -> bool:
    """Record a page view: `last_seen_at` (to LAST_SEEN_RESOLUTION), the slot's first
    `shown_at` (unless the page does not show it: practice feedback) and, when due, the
    reservation of the unanswered slots, committed together.
    Coming back after the reservations lapsed, the list is checked again first
    (`design_return`); True (nothing else recorded) when trials were taken out of it: the page
    must read its position again."""
    lapsed = slot is not None and slot.reserved_until <= now
    if lapsed and design_return.recheck(p, now):
        return True
    first_view = (
        shows_slot and slot is not None and (slot.shown_at is None or slot.answerable_ms is None)
    )
    renew = not lapsed and slot is not None and design.reservation_due(p, slot, now)
    seen = p.last_seen_at is None or now - p.last_seen_at >= LAST_SEEN_RESOLUTION
    with transaction.atomic() if first_view + renew + seen > 1 else nullcontext():
        if seen:
            Participant.objects.filter(pk=p.pk).update(last_seen_at=now)
        if first_view and slot is not None:  # (first_view implies a slot)
            share = float(p.study.setting("min_listen_share") or 0)
            mark_shown(slot, now, share, participant_key(p.pk, p.seed))
        if renew:
            design.extend_reservations(p, now)
    return False


def practice_feedback(slot: Assignment, chosen_position: str) -> dict:
    """What the feedback page after a practice trial says ("correct": None without a key)."""
    t = slot.trial
    if not t.expected:  # ("slot": the one it follows, which its Continue names)
        return {"correct": None, "position": "", "instrument": t.instrument, "kind": "",
                "slot": slot.pk}  # fmt: skip
    right = "A" if slot.displayed_first == t.expected else "B"
    same, other = (
        (t.candidate_a, t.candidate_b) if t.expected == "a" else (t.candidate_b, t.candidate_a)
    )
    if t.reference_id in (t.candidate_a_id, t.candidate_b_id):
        kind = "identical"
    elif is_stem_pair(t, same, other):
        kind = "stems"
    else:  # e.g. a CSV trial of unrelated pieces: only which answer was expected
        kind = ""
    return {"correct": chosen_position == right, "position": right, "instrument": t.instrument,
            "kind": kind, "slot": slot.pk}  # fmt: skip


def is_stem_pair(t: Trial, same: Clip, other: Clip) -> bool:
    """Whether the expected candidate (`same`) holds the reference's own part of the judged
    instrument with the other instruments from another piece, and `other` that other piece's
    part with the reference's other instruments: an attention set built from stems
    (`stimuli.slakh_import`), read from the clips' meta and parts, so that the feedback says
    "the same part" only where it is true."""
    sm, om = same.meta, other.meta
    part = same.parts.get(t.instrument)
    return (
        sm.get("kind") == om.get("kind") == "attention"
        and (sm.get("role"), om.get("role")) == ("same", "different")
        and sm.get("group") == om.get("group")
        and sm.get("condition") == om.get("condition") == t.instrument
        and sm.get("reference") == om.get("reference") == t.reference_id
        and bool(part)
        and part == t.reference.piece
        and other.parts.get(t.instrument) not in (None, part)
    )


def acknowledge_feedback(p: Participant, slot: str) -> bool:
    """Clear the practice feedback shown when its Continue names the slot it follows (`slot`,
    as posted); False (nothing written) when another feedback is stored now, e.g. an older
    page's Continue after a later practice answer. Compared in the UPDATE, so a practice answer
    storing new feedback meanwhile (another tab) is not cleared either. Feedback stored before
    it named its slot is cleared by any Continue, as it was then."""
    shown = (p.state.get("feedback") or {}).get("slot")
    mine = Participant.objects.filter(pk=p.pk)
    if shown is not None:
        if slot != str(shown):
            return False
        mine = mine.filter(state__feedback__slot=shown)
    if not mine.update(state={}):
        return False
    p.state = {}
    return True


def finish_if_complete(p: Participant) -> bool:
    """Done only when the server holds an answer for every slot (checked in the database). A
    participant in its trials with no slot at all (e.g. every one taken out on a return,
    `design_return`, which moves it itself) goes to the study-full step instead: its trial
    page would otherwise send it back to itself, again and again."""
    total = p.slots.count()
    if total == 0:
        advance(p, Step.TRIALS, Step.FULL)
        return False
    stored = Answer.objects.filter(participant=p, trial__slots__participant=p).count()
    if stored < total:
        return False
    # the study's code (Prolific knows only that one), else a random one of the participant's
    code = flow_prolific.finish_code(p.study) or new_completion_code()
    finished = advance(p, Step.TRIALS, Step.DONE, completion_code=code)
    if finished:
        design.release_finished(p)
        # The report is recomputed in a worker, debounced, once per finished participant rather
        # than per answer: a per-answer trigger would lock the study's report row on every POST.
        from evalsite.reports.tasks import schedule_report

        schedule_report(p.study_id)
    return finished
