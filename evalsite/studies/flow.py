"""The participant's state machine, without HTTP: entry, step changes, stored answers.

Views call these; each step change is one UPDATE guarded by the step the participant was in, so
a replayed or concurrent POST for a step already left changes nothing.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Collection
from contextlib import nullcontext
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from evalsite.studies import design, design_fill, design_return, screening
from evalsite.studies.models import (
    Answer,
    Assignment,
    FoldedParticipant,
    Participant,
    Study,
    StudyFold,
    new_completion_code,
)

# The hand-written hot path (one query per trial page or answer), used through this module.
from evalsite.studies.participant_sql import (  # noqa: F401 (re-exported)
    Position,
    participant_by_token,
    position,
)
from evalsite.studies.participant_writes import (  # noqa: F401 (re-exported)
    ClientLog,
    StoredAnswer,
    epoch_ms,
    mark_shown,
    store_answer,
)

log = logging.getLogger("evalsite.studies.participant")
Step = Participant.Step

PROLIFIC_KEYS = {"PROLIFIC_PID": "prolific_pid", "STUDY_ID": "prolific_study_id",
                 "SESSION_ID": "prolific_session_id", "pid": "external_pid"}  # fmt: skip


def _recruitment_ids(params) -> dict[str, str]:
    return {field: str(params.get(key, ""))[:64] for key, field in PROLIFIC_KEYS.items()}


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
    refusal page asks them to come back with the same link on another device."""
    if p.step == Step.REFUSED:
        check_browser_again(p, user_agent)
        if p.step == Step.BROWSER_CHECK and design_fill.known_full(p.study):
            advance(p, Step.BROWSER_CHECK, Step.FULL)
    return p


def create(study: Study, params: dict, user_agent: str, language: str) -> Participant | None:
    """A new participant entering by the study link (at `full` at once when the study is known
    to be full, `design_fill.known_full`). None when another entry with the same recruitment id
    made it since this one looked (a double click, two tabs): the database holds one
    participant per id (Participant's constraints); find_existing now finds that one."""
    ids = _recruitment_ids(params)
    p = Participant(
        study=study,
        recruitment={k: str(v)[:200] for k, v in list(params.items())[:30]},
        user_agent=user_agent[:1000],
        language=language,
        seed=random.SystemRandom().getrandbits(62),
        session=ids["prolific_session_id"] or Participant._meta.get_field("session").default(),
        **ids,
    )
    try:
        with transaction.atomic():  # a savepoint: the entry goes on after a refused INSERT
            p.save(force_insert=True)
    except IntegrityError:
        if not (ids["prolific_pid"] or ids["external_pid"]):
            raise  # not a recruitment id's conflict
        log.info("study %s: an entry with the same recruitment id made the participant first",
                 study.pk)  # fmt: skip
        return None
    if design_fill.known_full(study):  # told now, not after consent and screening
        advance(p, Step.BROWSER_CHECK, Step.FULL)
    return p


def check_browser_again(p: Participant, user_agent: str) -> None:
    """Take a participant refused at the browser check back to it (the only way out of a final
    step). Refused there, it has no slots and no answers; it leaves the study's fold (under the
    study's lock, as every change to the fold), which it had entered with nothing."""
    with transaction.atomic():
        design_fill.lock_study(p.study_id)
        if not advance(p, Step.REFUSED, Step.BROWSER_CHECK, state={}, finished_at=None,
                       user_agent=user_agent[:1000]):  # fmt: skip
            return  # another request took it back first
        if FoldedParticipant.objects.filter(participant_id=p.pk).delete()[0]:
            StudyFold.objects.filter(study_id=p.study_id).update(participants=F("participants") - 1)
    log.info("participant %s: refused at the browser check, checking again", p.pk)


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


def withdraw(p: Participant) -> bool:
    """The participant leaves the study from its current step (a final step, `withdrawn`): its
    unanswered trials go back to the pool and, unless the study keeps them
    (`withdrawn_answers`), its answers and trial list are deleted. False (nothing done) when it
    was at no step one can leave from."""
    if p.step not in Participant.WITHDRAWABLE_STEPS:
        return False
    delete = p.study.setting("withdrawn_answers") != "keep"
    with transaction.atomic():
        # The step's UPDATE holds the participant's row until the commit: an answer POST from
        # another tab in the same instant waits for it and then stores nothing
        # (participant_writes.ANSWER_SQL), or was stored before and is deleted here.
        given = {"questionnaire": {}, "screening": {}, "browser": {}, "user_agent": ""}
        if not advance(p, p.step, Step.WITHDRAWN, state={}, **(given if delete else {})):
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


def leave_calibration(p: Participant) -> None:
    """Go on to the screening, whose kinds are fixed now for this participant (in
    `p.screening["kinds"]`: a study edited meanwhile changes the screening of those who have not
    begun it), or to the instructions when the study has none."""
    kinds = screening_kinds(p.study)
    if kinds:
        advance(p, Step.CALIBRATION, Step.SCREENING, screening={**p.screening, "kinds": kinds})
    else:
        advance(p, Step.CALIBRATION, Step.INSTRUCTIONS)


def screening_kinds(study: Study) -> list[str]:
    """The screening a participant reaching it now takes (the study's current settings)."""
    kinds = ["antiphase"] if study.setting("screening") else []
    return kinds + (["huggins"] if study.setting("screening") and study.setting("huggins") else [])


def _kinds_of(given: dict, study: Study) -> list[str]:
    """The kinds of a participant's screening (its `screening`, `given`): those fixed when it
    began. One that began before they were kept has the kinds it answered, then the study's
    current ones (fixed at its next screening page, `view_screening`)."""
    if "kinds" in given:
        return given["kinds"]
    answered = [a["kind"] for a in given.get("answers", [])]
    return list(dict.fromkeys(answered + screening_kinds(study)))


def screening_position(p: Participant) -> tuple[str, int] | None:
    """(kind, number) of the screening trial to show next, None when all are answered."""
    done = len(p.screening.get("answers", []))
    sequence = screening.plan(_kinds_of(p.screening, p.study), screening.config())
    return sequence[done] if done < len(sequence) else None


def screening_draw(p: Participant) -> int:
    """Which draw of the current screening trial its page shows (screening.py: each view of the
    page draws the trial afresh; 0 before and at the first view)."""
    n = len(p.screening.get("answers", []))
    views = p.screening.get("views", [])
    return max(views[n] - 1, 0) if n < len(views) else 0


def screening_key(p: Participant) -> dict:
    """The answer key of the screening trial the participant's page shows now."""
    shown = screening_position(p)
    if shown is None:
        raise ValueError(f"participant {p.pk}: every screening trial answered; none shown")
    kind, i = shown
    return screening.answer_key(p.seed, kind, i, screening_draw(p))


def view_screening(p: Participant) -> int:
    """Count a view of the current screening page (each draws its trial afresh) and return the
    draw it shows; `p.screening` is updated in place (with its kinds, where not fixed yet)."""
    with transaction.atomic():
        locked = Participant.objects.select_for_update().only("screening").get(pk=p.pk)
        n = len(locked.screening.get("answers", []))
        views = list(locked.screening.get("views", []))
        views += [0] * (n + 1 - len(views))  # a trial answered unseen (a scripted POST) counts 0
        views[n] += 1
        kinds = _kinds_of(locked.screening, p.study)
        locked.screening = {**locked.screening, "views": views, "kinds": kinds}
        locked.save(update_fields=["screening"])
    p.screening = locked.screening
    return views[n] - 1


def record_screening(p: Participant, n: int, draw: int, choice: int, rt_ms: int | None) -> None:
    """Store a screening answer (only to the current trial number n, as drawn for the page
    shown last) and move on when the answers decide (`end_screening`)."""
    with transaction.atomic():
        p = Participant.objects.select_for_update().get(pk=p.pk)
        answers = p.screening.get("answers", [])
        if p.step != Step.SCREENING or n != len(answers):
            return  # stale or replayed POST
        position = screening_position(p)
        if position is not None and draw == screening_draw(p):  # else drawn before a reload
            kind, i = position  # (another tab): not what was heard
            key = screening.answer_key(p.seed, kind, i, draw)
            answers.append({"kind": kind, "i": i, "draw": draw, "choice": choice, "rt_ms": rt_ms,
                            "correct": choice == key["target"]})  # fmt: skip
            p.screening = {**p.screening, "answers": answers}
            p.save(update_fields=["screening"])
    end_screening(p)


def end_screening(p: Participant) -> bool:
    """Move p on from the screening once its answers decide: to `screened_out` as soon as a kind
    answered to its end scored below the pass mark, to the instructions once nothing is left to
    answer (passed; `screening_passed` stays unknown when nothing was answered: a participant
    that began the screening before its kinds were kept, whose study turned it off meanwhile).
    False when the screening goes on. Also for a page loaded between the last answer's commit
    and this (another tab), which finds nothing left to show."""
    cfg = screening.config()
    answers = p.screening.get("answers", [])
    answered = list(dict.fromkeys(a["kind"] for a in answers))
    finished = [k for k in answered if sum(a["kind"] == k for a in answers) >= cfg.trials]
    if any(screening.score(answers, kind) < cfg.pass_correct for kind in finished):
        code = p.study.setting("screen_out_code") or f"SO-{new_completion_code()}"
        advance(p, Step.SCREENING, Step.SCREENED_OUT, screening_passed=False, screen_out_code=code)
        return True
    if screening_position(p) is None:
        advance(p, Step.SCREENING, Step.INSTRUCTIONS, screening_passed=True if answers else None)
        return True
    return False


def start_trials(p: Participant) -> None:
    """Assign the trials (or mark the study full) and go to practice or the main trials."""
    if not design.assign(p, timezone.now()):
        advance(p, Step.INSTRUCTIONS, Step.FULL)
        return
    has_practice = p.slots.filter(trial__is_practice=True).exists()
    moved = advance(p, Step.INSTRUCTIONS, Step.PRACTICE if has_practice else Step.TRIALS)
    if not moved and Participant.objects.filter(pk=p.pk, step=Step.WITHDRAWN).exists():
        p.slots.all().delete()  # left (another tab) while these were assigned


def current_slot(p: Participant) -> Assignment | None:
    """The first slot without an answer (practice slots come first)."""
    answered = Answer.objects.filter(participant=p, trial=OuterRef("trial"))
    return p.slots.exclude(Exists(answered)).select_related("trial").order_by("index").first()


def note_early_answer(token: str, index: int, now) -> bool:
    """After an answer was refused: count it in the participant's `early_answers` when it was to
    the current slot before its page had been open long enough to play the clips (or to a slot
    never shown), which only a script sends; False (nothing written) for any other refusal."""
    slot = (
        Assignment.objects.filter(participant__token=token, index=index)
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


# `last_seen_at` is rewritten at most this often by page views alone (a step change or a first
# view of a trial writes anyway): a trial page then costs one write, not two.
LAST_SEEN_RESOLUTION = timedelta(seconds=30)


def touch(p: Participant, now, slot: Assignment | None = None) -> bool:
    """Record a page view: `last_seen_at` (to LAST_SEEN_RESOLUTION), the slot's first
    `shown_at` and, when due, the reservation of the unanswered slots, committed together.
    Coming back after the reservations lapsed, the list is checked again first
    (`design_return`); True (nothing else recorded) when trials were taken out of it: the page
    must read its position again."""
    lapsed = slot is not None and slot.reserved_until <= now
    if lapsed and design_return.recheck(p, now):
        return True
    first_view = slot is not None and (slot.shown_at is None or slot.answerable_ms is None)
    renew = not lapsed and slot is not None and design.reservation_due(p, slot, now)
    seen = p.last_seen_at is None or now - p.last_seen_at >= LAST_SEEN_RESOLUTION
    with transaction.atomic() if first_view + renew + seen > 1 else nullcontext():
        if seen:
            Participant.objects.filter(pk=p.pk).update(last_seen_at=now)
        if first_view and slot is not None:  # (first_view implies a slot)
            mark_shown(slot, now, float(p.study.setting("min_listen_share") or 0))
        if renew:
            design.extend_reservations(p, now)
    return False


def practice_feedback(slot: Assignment, chosen_position: str) -> dict:
    """What the feedback page after a practice trial says ("correct": None without a key)."""
    t = slot.trial
    if not t.expected:
        return {"correct": None, "position": "", "instrument": t.instrument, "kind": ""}
    right = "A" if slot.displayed_first == t.expected else "B"
    identical = t.reference_id in (t.candidate_a_id, t.candidate_b_id)
    return {"correct": chosen_position == right, "position": right, "instrument": t.instrument,
            "kind": "identical" if identical else "attention"}  # fmt: skip


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
    code = p.study.setting("completion_code") or new_completion_code()
    finished = advance(p, Step.TRIALS, Step.DONE, completion_code=code)
    if finished:
        design.release_finished(p)
        # The report is recomputed in a worker, debounced, once per finished participant rather
        # than per answer: a per-answer trigger would lock the study's report row on every POST.
        from evalsite.reports.tasks import schedule_report

        schedule_report(p.study_id)
    return finished


def prolific_redirect(p: Participant) -> str:
    """The study's Prolific completion URL with the code filled in ("" if none)."""
    url = p.study.setting("prolific_completion_url") or ""
    if not url:
        return ""
    if "{code}" in url:
        return url.replace("{code}", p.completion_code)
    if "cc=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}cc={p.completion_code}"


def prolific_screen_out_redirect(p: Participant) -> str:
    """Prolific's completion URL with the study's screen-out code as `cc` ("" unless the study
    has both): Prolific tells a screened-out submission from a complete one by that code. A
    random per-participant code (no study code set) would mean nothing to Prolific."""
    url, code = p.study.setting("prolific_completion_url"), p.study.setting("screen_out_code")
    if not (url and code and p.screen_out_code == code):
        return ""
    if "{code}" in url:
        return url.replace("{code}", code)
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "cc"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("cc", code)])))
