"""The hand-written SQL every participant request runs: the participant with its position (a trial
page), and an answer stored in one statement (an answer POST).

Trial pages and answers are most of the site's traffic: a trial page reads in one round trip
(then records the view, `flow.touch`), an answer is one statement. The SQL is built once per
process from the models' own table and column names (standard SQL: the same text runs on
PostgreSQL and SQLite) and, on PostgreSQL, prepared once per connection. The ORM equivalents are
what `flow.current_slot` and the tests compare these with.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from evalsite.stimuli.models import Clip
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial

log = logging.getLogger("evalsite.studies.participant")


@dataclass(frozen=True)
class Position:
    """Where a participant stands: computed once per request, in one query."""

    slot: Assignment | None  # the current slot (first without an answer), with its trial
    done: int  # main (non-practice) slots before it
    total: int  # main slots in all
    is_last: bool  # no unanswered slot after it: answering it completes the list


# Read on every trial page, so written once in SQL: building the equivalent ORM query (three
# correlated subqueries) cost ~5x the CPU of running it. Standard SQL (PostgreSQL, SQLite).
# By token, the same query also returns the participant and its study: a trial page then starts
# with one query, not two.
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
# The trial fields the trial page and the practice feedback read (others load lazily).
TRIAL_FIELDS = ("id", "instrument", "is_practice", "is_catch", "catch_kind", "expected",
                "reference", "candidate_a", "candidate_b", "repeat_of")  # fmt: skip


@contextmanager
def hot_cursor():
    """Django's cursor for the queries every participant request runs, prepared on PostgreSQL:
    planned once per connection instead of on every run (Django turns psycopg's automatic
    preparation off, and binds parameters in the client, where nothing can be prepared).
    Planning the position query costs more than running it (0.35 ms vs 0.14 ms measured).
    Off with DB_PREPARE_PARTICIPANT_QUERIES=false (poolers that drop prepared statements).

    On PostgreSQL one psycopg cursor per database connection serves every request (wrapped by
    Django as any cursor is: errors translated, queries logged where Django logs them), instead
    of two new ones per query (Django's, then the preparing one): creating them was ~4 % of an
    answer's CPU."""
    if connection.vendor != "postgresql" or not settings.DB_PREPARE_PARTICIPANT_QUERIES:
        with connection.cursor() as cursor:
            yield cursor
        return
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection (`connection` is a proxy)
    db.close_if_health_check_failed()
    db.ensure_connection()
    cursor = db.__dict__.get("_csn_hot_cursor")
    if cursor is None or cursor.connection is not db.connection or cursor.closed:
        with db.wrap_database_errors:
            cursor = _prepared_cursor_class()(db.connection)
        db._csn_hot_cursor = cursor  # replaced when the connection is
    yield db._prepare_cursor(cursor)  # not closed: the next request reuses it


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
    (one query for a trial page), kept for the request's first `position(p)`."""
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


# A slot's first view: `shown_at`, and the earliest time an answer is stored (`answerable_ms`):
# the view plus `share` of its three clips' durations, summed by the same statement (a missing
# duration counts 0). Standard SQL; the subquery reads the updated row's trial. A slot shown
# without an `answerable_ms` (by code from before the check, between a migration and a restart)
# gets one from its next view, keeping its first view's `shown_at`: it is never left unanswerable.
SHOWN_SQL = """
UPDATE {slots} SET {shown} = COALESCE({shown}, %s), answerable_ms = %s + (
  SELECT CAST(%s * 1000 * (COALESCE(r.duration_s, 0) + COALESCE(a.duration_s, 0)
                           + COALESCE(b.duration_s, 0)) AS BIGINT)
  FROM {trials} t JOIN {clips} r ON r.id = t.reference_id
    JOIN {clips} a ON a.id = t.candidate_a_id JOIN {clips} b ON b.id = t.candidate_b_id
  WHERE t.id = {slots}.trial_id)
WHERE {pk} = %s AND ({shown} IS NULL OR answerable_ms IS NULL)
"""


@functools.cache
def _shown_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    return SHOWN_SQL.format(
        slots=qn(Assignment._meta.db_table), trials=qn(Trial._meta.db_table),
        clips=qn(Clip._meta.db_table), shown=qn(Assignment._meta.get_field("shown_at").column),
        pk=qn(Assignment._meta.pk.column),
    )  # fmt: skip


def epoch_ms(when) -> int:
    """Milliseconds since the Unix epoch (`answerable_ms` is compared in these)."""
    return int(when.timestamp() * 1000)


def mark_shown(slot: Assignment, now, min_listen_share: float) -> None:
    """Stamp the slot's first view (`shown_at`, and `answerable_ms` from the study's
    `min_listen_share` now: a share changed since the slot was assigned applies; a later view
    keeps both). Every trial page after an answer runs it: as
    the ORM's `update()` it cost 0.61-0.79 ms of CPU in-process, most of it building the query;
    0.14-0.20 ms as this prepared statement."""
    value = Assignment._meta.get_field("shown_at").get_db_prep_save(now, connection)
    params = [value, epoch_ms(now), float(min_listen_share), slot.pk]
    with hot_cursor() as cursor:
        cursor.execute(_shown_sql(connection.vendor), params)


# An entry's trial list: one multi-row INSERT per batch of slots (standard SQL). Under the study's
# lock, which every entry queues for; `bulk_create` spent 2.6 ms building 60 model instances and
# their SQL, a third of an entry's time under the lock.
SLOT_BATCH = 150  # rows per statement: 900 parameters, under SQLite's oldest limit (999)
SLOT_COLUMNS = ("participant", "trial", "index", "displayed_first", "reserved_until",
                "answerable_ms")  # fmt: skip


@functools.cache
def _slots_sql(vendor: str, rows: int) -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(qn(Assignment._meta.get_field(name).column) for name in SLOT_COLUMNS)
    values = ", ".join(["(" + ", ".join(["%s"] * len(SLOT_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO {qn(Assignment._meta.db_table)} ({columns}) VALUES {values}"


def insert_slots(
    participant_id: int, trials: list[tuple[int, str]], reserved_until, answerable_ms: int | None
) -> None:
    """Store a participant's trial list: slot i for the i-th (trial id, canonical candidate shown
    in A) of `trials`, each reserved until `reserved_until`."""
    until = Assignment._meta.get_field("reserved_until").get_db_prep_save(
        reserved_until, connection
    )
    rows = [(participant_id, trial, i, first, until, answerable_ms)
            for i, (trial, first) in enumerate(trials)]  # fmt: skip
    with hot_cursor() as cursor:
        for start in range(0, len(rows), SLOT_BATCH):
            batch = rows[start : start + SLOT_BATCH]
            cursor.execute(_slots_sql(connection.vendor, len(batch)), [v for r in batch for v in r])


@dataclass
class ClientLog:
    response_ms: int | None
    plays: dict  # position ("r", "A", "B") -> count
    heard: dict  # position -> fraction 0..1
    blur_events: int
    audio_sample_rate: int | None
    raw: dict


@dataclass(frozen=True)
class StoredAnswer:
    """What the view needs to know after an answer was stored."""

    participant_id: int
    trial_id: int
    is_practice: bool  # a practice trial: feedback is shown next
    is_last: bool  # no unanswered slot after it: the participant may be done


# Stores the answer to slot `index` only if the participant (by token) is at `step`, that slot
# is its current one (no unanswered slot before it) and its page has been open long enough to
# play its clips (`answerable_ms`; NULL, never shown, stores nothing); a second answer to the
# same trial meets the unique (participant, trial) constraint and is dropped (ON CONFLICT DO
# NOTHING). The canonical
# choice, plays and fraction heard are mapped from displayed positions with the slot's
# `displayed_first`. Parameters are CAST where only the statement says their type (CASE).
#
# "Current" is checked on the slot just before (index - 1) and "last" on the slot just after, not
# on every slot before or after: slots are numbered 0..n-1 (design.assign) and this statement,
# the only writer of answers, stores one only when the slot before is answered, so the answered
# slots are always 0..k-1. Each answer then costs the same few index probes at slot 5 or 500
# (checking every earlier slot made an answer's cost grow with its position in the list).
#
# On PostgreSQL the participant's row is locked FOR SHARE while the answer is stored: a
# participant leaving at the same instant (`flow.withdraw`: step changed, answers and slots
# deleted, one transaction) holds it from its UPDATE of the step, so the answer waits for that
# to commit and is then checked against the new step, storing nothing; an answer that locked it
# first makes the leave's UPDATE wait for its commit, and is deleted by the leave. (SQLite runs
# one writer at a time.)
ANSWER_SQL = """
INSERT INTO {answers} ({columns})
SELECT s.participant_id, s.trial_id, s.{idx},
  CASE WHEN (%s = 'A') = (s.displayed_first = 'a') THEN 'a' ELSE 'b' END,
  %s, s.displayed_first, CAST(%s AS INTEGER), CAST(%s AS INTEGER),
  CASE WHEN s.displayed_first = 'a' THEN CAST(%s AS INTEGER) ELSE CAST(%s AS INTEGER) END,
  CASE WHEN s.displayed_first = 'a' THEN CAST(%s AS INTEGER) ELSE CAST(%s AS INTEGER) END,
  CAST(%s AS DOUBLE PRECISION),
  CASE WHEN s.displayed_first = 'a' THEN CAST(%s AS DOUBLE PRECISION)
       ELSE CAST(%s AS DOUBLE PRECISION) END,
  CASE WHEN s.displayed_first = 'a' THEN CAST(%s AS DOUBLE PRECISION)
       ELSE CAST(%s AS DOUBLE PRECISION) END,
  CAST(%s AS INTEGER), CAST(%s AS INTEGER), %s, s.shown_at, %s
FROM {slots} s JOIN {participants} p ON p.id = s.participant_id
WHERE p.token = %s AND p.step = %s AND s.{idx} = %s AND s.answerable_ms <= %s
  AND NOT EXISTS (SELECT 1 FROM {slots} e WHERE e.participant_id = s.participant_id
                  AND e.{idx} = s.{idx} - 1 AND {e_unanswered}){lock}
ON CONFLICT DO NOTHING
RETURNING participant_id, trial_id,
  (SELECT t.is_practice FROM {trials} t WHERE t.id = {answers}.trial_id),
  NOT EXISTS (SELECT 1 FROM {slots} l WHERE l.participant_id = {answers}.participant_id
              AND l.{idx} = {answers}.trial_index + 1)
"""
ANSWER_COLUMNS = ("participant", "trial", "trial_index", "chosen", "chosen_position",
                  "displayed_first", "response_ms", "plays_reference", "plays_a", "plays_b",
                  "heard_reference", "heard_a", "heard_b", "blur_events", "audio_sample_rate",
                  "client", "shown_at", "created_at")  # fmt: skip


@functools.cache
def _answer_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    tables = {"slots": qn(Assignment._meta.db_table), "trials": qn(Trial._meta.db_table),
              "answers": qn(Answer._meta.db_table),
              "participants": qn(Participant._meta.db_table)}  # fmt: skip
    columns = ", ".join(qn(Answer._meta.get_field(name).column) for name in ANSWER_COLUMNS)
    return ANSWER_SQL.format(
        columns=columns, idx=qn("index"), e_unanswered=UNANSWERED_SQL.format(s="e", **tables),
        lock="\nFOR SHARE OF p" if vendor == "postgresql" else "", **tables,
    )  # fmt: skip


def store_answer(
    token: str, step: str, index: int, position: str, client: ClientLog, now=None
) -> StoredAnswer | None:
    """Store the answer to slot `index` of the participant with this token, in one statement;
    None (and nothing written) unless the participant is at `step` and that slot is its
    current one, with no answer yet (a replayed, stale or forged POST), and its page has been
    open long enough to play its clips (`answerable_ms`; an early answer)."""
    now = now or timezone.now()
    plays, heard = client.plays, client.heard
    params = [
        position, position, client.response_ms, int(plays.get("r", 0)),
        int(plays.get("A", 0)), int(plays.get("B", 0)), int(plays.get("B", 0)),
        int(plays.get("A", 0)), heard.get("r"), heard.get("A"), heard.get("B"), heard.get("B"),
        heard.get("A"), client.blur_events, client.audio_sample_rate,
        Answer._meta.get_field("client").get_db_prep_save(client.raw, connection),
        Answer._meta.get_field("created_at").get_db_prep_save(now, connection),
        token, step, index, epoch_ms(now),
    ]  # fmt: skip
    with hot_cursor() as cursor:
        cursor.execute(_answer_sql(connection.vendor), params)
        row = cursor.fetchone()
    if row is None:
        return None
    stored = StoredAnswer(row[0], row[1], bool(row[2]), bool(row[3]))
    log.info(
        "answer participant=%s trial=%s index=%s position=%s rt_ms=%s plays=%s",
        stored.participant_id, stored.trial_id, index, position, client.response_ms, plays,
    )  # fmt: skip
    return stored
