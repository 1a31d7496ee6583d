"""Fixtures shared by the whole suite. App-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"  # screenshots and other files a person can look at after a run

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher():
    """MD5 instead of PBKDF2 for every test: a PBKDF2 hash or login costs about 0.35 s on a
    2-core machine (151 of them in the retrieval and login-throttle tests alone), and no test
    checks the strength of a hash. The live server runs in this process, so it hashes the same
    way; the demo and the load test run their own settings in their own processes."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete():
    """A transactional test (transaction=True, live server, worker processes) ends with Django's
    flush, which on PostgreSQL is one TRUNCATE of every table: it makes new files for each table
    and index, about 0.6 s per test on a loaded 2-core machine, 327 times a run. Here it deletes
    every row instead, in one transaction with the foreign keys (deferrable, as Django makes
    them) checked at its commit: every table is left empty, as before. A flush asked to restart
    the sequences or to cascade (none in this suite) still truncates."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if not tables or reset_sequences or allow_cascade:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        deletes = [f"{style.SQL_KEYWORD('DELETE FROM')} {self.quote_name(t)};" for t in tables]
        return ["SET CONSTRAINTS ALL DEFERRED;", *deletes]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = truncate


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CSN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"Chromium not found at {path}: run `make test` (installs Debian's chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One headless Chromium for the session (Playwright, Debian's binary, no download)."""
    # Playwright's sync API refuses to run inside a running asyncio loop; Django's async-unsafe
    # guard would then trip on ORM calls made from tests, so allow them explicitly.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small Slakh-layout dataset rendered by `csn synth` (12 tracks of 8 s at 22050 Hz).

    Splits: 6 train, 2 validation, 4 test tracks; most tracks have all five conditions. Renders
    in a few seconds, once per test session. Treat it as read-only: other tests share it.
    """
    from csn_model.data.synth import synthesize

    root = tmp_path_factory.mktemp("tiny_dataset")
    synthesize(
        root, 12, 3, seconds=8.0, workers=2, split_fractions=(0.5, 0.17, 0.33), progress=False
    )
    return root


@pytest.fixture
def damaged_dataset(tiny_dataset, tmp_path) -> Callable[..., Path]:
    """`damaged_dataset(track, root=None)`: `root` (by default a new copy of `tiny_dataset`) with
    the first stem (S00) of its test-split `track` cut in half: the header still reads, so the
    dataset loads, and decoding the stem fails (a DataError once the track is analysed, in the
    middle of an import)."""

    def damage(track: str, root: Path | None = None) -> Path:
        if root is None:
            root = Path(shutil.copytree(tiny_dataset, tmp_path / f"damaged-{track}"))
        stem = root / "test" / track / "stems" / "S00.flac"
        stem.write_bytes(stem.read_bytes()[: stem.stat().st_size // 2])
        return root

    return damage


BROKER_DOWN = "redis://127.0.0.1:1/0"  # port 1: connection refused at once


@contextmanager
def _publishing_to(monkeypatch, url: str, options: dict, retry_policy: dict | None = None):
    """This process's Celery app publishes for real (not eager) to `url` with the transport
    options (and publish retry policy) given, fresh pools before and after."""
    from evalsite.celery import app

    def reset_pools() -> None:  # the next publish connects to broker_url, not a pooled one
        app._pool = None
        app.amqp._producer_pool = None

    # Celery prefers the CELERY_BROKER_URL environment variable over app.conf.broker_url.
    saved_url = os.environ.get("CELERY_BROKER_URL")
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    names = ("broker_url", "broker_transport_options", "task_always_eager",
             "task_publish_retry_policy")  # fmt: skip
    saved = {name: app.conf[name] for name in names}
    app.conf.broker_url, app.conf.broker_transport_options = url, options
    app.conf.task_always_eager = False
    if retry_policy is not None:
        app.conf.task_publish_retry_policy = retry_policy
    reset_pools()
    try:
        yield
    finally:  # as before the block, which may end before the test does
        if saved_url is None:
            monkeypatch.delenv("CELERY_BROKER_URL")
        else:
            monkeypatch.setenv("CELERY_BROKER_URL", saved_url)
        reset_pools()
        for name, value in saved.items():
            app.conf[name] = value


@pytest.fixture
def broker_down(monkeypatch):
    """Real publishing (not eager) to a Redis URL nothing listens on, for tests of what a page
    or task says when the broker is down."""
    with _publishing_to(monkeypatch, BROKER_DOWN, {}):
        yield


class StalledBroker:
    """A TCP listener that accepts every connection and never answers: a Redis that hangs
    (overloaded, a partition after the handshake, a proxy whose backend is gone)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)  # held open, never read or answered

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the thread
        self.server.close()
        self.thread.join(timeout=5)
        for connection in self.connections:
            connection.close()


# The broker's timeouts the tests give the site (its defaults are seconds longer).
STALL_TIMEOUTS = {"CELERY_BROKER_SOCKET_TIMEOUT": "1", "CELERY_BROKER_CONNECT_TIMEOUT": "1"}


@pytest.fixture(scope="session")
def redis_publish_settings() -> dict:
    """The transport options and publish retry policy the settings give a Redis broker, read
    by a fresh process with the timeouts of STALL_TIMEOUTS (as a deployment would set them)."""
    show = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'options': s.CELERY_BROKER_TRANSPORT_OPTIONS, "
        "'retry_policy': getattr(s, 'CELERY_TASK_PUBLISH_RETRY_POLICY', None)}))"
    )
    env = os.environ | {"CELERY_BROKER_URL": BROKER_DOWN, **STALL_TIMEOUTS}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show], capture_output=True, text=True,
        cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture
def broker_stalled(monkeypatch, redis_publish_settings):
    """Real publishing, with the settings' Redis options, to a broker that accepts and never
    answers."""
    stalled = StalledBroker()
    try:
        with _publishing_to(
            monkeypatch, stalled.url, redis_publish_settings["options"],
            redis_publish_settings["retry_policy"],
        ):  # fmt: skip
            yield stalled
    finally:
        stalled.close()
