"""The evalsite Celery app, plus a worker parent that holds a live database connection when its
pool forks (as a parent does after running a task's on_failure for a hard time limit, before it
replaces the child it killed). Used by tests/integration/test_worker_start.py as `-A` of a real
worker; the files it writes are named by environment variables, so importing it does nothing
else."""

from __future__ import annotations

import os
from pathlib import Path

from celery.signals import worker_init, worker_process_init
from django.db import connection

from evalsite.celery import app

__all__ = ["app"]


@worker_init.connect
def _hold_a_connection(**_kwargs) -> None:
    # Connected after Celery's Django fixup (made with the app), so it runs after the fixup
    # closed the parent's connections at worker_init: this one stays open through the fork.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        Path(os.environ["CSN_TEST_PARENT_BACKEND_FILE"]).write_text(str(cursor.fetchone()[0]))


@worker_process_init.connect
def _child_started(**_kwargs) -> None:
    # Connected after evalsite.celery._fresh_child, so it runs right after it, in the child (and
    # before Celery's fixup): the backend this query reaches is the child's own only if
    # _fresh_child let go of the parent's connection.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        Path(os.environ["CSN_TEST_CHILD_BACKEND_FILE"]).write_text(str(cursor.fetchone()[0]))
