"""Reading several tables as of one moment, for downloads that must agree with themselves.

Outside a transaction every query sees the database as of its own start (PostgreSQL's READ
COMMITTED, Django's autocommit), so files built by several queries while participants answer
disagree: answers.csv with participants.csv, design.csv with answers.csv. `read_snapshot()`
runs its block in one transaction that sees one snapshot throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def read_snapshot() -> Iterator[None]:
    """Run the block in one read-only transaction: on PostgreSQL at REPEATABLE READ (every query
    sees the database as of the first one; writers are neither blocked nor blocking); on SQLite a
    transaction is a snapshot already (it takes the write lock: `transaction_mode` IMMEDIATE, so
    answers wait for the block, up to the database's busy timeout).

    Inside a caller's transaction the isolation level is already set (PostgreSQL refuses to change
    it after the first query), so the block reads in that transaction as it is."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield
