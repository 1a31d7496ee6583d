"""Real Redis, a real Celery worker process, PostgreSQL.

Redis: 127.0.0.1:6379, database 5 (this suite's own; flushed at the start of each test).
PostgreSQL: the test database pytest-django made from DATABASE_URL; the worker subprocess
connects to that same database, so tests commit their data (transactional_db).
The worker is `celery -A evalsite worker -Q gpu,cpu -c 1` in its own process group, so a test
can kill -9 the whole worker (main process and prefork child) at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from evalsite.celery import app
from tests.evalsite.retrieval.helpers import write_checkpoint

REDIS_URL = os.environ.get("CSN_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
ROOT = Path(__file__).resolve().parents[2]


def _redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({exc})")
    return client


@pytest.fixture(scope="session")
def int_checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("int_ckpt") / "tiny.pt", seed=0)


@pytest.fixture
def broker(transactional_db, settings, tmp_path, int_checkpoint, monkeypatch):
    """Point this process's Celery app at Redis db 5, empty it, and share media/checkpoint."""
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("integration tests need DATABASE_URL=postgresql://... (a shared database)")
    client = _redis()
    client.flushdb()
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CSN_CHECKPOINT = str(int_checkpoint)
    settings.CSN_AUTO_EMBED = False
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    # Celery prefers the CELERY_BROKER_URL environment variable (set by `make test`) over
    # app.conf.broker_url, so the publisher would miss the worker's db without this.
    monkeypatch.setenv("CELERY_BROKER_URL", REDIS_URL)
    app.conf.broker_url = REDIS_URL
    app.conf.broker_transport_options = {"visibility_timeout": 4}
    app.conf.task_always_eager = False
    _reset_pools()
    yield client
    _reset_pools()
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved
    client.flushdb()


def _reset_pools() -> None:
    """Drop the app's broker connection pools so the next publish uses the current broker_url
    (not closed: kombu's registry may hand the same pool to the next test)."""
    app._pool = None
    app.amqp._producer_pool = None


class Worker:
    """A `celery -A evalsite worker` subprocess with the test's database, media and broker."""

    def __init__(self, tmp_path: Path, checkpoint: Path, app: str = "evalsite",
                 queues: str = "gpu,cpu", **env):  # fmt: skip
        self.app = app  # the -A module: evalsite, or a test module that wraps its app
        self.queues = queues  # -Q
        db = django_settings.DATABASES["default"]
        url = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "evalsite.settings",
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_VISIBILITY_TIMEOUT": "4",
            "CELERY_UNACKED_RESTORE_INTERVAL": "1",
            "CELERY_UNACKED_RESTORE_THROTTLE": "1",
            "CSN_HOME": str(tmp_path / "csn_home"),
            "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
            "CSN_CHECKPOINT": str(checkpoint),
            "CSN_AUTO_EMBED": "0",
            "CUDA_VISIBLE_DEVICES": "",
            **{k: str(v) for k, v in env.items()},
        }
        self.log = tmp_path / "worker.log"
        self.proc = None

    def start(self) -> Worker:
        cmd = [sys.executable, "-m", "celery", "-A", self.app, "worker", "-Q", self.queues,
               "-c", "1", "-P", "prefork", "-l", "info", "--without-gossip", "--without-mingle",
               "-n", f"test{time.monotonic_ns()}@%h"]  # fmt: skip
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


@pytest.fixture
def worker_factory(broker, tmp_path, int_checkpoint):
    made: list[Worker] = []

    def make(app: str = "evalsite", queues: str = "gpu,cpu", **env) -> Worker:
        w = Worker(tmp_path, int_checkpoint, app=app, queues=queues, **env)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def wait_for(check, timeout: float, worker: Worker | None = None, what: str = "condition"):
    """Poll check() until truthy; fail with the worker's log tail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    log = worker.tail() if worker else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\nworker log:\n{log}")
