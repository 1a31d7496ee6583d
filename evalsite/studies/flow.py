"""The participant's state machine, without HTTP: entry, step changes, stored answers.

Views call these; each step change is one UPDATE guarded by the step the participant was in, so
a replayed or concurrent POST for a step already left changes nothing.
"""

from __future__ import annotations

import functools
import logging
import random
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
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
# By token, the same query also returns the participant and its study: a trial page or an answer
# then starts with one query, not two.
POSITION_SQL = """
SELECT {head}{slot_cols}, {trial_cols},
  (SELECT COUNT(*) FROM {slots} m JOIN {trials} mt ON mt.id = m.trial_id
   WHERE m.participant_id = s.participant_id AND mt.is_practice = %s AND m.{idx} < s.{idx}),
  (SELECT COUNT(*) FROM {slots} m JOIN {trials} mt ON mt.id = m.trial_id
   WHERE m.participant_id = s.participant_id AND mt.is_practice = %s),
  EXISTS (SELECT 1 FROM {slots} l WHERE l.participant_id = s.participant_id
          AND l.{idx} > s.{idx} AND {l_unanswered})
FROM {slots} s JOIN {trials} t ON t.id = s.trial_id{join}
WHERE {where} AND {s_unanswered}
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


@contextmanager
def hot_cursor():
    """Django's cursor for the queries every participant request runs, prepared on PostgreSQL:
    planned once per connection instead of on every run (Django turns psycopg's automatic
    preparation off, and binds parameters in the client, where nothing can be prepared).
    Planning the position query costs more than running it (0.35 ms vs 0.14 ms measured).
    Off with DB_PREPARE_PARTICIPANT_QUERIES=false (poolers that drop prepared statements)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and settings.DB_PREPARE_PARTICIPANT_QUERIES:
            cursor.cursor = _prepared_cursor_class()(connection.connection)
        yield cursor


@functools.cache
def _prepared_cursor_class():
    import psycopg  # only with PostgreSQL

    class PreparedCursor(psycopg.Cursor):
        """Server-side parameter binding; every statement prepared (and kept per connection)."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

    return PreparedCursor


def _columns(alias: str, fields) -> str:
    return ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields)


@functools.cache
def _position_query(vendor: str, by_token: bool) -> tuple[str, list]:
    """The position SQL (by participant id, or by token with the participant and study first)
    and the (model, fields) its leading columns hold, in order."""
    qn = connection.ops.quote_name
    # in model order: Model.from_db reads a partial row in that order
    trial_fields = [f for f in Trial._meta.concrete_fields if f.name in TRIAL_FIELDS]
    models = [(Assignment, Assignment._meta.concrete_fields), (Trial, trial_fields)]
    tables = {"slots": qn(Assignment._meta.db_table), "trials": qn(Trial._meta.db_table),
              "answers": qn(Answer._meta.db_table)}  # fmt: skip
    head, join, where = "", "", "s.participant_id = %s"
    if by_token:
        p_fields, st_fields = Participant._meta.concrete_fields, Study._meta.concrete_fields
        models = [(Participant, p_fields), (Study, st_fields), *models]
        head = f"{_columns('p', p_fields)}, {_columns('st', st_fields)}, "
        join = (f" JOIN {qn(Participant._meta.db_table)} p ON p.id = s.participant_id"
                f" JOIN {qn(Study._meta.db_table)} st ON st.id = p.study_id")  # fmt: skip
        where = "p.token = %s"
    sql = POSITION_SQL.format(
        head=head, join=join, where=where,
        slot_cols=_columns("s", Assignment._meta.concrete_fields),
        trial_cols=_columns("t", trial_fields), idx=qn("index"),
        l_unanswered=UNANSWERED_SQL.format(s="l", **tables),
        s_unanswered=UNANSWERED_SQL.format(s="s", **tables),
        **tables,
    )  # fmt: skip
    return sql, models


def _converters(model, fields) -> list[tuple]:
    """Per field, its column and the functions the ORM runs on a raw value of it (e.g. SQLite
    dates to aware datetimes). Looked up once per database connection: building them costs
    more than the query."""
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection: converters are bound to it
    cache = db.__dict__.setdefault("_csn_row_converters", {})
    key = (model, tuple(f.attname for f in fields))
    if key not in cache:
        cols = [f.get_col(model._meta.db_table) for f in fields]
        cache[key] = [
            (col, db.ops.get_db_converters(col) + col.get_db_converters(db)) for col in cols
        ]
    return cache[key]


def _from_row(model, fields, values):
    """A model instance from raw column values, converted as the ORM would (e.g. SQLite dates)."""
    converted = []
    for (col, converters), value in zip(_converters(model, fields), values):
        for convert in converters:
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _split(row, models) -> tuple[list, tuple]:
    """Model instances from the leading columns of `row`, and the values after them."""
    instances, start = [], 0
    for model, fields in models:
        instances.append(_from_row(model, fields, row[start : start + len(fields)]))
        start += len(fields)
    return instances, row[start:]


def _position(slot: Assignment, rest) -> Position:
    done, total, unanswered_after = rest
    return Position(slot, int(done), int(total), not unanswered_after)


@functools.cache
def _participant_query(vendor: str) -> tuple[str, list]:
    qn = connection.ops.quote_name
    p_fields, s_fields = Participant._meta.concrete_fields, Study._meta.concrete_fields
    sql = (
        f"SELECT {_columns('p', p_fields)}, {_columns('s', s_fields)}"
        f" FROM {qn(Participant._meta.db_table)} p"
        f" JOIN {qn(Study._meta.db_table)} s ON s.id = p.study_id WHERE p.token = %s"
    )
    return sql, [(Participant, p_fields), (Study, s_fields)]


def participant_by_token(token: str) -> Participant | None:
    """The participant with this token and its study; read on every request, so in hand-written
    SQL. A participant with an unanswered slot comes with its position from the same query
    (one query for a trial page or an answer), kept for the request's first `position(p)`."""
    sql, models = _position_query(connection.vendor, True)
    with hot_cursor() as cursor:
        cursor.execute(sql, [False, False, token])
        row = cursor.fetchone()
        if row is not None:
            (p, study, slot, trial), rest = _split(row, models)
            p.study, slot.trial = study, trial
            p._position = _position(slot, rest)
            return p
        sql, models = _participant_query(connection.vendor)  # no unanswered slot: no position
        cursor.execute(sql, [token])
        row = cursor.fetchone()
    if row is None:
        return None
    (p, study), _ = _split(row, models)
    p.study = study
    return p


def position(p: Participant) -> Position:
    """The current slot (with its trial) and the progress counts, in one query; or, the first
    time in a request, as read with the participant (nothing was written in between: views
    ask for the position before they write)."""
    read_with_participant = p.__dict__.pop("_position", None)
    if read_with_participant is not None:
        return read_with_participant
    sql, models = _position_query(connection.vendor, False)
    with hot_cursor() as cursor:
        cursor.execute(sql, [False, False, p.pk])
        row = cursor.fetchone()
    if row is None:  # every slot answered (or none assigned)
        total = p.slots.filter(trial__is_practice=False).count()
        return Position(None, total, total, True)
    (slot, trial), rest = _split(row, models)
    slot.trial = trial
    return _position(slot, rest)


# `last_seen_at` is rewritten at most this often by page views alone (a step change or a first
# view of a trial writes anyway): a trial page then costs one write, not two.
LAST_SEEN_RESOLUTION = timedelta(seconds=30)


def touch(p: Participant, now, slot: Assignment | None = None) -> None:
    """Record a page view: `last_seen_at` (to LAST_SEEN_RESOLUTION), the slot's first
    `shown_at` and, when due, the reservation of the unanswered slots, committed together."""
    first_view = slot is not None and slot.shown_at is None
    renew = slot is not None and design.reservation_due(p, slot, now)
    seen = p.last_seen_at is None or now - p.last_seen_at >= LAST_SEEN_RESOLUTION
    with transaction.atomic() if first_view + renew + seen > 1 else nullcontext():
        if seen:
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
    stored = insert_unless_exists(
        Answer, participant_id=p.pk, trial_id=slot.trial_id, trial_index=slot.index,
        chosen=canon[position], chosen_position=position, displayed_first=slot.displayed_first,
        response_ms=client.response_ms, plays_reference=int(client.plays.get("r", 0)),
        plays_a=plays["a"], plays_b=plays["b"], heard_reference=client.heard.get("r"),
        heard_a=heard["a"], heard_b=heard["b"], blur_events=client.blur_events,
        audio_sample_rate=client.audio_sample_rate, client=client.raw, shown_at=slot.shown_at,
        created_at=timezone.now(),
    )  # fmt: skip
    if stored:
        log.info(
            "answer participant=%s trial=%s index=%s chosen=%s position=%s rt_ms=%s plays=%s",
            p.pk, slot.trial_id, slot.index, canon[position], position, client.response_ms,
            client.plays,
        )  # fmt: skip
    return stored


@functools.cache
def _insert_sql(model, vendor: str, columns: tuple[str, ...]) -> str:
    qn = connection.ops.quote_name
    return (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c) for c in columns)})"
        f" VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"
    )


def insert_unless_exists(model, **values) -> bool:
    """Insert one row; False (and nothing written) if it would break a unique constraint.

    One statement, atomic on its own: in autocommit it costs one round trip, where
    `create()` in `atomic()` costs three (BEGIN, INSERT, COMMIT) and a caught IntegrityError.
    Every column must be given (the ORM's Python-side defaults are not applied here).
    """
    fields = [model._meta.get_field(name) for name in values]
    sql = _insert_sql(model, connection.vendor, tuple(f.column for f in fields))
    params = [f.get_db_prep_save(v, connection) for f, v in zip(fields, values.values())]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


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
