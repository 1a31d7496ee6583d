"""The browser tests drive the site as it runs in production: on PostgreSQL (the issue asks for
it; SQLite would hide locking and constraint behaviour)."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def _on_postgresql():
    if connection.vendor != "postgresql":
        pytest.fail(
            f"browser tests run the site on PostgreSQL, not {connection.vendor}: set "
            "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/csn_eval (`make test` does)"
        )
