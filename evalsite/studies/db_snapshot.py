"""Reading several tables as of one moment, for downloads that must agree with themselves.

Outside a transaction every query sees the database as of its own start (PostgreSQL's READ
COMMITTED, Django's autocommit), so files built by several queries while participants answer
disagree: answers.csv with participants.csv, design.csv with answers.csv. `read_snapshot()`
runs its block in one transaction that sees one snapshot throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, cast

from django.db import connection, transaction


@contextmanager
def read_snapshot() -> Iterator[None]:
    """Run the block, which only reads, in one transaction that sees the database as of its
    first query, while participants go on answering: on PostgreSQL at REPEATABLE READ READ ONLY
    (writers are neither blocked nor blocking); on SQLite a deferred transaction
    (`_deferred_atomic`) in WAL mode (the settings' journal), a reader that holds no write lock.

    Inside a caller's transaction the isolation level is already set (PostgreSQL refuses to change
    it after the first query), so the block reads in that transaction as it is."""
    if connection.in_atomic_block:
        yield
        return
    if connection.vendor == "sqlite":
        with _deferred_atomic():
            yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


class _SQLiteConnection(Protocol):
    """What `_deferred_atomic` uses of Django's SQLite connection (`transaction_mode`, from the
    OPTIONS of the same name since Django 5.1, is not in django-stubs)."""

    transaction_mode: str | None

    def ensure_connection(self) -> None: ...


@contextmanager
def _deferred_atomic() -> Iterator[None]:
    """`transaction.atomic()` begun with BEGIN DEFERRED on SQLite, whatever the settings'
    `transaction_mode`. The site's is IMMEDIATE (settings.py), so that a writer takes the write
    lock as it begins and waits its turn under the busy timeout, rather than failing as it
    upgrades; in a read it held the write lock for the whole export: every answer meanwhile
    waited for it, and failed with "database is locked" after the 20 s busy timeout. A deferred
    transaction takes no lock until its first read, which in WAL mode fixes its snapshot:
    commits after it are not seen, and do not wait for it."""
    sqlite = cast(_SQLiteConnection, connection)
    sqlite.ensure_connection()  # the mode is read from the settings when it connects
    mode = sqlite.transaction_mode
    sqlite.transaction_mode = "DEFERRED"  # the BEGIN Django's SQLite backend sends
    try:
        with transaction.atomic():
            sqlite.transaction_mode = mode  # savepoints inside: no BEGIN of their own
            yield
    finally:
        sqlite.transaction_mode = mode
