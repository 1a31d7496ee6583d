"""What the load benchmark reads per timed phase to judge an outlier: PostgreSQL's checkpoints and
WAL syncs in the phase, and whether its slowest requests came together in time."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from evalsite.studies import loadtest
from evalsite.studies.loadtest import LoadConfig, run
from evalsite.studies.loadtest_outliers import (
    clustered,
    db_snapshot,
    db_used,
    server_version,
    slow_cluster,
)
from evalsite.studies.loadtest_report import format_report

FAST, SLOW = 0.010, 0.300  # seconds


def _steady(n: int = 1000, seconds: float = 10.0, start: float = 0.0) -> list[tuple[float, float]]:
    """`n` fast requests (no two alike, as measured ones), their ends evenly over `seconds` from
    `start`: (end, latency)."""
    return [(start + seconds * i / n, FAST + 1e-6 * i) for i in range(n)]


def test_it_finds_the_slowest_requests_ended_together_in_a_stall():
    # 20 requests held 300 ms, released within 0.4 s at 6 s: the 20 slowest of 1,020 (the p99
    # of 1,020 falls between the 1,009th and 1,010th: both 300 ms)
    stall = [(6.0 + 0.02 * j, SLOW) for j in range(20)]
    slow = slow_cluster(_steady() + stall, [(0.0, 10.0)])
    assert slow == {"requests": 1020, "p99_ms": pytest.approx(300.0), "slow": 20,
                    "densest_share": 1.0, "densest_at_s": pytest.approx(6.0),
                    "worst_ms": pytest.approx(300.0), "worst_at_s": pytest.approx(6.0)}  # fmt: skip
    assert clustered(slow) is True


def test_it_finds_the_slowest_requests_spread_over_the_phase():
    # one every 0.5 s: at most 2 end within any 1 s (a second is [t, t + 1))
    spread = [(0.25 + 0.5 * j, SLOW) for j in range(20)]
    slow = slow_cluster(_steady() + spread, [(0.0, 10.0)])
    assert (slow["slow"], slow["densest_share"]) == (20, pytest.approx(0.10))
    assert slow["densest_at_s"] == pytest.approx(0.25)
    assert clustered(slow) is False


def test_it_reads_a_phase_of_several_windows_in_the_phases_own_time():
    # the reference phase runs twice, 90 s apart: a stall 1 s into the second window is 6 s into
    # the phase; a slow request between the windows (another phase's) is not the phase's
    windows = [(100.0, 105.0), (195.0, 200.0)]
    rows = _steady(500, 5.0, 100.0) + _steady(500, 5.0, 195.0) + [(150.0, 5.0)]
    rows += [(196.0 + 0.01 * j, SLOW) for j in range(15)]
    slow = slow_cluster(rows, windows)
    assert (slow["requests"], slow["slow"], slow["densest_share"]) == (1015, 15, 1.0)
    assert slow["densest_at_s"] == pytest.approx(6.0)
    assert slow["worst_ms"] == pytest.approx(300.0)  # not the 5 s outside the windows


def test_it_does_not_call_a_handful_of_slow_requests_clustered_or_spread():
    slow = slow_cluster(_steady(100) + [(5.0, SLOW)], [(0.0, 10.0)])
    assert slow["slow"] == 2 and clustered(slow) is None  # too few to tell
    empty = slow_cluster([(50.0, SLOW)], [(0.0, 10.0)])
    assert empty["requests"] == 0 and clustered(empty) is None


@pytest.mark.django_db(transaction=True)
def test_it_counts_a_checkpoint_between_two_readings():
    before = db_snapshot()
    _checkpoint()
    used = db_used(before, db_snapshot())
    assert used["checkpoints"] >= 1  # the cluster is shared: others may checkpoint too
    assert used["checkpoint_write_ms"] >= 0 and used["checkpoint_sync_ms"] >= 0
    if server_version() >= 140000:  # pg_stat_wal (PostgreSQL 14+), or pg_stat_io (18+)
        assert used["wal_syncs"] >= 0
    else:
        assert "wal_syncs" not in used


def _checkpoint() -> None:
    """CHECKPOINT, then wait until the checkpointer has reported it: it wakes the waiting
    backend before it publishes its counters."""
    before = db_snapshot()["checkpoints"]
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    for _ in range(200):  # bounded: 10 s
        if db_snapshot()["checkpoints"] > before:
            return
        time.sleep(0.05)


@pytest.mark.slow  # a whole load run with a forced checkpoint
@pytest.mark.integration  # ~11 s
@pytest.mark.django_db(transaction=True)
def test_it_reports_a_checkpoint_forced_during_the_paced_phase_in_that_phases_line(monkeypatch):
    real_phase = loadtest._phase
    forced = []

    def phase(cfg, name, *args):
        if name != "paced":
            return real_phase(cfg, name, *args)
        checkpoint = threading.Thread(target=_checkpoint_from_thread, args=(forced,))
        checkpoint.start()  # while the clients run the phase
        try:
            return real_phase(cfg, name, *args)
        finally:
            checkpoint.join()

    monkeypatch.setattr(loadtest, "_phase", phase)
    cfg = LoadConfig(participants=4, duration=2, reference_duration=1, trials=8, workers=2,
                     threads=2, client_processes=2, spares=1, think=0.3)  # fmt: skip
    result = run(cfg, out=lambda line: None)
    text = format_report(cfg, result)
    print(text)
    assert forced == [True]
    stats = result["phase_stats"]
    assert set(stats) == {"healthz", "answers", "write", "loop", "paced"}
    for name, phase_stats in stats.items():  # every phase's counters read, its requests timed
        assert phase_stats["checkpoints"] >= 0 and phase_stats["wal_syncs"] >= 0, name
        assert phase_stats["slow"]["requests"] > 0, name
    assert stats["paced"]["checkpoints"] >= 1
    (paced_line,) = [line for line in text.splitlines() if line.startswith("paced     check")]
    assert "checkpoints 0" not in paced_line and "checkpoints not read" not in paced_line


def _checkpoint_from_thread(forced: list) -> None:
    try:
        _checkpoint()
        forced.append(True)
    finally:
        connection.close()  # this thread's own connection
