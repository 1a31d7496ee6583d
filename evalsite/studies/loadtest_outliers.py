"""What the load benchmark reads per timed phase so that a reader can judge an outlier (a paced
p99 far above the other runs') from the same run: PostgreSQL's checkpoints and WAL fsyncs during
the phase (`db_snapshot` around it, `db_used`), and when the phase's slowest requests ended
(`slow_cluster`): all together, as after one stall, or spread over the phase, as when everything
is slower.

PostgreSQL's counters are the server's (every database on it, other users' included), read
from its statistics views by version: pg_stat_bgwriter, or pg_stat_checkpointer from 17;
pg_stat_wal from 14, or pg_stat_io's WAL rows from 18. A checkpoint's count is published soon
after it begins (a spread one's while it writes; an immediate one's as it ends) and its write
and sync time as it ends, so a phase whose counts are 0 but whose times are not saw the end of
a checkpoint begun before it. Backends publish their WAL counters at most once a second, so a
phase's WAL figures may be off by about a second's worth at its edges.
"""

from __future__ import annotations

import bisect

import numpy as np
from django.db import connection

# The span one stall is read in: the slow requests of a stall all end as it ends. A paced phase
# (30 s by default) whose slowness is spread puts about one thirtieth of them in any second.
CLUSTER_SPAN_S = 1.0
# "Clustered": at least half the slow requests ended within one CLUSTER_SPAN_S (the project's
# choice; 24 slow requests ending at random over a 30 s phase put 4 in their densest second in
# half of 10,000 simulated phases, and never more than 7: 29 %).
CLUSTERED_SHARE = 0.5
# Below this many slow requests (a phase of under 500 requests) a share says nothing.
MIN_SLOW = 5


def db_snapshot() -> dict[str, float]:
    """PostgreSQL's counters now (keys of those this server has): `checkpoints` (timed +
    requested), `checkpoint_write_ms`, `checkpoint_sync_ms`, `wal_syncs`, and `wal_sync_ms` where
    its timing is on (track_wal_io_timing)."""
    version = server_version()
    if version >= 170000:
        checkpoints = ("SELECT num_timed + num_requested, write_time, sync_time "
                       "FROM pg_stat_checkpointer")  # fmt: skip
    else:
        checkpoints = ("SELECT checkpoints_timed + checkpoints_req, checkpoint_write_time, "
                       "checkpoint_sync_time FROM pg_stat_bgwriter")  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(checkpoints)
        n, write_ms, sync_ms = cursor.fetchone()
        snapshot = {
            "checkpoints": n,
            "checkpoint_write_ms": write_ms,
            "checkpoint_sync_ms": sync_ms,
        }
        wal = _wal_query(version)
        if wal:
            cursor.execute(wal)
            syncs, sync_ms = cursor.fetchone()
            snapshot["wal_syncs"] = syncs or 0
            if _wal_timing(cursor):
                snapshot["wal_sync_ms"] = sync_ms or 0.0
    return {key: float(value) for key, value in snapshot.items()}


def server_version() -> int:
    """PostgreSQL's version number (150020 for 15.20)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0])


def _wal_query(version: int) -> str | None:
    if version >= 180000:  # pg_stat_wal lost its sync columns to pg_stat_io
        return "SELECT sum(fsyncs), sum(fsync_time) FROM pg_stat_io WHERE object = 'wal'"
    if version >= 140000:
        return "SELECT wal_sync, wal_sync_time FROM pg_stat_wal"
    return None


def _wal_timing(cursor) -> bool:
    cursor.execute("SHOW track_wal_io_timing")
    return cursor.fetchone()[0] == "on"


def db_not_read() -> list[str]:
    """What `db_snapshot` cannot read on this server, and why (none: everything)."""
    version = server_version()
    if version < 140000:
        return [f"WAL syncs (PostgreSQL {version // 10000} has no pg_stat_wal; 14 or later)"]
    with connection.cursor() as cursor:
        if not _wal_timing(cursor):
            return ["WAL sync time (track_wal_io_timing is off)"]
    return []


def db_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The counters' growth between two snapshots (the keys both have)."""
    return {key: after[key] - before[key] for key in after if key in before}


def slow_cluster(rows, windows, span: float = CLUSTER_SPAN_S) -> dict:
    """When a phase's slowest requests ended. `rows`: (monotonic end, latency s) of its requests
    of every kind; `windows`: its (start, end) windows (a request counts when it ended in one).
    The requests at or above the p99 of them all are the slow ones; `densest_share` is the
    largest share of them that ended within `span` seconds ([t, t + span)), `densest_at_s` where
    that span begins and `worst_at_s` where the slowest request ended, in seconds of the phase
    (its windows end to end)."""
    inside = [(end, s) for end, s in rows if any(a <= end <= b for a, b in windows)]
    if not inside:
        nan = float("nan")
        return {"requests": 0, "p99_ms": nan, "slow": 0, "densest_share": nan,
                "densest_at_s": nan, "worst_ms": nan, "worst_at_s": nan}  # fmt: skip
    p99 = float(np.percentile([s for _, s in inside], 99))
    ends = sorted(end for end, s in inside if s >= p99)
    # for each slow request, how many ended in the span that begins with it
    counts = [bisect.bisect_left(ends, end + span) - i for i, end in enumerate(ends)]
    densest = int(np.argmax(counts))
    worst_end, worst = max(inside, key=lambda row: row[1])
    return {"requests": len(inside), "p99_ms": 1000 * p99, "slow": len(ends),
            "densest_share": counts[densest] / len(ends),
            "densest_at_s": _phase_time(ends[densest], windows), "worst_ms": 1000 * worst,
            "worst_at_s": _phase_time(worst_end, windows)}  # fmt: skip


def _phase_time(t: float, windows) -> float:
    """Seconds from the phase's start to monotonic time `t`, its windows laid end to end."""
    before = 0.0
    for a, b in sorted(windows):
        if t <= b:
            return before + max(t - a, 0.0)
        before += b - a
    return before


def clustered(slow: dict) -> bool | None:
    """Whether the slow requests of `slow_cluster` ended together (None: too few to tell)."""
    if slow["slow"] < MIN_SLOW:
        return None
    return slow["densest_share"] >= CLUSTERED_SHARE
