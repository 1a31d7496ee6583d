"""The hand-written SQL statements participant requests write with: a slot's first view
(`mark_shown`, a trial page), an entry's trial list (`insert_slots`) and an answer stored in one
statement (`store_answer`, an answer POST). Separate from the reads (`participant_sql`, whose
`hot_cursor` these run on) because each is a statement of its own, with its own reasons; built
the same way: once per process from the models' table and column names (standard SQL), prepared
once per connection on PostgreSQL.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from evalsite.stimuli.models import Clip
from evalsite.studies.models import Answer, Assignment, Participant, Trial
from evalsite.studies.participant_sql import UNANSWERED_SQL, column, hot_cursor
from evalsite.studies.served_audio import padding_s

log = logging.getLogger("evalsite.studies.participant")


# A slot's first view: `shown_at`, and the earliest time an answer is stored (`answerable_ms`):
# the view plus `share` of the time its three renditions take to play, summed by the same
# statement: the clips' durations (a missing one counts 0) plus the silence the slot's renditions
# add to them (`served_audio.padding_s`, up to 6 x 30 ms; a parameter, drawn in Python from the
# keyed seed as the audio view draws it). Standard SQL; the subquery reads the updated row's
# trial. A slot shown without an `answerable_ms` (by code from before the check, between a
# migration and a restart) gets one from its next view, keeping its first view's `shown_at`: it
# is never left unanswerable.
SHOWN_SQL = """
UPDATE {slots} SET {shown} = COALESCE({shown}, %s), answerable_ms = %s + (
  SELECT CAST(%s * 1000 * (COALESCE(r.duration_s, 0) + COALESCE(a.duration_s, 0)
                           + COALESCE(b.duration_s, 0) + %s) AS BIGINT)
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
        clips=qn(Clip._meta.db_table), shown=qn(column(Assignment, "shown_at")),
        pk=qn(Assignment._meta.pk.column),
    )  # fmt: skip


def epoch_ms(when) -> int:
    """Milliseconds since the Unix epoch (`answerable_ms` is compared in these)."""
    return int(when.timestamp() * 1000)


def _padding_s(slot: Assignment, key: str) -> float:
    """The silence the slot's three renditions add to its clips (`served_audio`): the parts'
    clips as the audio view picks them (A: the candidate `displayed_first`), at the sample rates
    the position query read with the slot (`Assignment.clip_rates`)."""
    if slot.clip_rates is None:
        raise ValueError(f"{slot}: no clip_rates; expected the slot as participant_sql reads it")
    r, a, b = slot.clip_rates
    shown = (a, b) if slot.displayed_first == "a" else (b, a)
    return padding_s(key, slot.pk, {"r": r, "A": shown[0], "B": shown[1]})


def mark_shown(slot: Assignment, now, min_listen_share: float, key: str) -> None:
    """Stamp the slot's first view (`shown_at`, and `answerable_ms` from the study's
    `min_listen_share` now: a share changed since the slot was assigned applies; a later view
    keeps both), for the participant whose renditions are drawn under `key`
    (`served_audio.participant_key`). Every trial page after an answer runs it: as
    the ORM's `update()` it cost 0.61-0.79 ms of CPU in-process, most of it building the query;
    0.14-0.20 ms as this prepared statement. The padding needs the clips' sample rates, which the
    position query reads with the slot: a trial page stays two queries, and the answer's
    statement is unchanged."""
    share = float(min_listen_share)
    padding = _padding_s(slot, key) if share > 0 else 0.0
    value = Assignment._meta.get_field("shown_at").get_db_prep_save(now, connection)
    params = [value, epoch_ms(now), share, padding, slot.pk]
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
    columns = ", ".join(qn(column(Assignment, name)) for name in SLOT_COLUMNS)
    values = ", ".join(["(" + ", ".join(["%s"] * len(SLOT_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO {qn(Assignment._meta.db_table)} ({columns}) VALUES {values}"


def insert_slots(
    participant_id: int,
    trials: list[tuple[int, str]],
    reserved_until,
    answerable_ms: int | None,
    first: int = 0,
) -> None:
    """Store a participant's trial list: slot first + i for the i-th (trial id, canonical
    candidate shown in A) of `trials`, each reserved until `reserved_until` (`first`: the slots it
    holds already, where a return refills its list, `design_refill`)."""
    until = Assignment._meta.get_field("reserved_until").get_db_prep_save(
        reserved_until, connection
    )
    rows = [(participant_id, trial, i, shown, until, answerable_ms)
            for i, (trial, shown) in enumerate(trials, start=first)]  # fmt: skip
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
# is the one the page showed (its id: after a return's renumbering, `design_return`, a number
# can name another trial's slot, which a page left open in another tab would otherwise answer
# with a choice made hearing its own trial), that slot is its current one (no unanswered slot
# before it) and its page has been open long enough to play its clips (`answerable_ms`; NULL,
# never shown, stores nothing); a second answer to the
# same trial meets the unique (participant, trial) constraint and is dropped (ON CONFLICT DO
# NOTHING). Nor is it stored while the slot's reservation has lapsed (the participant was away
# past the timeout and its trial may have gone to others): `participant_steps.post_answer` has
# the list checked again (`design_return`) and tries once more. The canonical
# choice, plays and fraction heard are mapped from displayed positions with the slot's
# `displayed_first`. Parameters are CAST where only the statement says their type (CASE).
#
# "Current" is checked on the slot just before (index - 1) and "last" on the slot just after, not
# on every slot before or after: slots are numbered 0..n-1 (design.assign) and this statement,
# the only writer of answers, stores one only when the slot before is answered, so the answered
# slots are always 0..k-1. Each answer then costs the same few index probes at slot 5 or 500
# (checking every earlier slot made an answer's cost grow with its position in the list).
#
# On PostgreSQL the participant's row and then the slot's are locked FOR SHARE while the answer
# is stored (PostgreSQL locks them in the order the FOR clause names them). A participant
# leaving at the same instant (`flow_withdraw.withdraw`: step changed, answers and slots deleted,
# one transaction) holds p's row from its UPDATE of the step, so the answer waits for that to commit
# and is then checked against the new step, storing nothing; an answer that locked it first
# makes the leave's UPDATE wait for its commit, and is deleted by the leave. A return's recheck
# (`design_return`) holds p's row FOR UPDATE without changing it while it deletes, renumbers and
# re-reserves slots: READ COMMITTED re-reads after such a wait only the rows it locks, so
# without the slot's lock the answer went on with the slot as it was before the recheck (one
# taken out, or with a number now another slot's) and stored an answer over the trial's target.
# Locked, the slot is read as the recheck left it: deleted or renumbered, nothing is stored.
# Both locks are taken p first, as the withdrawal and the recheck take them (p, then slots): the
# other order deadlocks with a withdrawal. The cost: one more row lock per answer (the slot's
# tuple header written). (SQLite runs one writer at a time.)
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
WHERE p.token = %s AND p.step = %s AND s.{idx} = %s AND s.{pk} = %s AND s.answerable_ms <= %s
  AND s.reserved_until > %s
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
    columns = ", ".join(qn(column(Answer, name)) for name in ANSWER_COLUMNS)
    return ANSWER_SQL.format(
        columns=columns, idx=qn("index"), pk=qn(Assignment._meta.pk.column),
        e_unanswered=UNANSWERED_SQL.format(s="e", **tables),
        lock="\nFOR SHARE OF p, s" if vendor == "postgresql" else "", **tables,
    )  # fmt: skip


def store_answer(
    token: str, step: str, index: int, slot_id: int, position: str, client: ClientLog, now=None
) -> StoredAnswer | None:
    """Store the answer to slot `index` (with id `slot_id`) of the participant with this token,
    in one statement; None (and nothing written) unless the participant is at `step` and that
    slot, with that id, is its current one, with no answer yet (a replayed, stale or forged
    POST), still reserved (not lapsed), and its page has been open long enough to play its
    clips (`answerable_ms`; an early answer)."""
    now = now or timezone.now()
    plays, heard = client.plays, client.heard
    params = [
        position, position, client.response_ms, int(plays.get("r", 0)),
        int(plays.get("A", 0)), int(plays.get("B", 0)), int(plays.get("B", 0)),
        int(plays.get("A", 0)), heard.get("r"), heard.get("A"), heard.get("B"), heard.get("B"),
        heard.get("A"), client.blur_events, client.audio_sample_rate,
        Answer._meta.get_field("client").get_db_prep_save(client.raw, connection),
        Answer._meta.get_field("created_at").get_db_prep_save(now, connection),
        token, step, index, slot_id, epoch_ms(now),
        Assignment._meta.get_field("reserved_until").get_db_prep_save(now, connection),
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
