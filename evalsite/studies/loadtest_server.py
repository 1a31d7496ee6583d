"""The load benchmark's server (loadtest.py coordinates a run): gunicorn on loopback serving the
site and the bare-write reference, the table that reference fills, and the signal handling that
stops them when a run is killed.

gunicorn runs in a session of its own (`start_server`), with DEBUG off and persistent database
connections, on the database this process uses (`database_url`); `serving` makes the bare-write
table and starts the server, and stops the server and drops the table on the way out, on SIGTERM
or SIGHUP too (`exiting_on_signals`). Used by the saturated run (loadtest.py) and the cost mode
(loadtest_cost.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import DatabaseError, connection

from evalsite.studies.loadtest_client import LoadTestError
from evalsite.studies.models import Answer, Study

if TYPE_CHECKING:
    from dj_database_url import DBConfig

    from evalsite.studies.loadtest import LoadConfig


def database_url(db: DBConfig | None = None) -> str:
    """The URL of `db` (a DATABASES entry; default: the database this process uses, under
    pytest the test database), for the server's settings to read back."""
    db = db or settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    if host.startswith("/"):  # a Unix socket's directory: %2F-quoted in a URL
        host = quote(host, safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{'@' if auth else ''}{host}{port}/{quote(db['NAME'], safe='')}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONN_MAX_AGE_S = 60  # the server keeps its database connections this long (persistent)
KEEP_ALIVE_S = 30  # gunicorn closes a keep-alive connection idle this long (the clients: 20 s)


def start_server(cfg: LoadConfig, port: int, log_path: Path, write_table: str) -> subprocess.Popen:
    """gunicorn on loopback with DEBUG off and persistent DB connections, the site plus the
    bare-write reference (loadtest_settings.py) writing `write_table`; waits for /healthz."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url(), DEBUG="false", DB_CONN_MAX_AGE=str(CONN_MAX_AGE_S),
               LOG_LEVEL="WARNING", ALLOWED_HOSTS="127.0.0.1,localhost",
               DJANGO_SETTINGS_MODULE="evalsite.studies.loadtest_settings",
               CSN_LOADTEST_WRITE_TABLE=write_table)  # fmt: skip
    command = [
        sys.executable, "-m", "gunicorn", "evalsite.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(cfg.workers),
        "--worker-class", "gthread", "--threads", str(cfg.threads), "--backlog", "2048",
        "--timeout", "30", "--graceful-timeout", "5", "--keep-alive", str(KEEP_ALIVE_S),
        "--no-control-socket",  # several servers on one machine would share the default socket
    ]  # fmt: skip
    with open(log_path, "wb") as log:  # gunicorn writes to its own copy of the descriptor
        server = subprocess.Popen(
            command, env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_served(server, port, log_path)
    except BaseException:  # Ctrl-C too: gunicorn runs in its own session, no one else stops it
        stop_server(server)
        raise
    return server


def wait_until_served(
    server: subprocess.Popen, port: int, log_path: Path, error: type[Exception] = LoadTestError
) -> None:
    """Return once the server on `port` answers /healthz; `error` when it exits or stays silent
    for 60 s (the load test's servers and retrieval_bench --api's)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise error(f"gunicorn exited with {server.returncode}; see {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise error(f"gunicorn did not answer /healthz within 60 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)


def worker_pids(server: subprocess.Popen) -> list[int]:
    path = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def create_write_table(study: Study) -> str:
    """The table the bare-write reference fills: the answers' columns, defaults, checks and
    indexes (unique (participant, trial) included), without their foreign keys."""
    name = f"loadtest_bare_write_{study.pk}"
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {qn(name)} (LIKE {qn(Answer._meta.db_table)} INCLUDING ALL)")
    return name


def write_table_rows(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(name)}")
        return cursor.fetchone()[0]


def reconnect_if_unusable() -> None:
    """Close this process's database connection when it no longer answers, so that the next
    statement opens a fresh one. A signal in a query has psycopg cancel that query and wait 5 s
    for the server to end it; one that takes longer (on a loaded machine), or a second signal in
    that wait, has psycopg close the connection, and every later statement of the cleanup then
    failed on "the connection is closed": the run was killed and left its table and study."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def drop_write_table(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}")


@contextmanager
def serving(cfg: LoadConfig, study: Study, log_path: Path, out):
    """gunicorn (`start_server`) with the bare-write table made for this run: yields (server,
    base URL, table name); the server is stopped and the table dropped on the way out (kept
    with --keep neither: it is no study's data), on a fresh connection where a signal in a query
    left this one closed (`reconnect_if_unusable`)."""
    port, server, write_table = free_port(), None, None
    try:
        write_table = create_write_table(study)
        server = start_server(cfg, port, log_path, write_table)
        yield server, f"http://127.0.0.1:{port}", write_table
    finally:
        if server is not None:
            stop_server(server)
        try:
            reconnect_if_unusable()
            if write_table is not None:
                drop_write_table(write_table)
        except DatabaseError as exc:
            out(f"could not drop table {write_table} ({exc}); drop it by hand")


def _exit_on_signal(signum, _frame) -> None:
    """SIGTERM (kill, `timeout`) and SIGHUP (a closed terminal) end a run as Ctrl-C does (the
    demo's way, evalsite/demo.py): through the `finally`s, which stop gunicorn (in a session of
    its own: no signal to this process's group reaches it) and the clients, and delete the study
    and the bare-write table."""
    raise SystemExit(128 + signum)


@contextmanager
def exiting_on_signals():
    """`_exit_on_signal` for SIGTERM and SIGHUP while the block (or decorated function) runs,
    the previous handlers back afterwards (only the main thread may set them: from another,
    nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
