"""The embedded default: no Redis, no PostgreSQL. A real `celery -A evalsite worker` consumes
kombu's filesystem transport under CSN_HOME/broker and shares a SQLite file (WAL) with the
process that queued the work."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.evalsite.retrieval.helpers import write_checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~60 s: two Django processes
ROOT = Path(__file__).resolve().parents[2]

SEED = """
from django.contrib.auth.models import User
from tests.evalsite.retrieval.helpers import make_catalogue
from evalsite.stimuli.tasks import queue_ingest
catalogue = make_catalogue(User.objects.create_user("ada", "a@example.org", "pw-long-1"), 4)
print("job", queue_ingest(catalogue).pk)
"""
STATUS = """
from evalsite.jobs.models import Job
job = Job.objects.get()
print("status", job.status, job.done, job.total)
"""


def manage(env, *args, stdin=None) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_it_runs_a_real_worker_on_the_filesystem_broker_and_sqlite(tmp_path):
    home = tmp_path / "home"
    write_checkpoint(home / "runs" / "demo" / "final.pt")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env |= {"CSN_HOME": str(home), "DJANGO_SETTINGS_MODULE": "evalsite.settings",
            "CSN_CHECKPOINT": str(home / "runs" / "demo" / "final.pt"),
            "CSN_AUTO_EMBED": "0"}  # fmt: skip
    manage(env, "migrate", "-v0")
    assert "job" in manage(env, "shell", stdin=textwrap.dedent(SEED))
    assert any((home / "broker" / "queue").iterdir())  # the message waits in a file
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "evalsite", "worker", "-c", "1", "-l", "info",
         "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline, status = time.monotonic() + 150, ""
        while time.monotonic() < deadline:
            status = manage(env, "shell", stdin=STATUS)
            if "status done" in status:
                break
            time.sleep(2)
        assert "status done 4 4" in status, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
