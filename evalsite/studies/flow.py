"""The participant's state machine, without HTTP: entry, step changes, stored answers.

Views call these; each step change is one UPDATE guarded by the step the participant was in, so
a replayed or concurrent POST for a step already left changes nothing.
"""

from __future__ import annotations

import functools
import logging
import random
from contextlib import nullcontext
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from evalsite.studies import design, screening
from evalsite.studies.models import (
    Answer,
    Assignment,
    Participant,
    Study,
    Trial,
    new_completion_code,
)

log = logging.getLogger("evalsite.studies.participant")
Step = Participant.Step

PROLIFIC_KEYS = {"PROLIFIC_PID": "prolific_pid", "STUDY_ID": "prolific_study_id",
                 "SESSION_ID": "prolific_session_id", "pid": "external_pid"}  # fmt: skip


def find_or_create(study: Study, params: dict, user_agent: str, language: str) -> Participant:
    """The participant these recruitment parameters name (resume), or a new one."""
    ids = {field: str(params.get(key, ""))[:64] for key, field in PROLIFIC_KEYS.items()}
    if ids["prolific_pid"]:
        found = study.participants.filter(prolific_pid=ids["prolific_pid"]).last()
    elif ids["external_pid"]:
        found = study.participants.filter(external_pid=ids["external_pid"]).last()
    else:
        found = None
    if found is not None:
        return found
    return Participant.objects.create(
        study=study,
        recruitment={k: str(v)[:200] for k, v in list(params.items())[:30]},
        user_agent=user_agent[:1000],
        language=language,
        seed=random.SystemRandom().getrandbits(62),
        session=ids["prolific_session_id"] or Participant._meta.get_field("session").default(),
        **ids,
    )


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


def after_calibration(p: Participant) -> str:
    return Step.SCREENING if screening_kinds(p.study) else Step.INSTRUCTIONS


def screening_kinds(study: Study) -> list[str]:
    kinds = ["antiphase"] if study.setting("screening") else []
    return kinds + (["huggins"] if study.setting("screening") and study.setting("huggins") else [])


def screening_position(p: Participant) -> tuple[str, int] | None:
    """(kind, number) of the screening trial to show next, None when all are answered."""
    done = len(p.screening.get("answers", []))
    sequence = screening.plan(screening_kinds(p.study), screening.config())
    return sequence[done] if done < len(sequence) else None


def record_screening(p: Participant, n: int, choice: int, rt_ms: int | None) -> None:
    """Store a screening answer (only for the current trial number n) and score finished kinds."""
    cfg = screening.config()
    with transaction.atomic():
        p = Participant.objects.select_for_update().get(pk=p.pk)
        answers = p.screening.get("answers", [])
        position = screening_position(p)
        if p.step != Step.SCREENING or position is None or n != len(answers):
            return  # stale or replayed POST
        kind, i = position
        key = screening.answer_key(p.seed, kind, i)
        answers.append({"kind": kind, "i": i, "choice": choice, "rt_ms": rt_ms,
                        "correct": choice == key["target"]})  # fmt: skip
        p.screening = {**p.screening, "answers": answers}
        p.save(update_fields=["screening"])
    finished_kind = i == cfg.trials - 1
    if finished_kind and screening.score(answers, kind) < cfg.pass_correct:
        code = p.study.setting("screen_out_code") or f"SO-{new_completion_code()}"
        advance(p, Step.SCREENING, Step.SCREENED_OUT, screening_passed=False, screen_out_code=code)
    elif screening_position(p) is None:
        advance(p, Step.SCREENING, Step.INSTRUCTIONS, screening_passed=True)


def start_trials(p: Participant) -> None:
    """Assign the trials (or mark the study full) and go to practice or the main trials."""
    if not design.assign(p, timezone.now()):
        advance(p, Step.INSTRUCTIONS, Step.FULL)
        return
    has_practice = p.slots.filter(trial__is_practice=True).exists()
    advance(p, Step.INSTRUCTIONS, Step.PRACTICE if has_practice else Step.TRIALS)


def current_slot(p: Participant) -> Assignment | None:
    """The first slot without an answer (practice slots come first)."""
    answered = Answer.objects.filter(participant=p, trial=OuterRef("trial"))
    return p.slots.exclude(Exists(answered)).select_related("trial").order_by("index").first()


@dataclass(frozen=True)
class Position:
    """Where a participant stands: computed once per request, in one query."""

    slot: Assignment | None  # the current slot (first without an answer), with its trial
    done: int  # main (non-practice) slots before it
    total: int  # main slots in all
    is_last: bool  # no unanswered slot after it: answering it completes the list


# Read on every trial page and answer, so written once in SQL: building the equivalent ORM query
# (three correlated subqueries) cost ~5x the CPU of running it. Standard SQL (PostgreSQL, SQLite).
POSITION_SQL = """
SELECT {slot_cols}, {trial_cols},
  (SELECT COUNT(*) FROM {slots} m JOIN {trials} mt ON mt.id = m.trial_id
   WHERE m.participant_id = s.participant_id AND mt.is_practice = %s AND m.{idx} < s.{idx}),
  (SELECT COUNT(*) FROM {slots} m JOIN {trials} mt ON mt.id = m.trial_id
   WHERE m.participant_id = s.participant_id AND mt.is_practice = %s),
  EXISTS (SELECT 1 FROM {slots} l WHERE l.participant_id = s.participant_id
          AND l.{idx} > s.{idx} AND {l_unanswered})
FROM {slots} s JOIN {trials} t ON t.id = s.trial_id
WHERE s.participant_id = %s AND {s_unanswered}
ORDER BY s.{idx}
LIMIT 1
"""
UNANSWERED_SQL = (
    "NOT EXISTS (SELECT 1 FROM {answers} a"
    " WHERE a.participant_id = {s}.participant_id AND a.trial_id = {s}.trial_id)"
)
# The trial fields the trial page, the answer and the practice feedback read (others load lazily).
TRIAL_FIELDS = ("id", "instrument", "is_practice", "is_catch", "catch_kind", "expected",
                "reference", "candidate_a", "candidate_b", "repeat_of")  # fmt: skip


@functools.cache
def _position_query(vendor: str) -> tuple[str, list, list]:
    qn = connection.ops.quote_name
    slot_fields = Assignment._meta.concrete_fields
    # in model order: Model.from_db reads a partial row in that order
    trial_fields = [f for f in Trial._meta.concrete_fields if f.name in TRIAL_FIELDS]
    tables = {"slots": qn(Assignment._meta.db_table), "trials": qn(Trial._meta.db_table),
              "answers": qn(Answer._meta.db_table)}  # fmt: skip
    sql = POSITION_SQL.format(
        slot_cols=", ".join(f"s.{qn(f.column)}" for f in slot_fields),
        trial_cols=", ".join(f"t.{qn(f.column)}" for f in trial_fields),
        idx=qn("index"),
        l_unanswered=UNANSWERED_SQL.format(s="l", **tables),
        s_unanswered=UNANSWERED_SQL.format(s="s", **tables),
        **tables,
    )
    return sql, slot_fields, trial_fields


def _from_row(model, fields, values):
    """A model instance from raw column values, converted as the ORM would (e.g. SQLite dates)."""
    converted = []
    for field, value in zip(fields, values):
        col = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


@functools.cache
def _participant_query(vendor: str) -> tuple[str, list, list]:
    qn = connection.ops.quote_name
    p_fields, s_fields = Participant._meta.concrete_fields, Study._meta.concrete_fields
    sql = (
        f"SELECT {', '.join(f'p.{qn(f.column)}' for f in p_fields)},"
        f" {', '.join(f's.{qn(f.column)}' for f in s_fields)}"
        f" FROM {qn(Participant._meta.db_table)} p"
        f" JOIN {qn(Study._meta.db_table)} s ON s.id = p.study_id WHERE p.token = %s"
    )
    return sql, p_fields, s_fields


def participant_by_token(token: str) -> Participant | None:
    """The participant with this token and its study, in one query (read on every request:
    the SQL is written once rather than built by the ORM each time)."""
    sql, p_fields, s_fields = _participant_query(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [token])
        row = cursor.fetchone()
    if row is None:
        return None
    p = _from_row(Participant, p_fields, row[: len(p_fields)])
    p.study = _from_row(Study, s_fields, row[len(p_fields) :])
    return p


def position(p: Participant) -> Position:
    """The current slot (with its trial) and the progress counts, in one query."""
    sql, slot_fields, trial_fields = _position_query(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [False, False, p.pk])
        row = cursor.fetchone()
    if row is None:  # every slot answered (or none assigned)
        total = p.slots.filter(trial__is_practice=False).count()
        return Position(None, total, total, True)
    n_slot, n_trial = len(slot_fields), len(trial_fields)
    slot = _from_row(Assignment, slot_fields, row[:n_slot])
    slot.trial = _from_row(Trial, trial_fields, row[n_slot : n_slot + n_trial])
    done, total, unanswered_after = row[n_slot + n_trial :]
    return Position(slot, int(done), int(total), not unanswered_after)


def touch(p: Participant, now, slot: Assignment | None = None) -> None:
    """Record a page view: `last_seen_at`, the slot's first `shown_at` and, when due, the
    reservation of the unanswered slots, committed together (one WAL flush, not three)."""
    first_view = slot is not None and slot.shown_at is None
    renew = slot is not None and design.reservation_due(p, slot, now)
    with transaction.atomic() if first_view or renew else nullcontext():
        Participant.objects.filter(pk=p.pk).update(last_seen_at=now)
        if first_view:
            Assignment.objects.filter(pk=slot.pk, shown_at__isnull=True).update(shown_at=now)
        if renew:
            design.extend_reservations(p, now)


@dataclass
class ClientLog:
    response_ms: int | None
    plays: dict  # position ("r", "A", "B") -> count
    heard: dict  # position -> fraction 0..1
    blur_events: int
    audio_sample_rate: int | None
    raw: dict


def store_answer(p: Participant, slot: Assignment, position: str, client: ClientLog) -> bool:
    """Store the answer to `slot`; False if one was already stored (it is kept unchanged)."""
    shown_b = "b" if slot.displayed_first == "a" else "a"
    canon = {"A": slot.displayed_first, "B": shown_b}
    plays = {canon[k]: int(client.plays.get(k, 0)) for k in ("A", "B")}
    heard = {canon[k]: client.heard.get(k) for k in ("A", "B")}
    try:
        with transaction.atomic():
            answer = Answer.objects.create(
                participant=p, trial=slot.trial, trial_index=slot.index,
                chosen=canon[position], chosen_position=position,
                displayed_first=slot.displayed_first, response_ms=client.response_ms,
                plays_reference=int(client.plays.get("r", 0)),
                plays_a=plays["a"], plays_b=plays["b"],
                heard_reference=client.heard.get("r"), heard_a=heard["a"], heard_b=heard["b"],
                blur_events=client.blur_events, audio_sample_rate=client.audio_sample_rate,
                client=client.raw, shown_at=slot.shown_at,
            )  # fmt: skip
    except IntegrityError:
        return False
    log.info(
        "answer participant=%s trial=%s index=%s chosen=%s position=%s rt_ms=%s plays=%s",
        p.pk, slot.trial_id, slot.index, answer.chosen, position, client.response_ms,
        client.plays,
    )  # fmt: skip
    return True


def practice_feedback(slot: Assignment, position: str) -> dict:
    """What the feedback page after a practice trial says ("correct": None without a key)."""
    t = slot.trial
    if not t.expected:
        return {"correct": None, "position": "", "instrument": t.instrument, "kind": ""}
    right = "A" if slot.displayed_first == t.expected else "B"
    identical = t.reference_id in (t.candidate_a_id, t.candidate_b_id)
    return {"correct": position == right, "position": right, "instrument": t.instrument,
            "kind": "identical" if identical else "attention"}  # fmt: skip


def finish_if_complete(p: Participant) -> bool:
    """Done only when the server holds an answer for every slot (checked in the database)."""
    total = p.slots.count()
    stored = Answer.objects.filter(participant=p, trial__slots__participant=p).count()
    if total == 0 or stored < total:
        return False
    code = p.study.setting("completion_code") or new_completion_code()
    finished = advance(p, Step.TRIALS, Step.DONE, completion_code=code)
    if finished:
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
