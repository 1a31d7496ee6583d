"""A worker's prefork child lets go of the database connection it inherits from the parent
without ending the parent's session: a child that closed it the usual way sent PostgreSQL's
Terminate over the socket it shares with the parent, and the parent's next query (a task's
on_failure after a hard time limit, which Celery runs in the parent) failed."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def _backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 1


def test_a_forked_child_leaves_the_parents_database_session_alive(broker, worker_factory, tmp_path):
    parent_file, child_file = tmp_path / "parent_backend", tmp_path / "child_backend"
    worker = worker_factory(
        app="tests.integration.parent_db_app",
        CSN_TEST_PARENT_BACKEND_FILE=parent_file,
        CSN_TEST_CHILD_BACKEND_FILE=child_file,
    ).start()
    wait_for(parent_file.exists, 60, worker, "the parent's connection")
    wait_for(lambda: child_file.exists() and child_file.read_text(), 60, worker, "the child")
    parent_backend, child_backend = int(parent_file.read_text()), int(child_file.read_text())
    assert child_backend != parent_backend, "the child queried over the parent's connection"
    # A backend whose client sent Terminate is gone from pg_stat_activity within moments.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert _backend_alive(parent_backend), (
            "the child's start-up ended the parent's database session\n" + worker.tail()
        )
        time.sleep(0.2)
    assert worker.proc.poll() is None, worker.tail()
