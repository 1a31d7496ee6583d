"""Race tests: wait until another thread's transaction is blocked on a row or table lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import connection

WAITING = (
    "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND datname = current_database()"
)  # not another test database's waits


def until_blocked(
    thread: threading.Thread, timeout_s: float, done: Callable[[], bool] = lambda: False
) -> bool:
    """Poll PostgreSQL until a session of this test's database waits for a lock (True), or the
    thread ends, `done()` holds or `timeout_s` passes (False). The statistics are cleared before
    each read: inside a transaction PostgreSQL keeps returning the first snapshot it read, so
    without it a wait that starts after the first poll is never seen and the loop runs out."""
    deadline = time.monotonic() + timeout_s
    while thread.is_alive() and not done() and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(WAITING)
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.01)
    return False
