"""A participant coming back after its reservations lapsed: its unanswered trials went back to
the pool meanwhile (`design_fill` stopped counting them), and others may have taken them to
their target. Its list is checked again under the study's lock, as an entry's is chosen.

Rules (docs/site.md, "Design rules", "Coming back after the timeout"): an unanswered main slot
whose trial now has its target (answers + other participants' live slots, `fill_counts`) is
taken out of the list, and so is a repeat of such a trial; practice and the other catch slots
stay, unless no main trial is left in the list, answered or not: then they are taken out too
(practice and checks give the study nothing without a main trial to go with them, and the
participant would answer them for a completion code). The remaining unanswered slots are
re-reserved. When trials were taken out, the kept ones are numbered on after the answered ones
in their order (the answer statement needs slots 0..n-1, `participant_writes.ANSWER_SQL`), with
a trial moved only where taking others out put references of one piece back to back or a repeat
next to its original; when none was, nothing moves (a rule the seed's own order broke is no
return's to repair). The current slot (the first unanswered one), whose page may be open, never
moves unless it was taken out itself: the answered slots before it keep their numbers, and so
does it. A renumbered slot needs a view of its page before an answer to it is stored, so a page
still showing a slot that was taken out stores nothing under its number. Trials still below
their target take the place of the main ones taken out, up to the study's trials per participant
(`design_refill`), after every slot it holds; what was taken out is recorded (`TakenOutTrial`),
so that no later return gives it back. A participant left with nothing to answer (no main trial
answered, none left, none to refill) moves to the study-full step, as an entry that finds no
trial left does (`flow_trials.start_trials`); what it answered (practice, checks) stays stored
with its slots.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When

from evalsite.studies import design_refill
from evalsite.studies.design import TRIAL_REF_FIELDS, TrialRef, lock_participants, trial_ref
from evalsite.studies.design_fill import count_fill, keep_fill, lock_study
from evalsite.studies.design_order import repair_order
from evalsite.studies.models import Answer, Assignment, Participant, TakenOutTrial

log = logging.getLogger("evalsite.studies.participant")
STEPS = (Participant.Step.PRACTICE, Participant.Step.TRIALS)


def recheck(participant: Participant, now: datetime) -> bool:
    """Check again the list of a participant whose reservations lapsed (see the module's rules)
    and re-reserve what stays; True when trials were taken out of it (other slots may have new
    numbers then, or none is left and the participant is at the study-full step: a page read
    before must read the position again). False when its list is as it was, numbers included.
    Nothing is done (False) when its reservations are live: another of its requests came
    first."""
    study = participant.study
    with transaction.atomic():
        lock_study(study.pk)  # as `design.assign`: entries and returns see each other's slots
        lock_participants([participant.pk])  # its answers wait (ANSWER_SQL locks it FOR SHARE)
        if not Participant.objects.filter(pk=participant.pk, step__in=STEPS).exists():
            return False
        slots = _slots(participant)
        unanswered = [s for s in slots if not s["answered"]]
        if not unanswered or unanswered[0]["reserved_until"] > now:
            return False
        counts = count_fill(study, now)  # counted now: a reused count may still hold its slots
        target = int(study.setting("target_answers_per_trial"))
        full = {s["trial"].id for s in unanswered if _is_main(s["trial"])
                and counts[s["trial"].id] >= target}  # fmt: skip
        dropped = [s for s in unanswered if s["trial"].id in full
                   or s["trial"].repeat_of_id in full]  # fmt: skip
        # Trials still below target take the place of main trials taken out (design_refill).
        seed = participant.seed + len(slots)  # the participant's, another draw per list length
        new = design_refill.choose_for(study, participant.pk, seed, slots, dropped, counts)
        # No main trial left, answered or not, and none to refill: the practice and checks go
        # too, and so does the participant (study full). One with main answers completes.
        nothing_to_give = (
            bool(dropped)
            and not new
            and not any(_is_main(s["trial"]) for s in slots if s not in dropped)
        )
        if nothing_to_give:
            dropped = unanswered
        kept = [s for s in unanswered if s not in dropped]
        answered = len(slots) - len(unanswered)
        if dropped:
            last = slots[answered - 1]["trial"] if answered else None
            Assignment.objects.filter(pk__in=[s["id"] for s in dropped]).delete()
            # Remembered: their pages may have been heard, and no later return gives them back.
            TakenOutTrial.objects.bulk_create(
                TakenOutTrial(participant_id=participant.pk, trial_id=s["trial"].id)
                for s in dropped
            )
            kept = _reorder(unanswered, kept, last)
            _renumber(kept, answered, len(slots))
        if nothing_to_give:
            _to_full(participant, now)
        until = now + timedelta(seconds=int(study.setting("reservation_timeout_s")))
        Assignment.objects.filter(pk__in=[s["id"] for s in kept]).update(reserved_until=until)
        if new:
            held = [s for s in slots if s["answered"]] + kept  # the list's order
            new = design_refill.refill(study, participant.pk, seed, new, held, until)
        counts.update(t.id for t in [*(s["trial"] for s in kept), *new])  # seen reserved again
        keep_fill(study, counts)
    return bool(dropped)


def _to_full(participant: Participant, now: datetime) -> None:
    """Move a participant left with nothing to answer to the study-full step (its final step:
    it answered no main trial, and holds no slot but those it answered)."""
    full = Participant.Step.FULL
    Participant.objects.filter(pk=participant.pk, step__in=STEPS).update(
        step=full, finished_at=now, last_seen_at=now
    )
    log.info("participant %s: %s -> %s (every trial taken out on its return)",
             participant.pk, participant.step, full)  # fmt: skip
    participant.step, participant.finished_at = full, now


def _is_main(t: TrialRef) -> bool:
    return not (t.is_practice or t.is_catch)


def _slots(participant: Participant) -> list[dict]:
    """The participant's slots in order: id, index, reservation, answered, the canonical
    candidate shown in A, trial (TrialRef)."""
    answer = Answer.objects.filter(participant_id=participant.pk, trial_id=OuterRef("trial_id"))
    trial_fields = [f"trial__{name}" for name in TRIAL_REF_FIELDS]
    rows = (
        Assignment.objects.filter(participant_id=participant.pk)
        .annotate(answered=Exists(answer))
        .order_by("index")
        .values_list("id", "index", "reserved_until", "answered", "displayed_first", *trial_fields)
    )
    return [{"id": r[0], "index": r[1], "reserved_until": r[2], "answered": r[3],
             "displayed_first": r[4], "trial": trial_ref(r[5:])} for r in rows]  # fmt: skip


def _reorder(unanswered: list[dict], kept: list[dict], last: TrialRef | None) -> list[dict]:
    """The kept slots in their order, the practice ones first as they were, the others repaired
    where taking trials out broke an order rule (`design_order.repair_order`); a break between
    two trials that were next to each other before (`last`, the last answered trial, before the
    first) stays as the seed placed it. So the first unanswered slot stays first when kept."""
    seen = [*([last] if last else []), *(s["trial"] for s in unanswered)]
    adjacent = {(a.id, b.id) for a, b in zip(seen, seen[1:])}
    practice = [s for s in kept if s["trial"].is_practice]
    rest = [s for s in kept if not s["trial"].is_practice]
    before = practice[-1]["trial"] if practice else last
    by_trial = {s["trial"].id: s for s in rest}
    repaired = repair_order([s["trial"] for s in rest], before, adjacent)
    return practice + [by_trial[t.id] for t in repaired]


def _renumber(ordered: list[dict], first: int, n_slots: int) -> None:
    """Number `ordered` first, first + 1, ... In two steps, past every old number and back, as
    (participant, index) is unique at every row written. A slot that moves needs its page shown
    under its new number before an answer to it is stored (`answerable_ms` cleared; the view
    sets it again, `participant_writes.mark_shown`), and that view is its first (`shown_at`
    cleared too, which `mark_shown` would keep: the answer's `shown_at` is its page's)."""
    moved = {s["id"]: first + i for i, s in enumerate(ordered) if s["index"] != first + i}
    if not moved:
        return
    slots = Assignment.objects.filter(pk__in=moved)
    past = Case(*[When(pk=pk, then=Value(index + n_slots)) for pk, index in moved.items()])
    slots.update(index=past, answerable_ms=None, shown_at=None)
    slots.update(index=F("index") - n_slots)
