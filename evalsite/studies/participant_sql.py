"""The hand-written SQL every participant request reads by: the participant with its position
(a trial page), and the cursor every hand-written participant statement runs on (`hot_cursor`).

Trial pages and answers are most of the site's traffic: a trial page reads in one round trip
(then records the view, `flow_trials.touch`), an answer is one statement (`participant_writes`,
with the other writes of the hot path). The SQL is built once per process from the models' own
table and column names (standard SQL: the same text runs on PostgreSQL and SQLite) and, on
PostgreSQL, prepared once per connection. The ORM equivalents are what `flow_trials.current_slot`
and the tests compare these with.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from evalsite.stimuli.models import Clip
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial


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
# with one query, not two. The trial's clips' sample rates come with it (three primary-key
# probes): a first view draws its renditions' padding for them (`participant_writes.mark_shown`)
# without a query of its own.
POSITION_SQL = """
SELECT {head}{slot_cols}, {trial_cols},
  (SELECT COUNT(*) FROM {slots} m JOIN {trials} mt ON mt.id = m.trial_id
   WHERE m.participant_id = s.participant_id AND mt.is_practice = %s AND m.{idx} < s.{idx}),
  (SELECT COUNT(*) FROM {slots} m JOIN {trials} mt ON mt.id = m.trial_id
   WHERE m.participant_id = s.participant_id AND mt.is_practice = %s),
  EXISTS (SELECT 1 FROM {slots} l WHERE l.participant_id = s.participant_id
          AND l.{idx} > s.{idx} AND {l_unanswered}),
  (SELECT c.{rate} FROM {clips} c WHERE c.id = t.reference_id),
  (SELECT c.{rate} FROM {clips} c WHERE c.id = t.candidate_a_id),
  (SELECT c.{rate} FROM {clips} c WHERE c.id = t.candidate_b_id)
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


def column(model: type[models.Model], name: str) -> str:
    """The database column of one of the model's concrete fields."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise FieldDoesNotExist(f"{model.__name__}.{name}: expected a field with a column")
    return field.column


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
        clips=qn(Clip._meta.db_table), rate=qn(column(Clip, "sample_rate")),
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
    done, total, unanswered_after, *rates = rest
    slot.clip_rates = (rates[0], rates[1], rates[2])
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
