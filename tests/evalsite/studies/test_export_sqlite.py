"""An export on the embedded default database (SQLite in CSN_HOME, the settings' own options)
while a participant answers: the answer is stored without waiting for the export, and the
export does not see it (its snapshot is of the moment it first read).

In a process of its own: the suite's database is PostgreSQL, and these are SQLite's locks on
a real file (WAL), read and written by two threads, each with its own connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import io, json, threading
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)

import pandas as pd
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment

from evalsite.studies import export
from evalsite.studies.db_snapshot import read_snapshot
from evalsite.studies.models import Answer
from tests.evalsite.studies.conftest import enter, make_catalogue, make_study
from tests.evalsite.studies.participant_steps import answer_current, post, to_step

setup_test_environment()  # the test client's host, as under pytest
erin = User.objects.create_user("erin", "erin@example.org", "listen-42-carefully")
study = make_study(erin, make_catalogue(erin), practice_trials=0, screening=False,
                   min_listen_share=0)
client = Client()
p = enter(client, study, pid="sqlite1")
to_step(client, p, "instructions")
post(client, p, "instructions")
p.refresh_from_db()  # at its first trial
answer_current(client, p)  # one answer stored before the export
said = {"engine": connection.vendor, "journal": connection.cursor().execute(
    "PRAGMA journal_mode").fetchone()[0]}

def answering():  # the participant's next answer, over the real trial page, in its own thread
    try:
        _, response = answer_current(client, p)
        said["answer_status"] = response.status_code
    except Exception as exc:  # e.g. OperationalError: database is locked (after the busy timeout)
        said["answer_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()

with read_snapshot():
    said["before"] = Answer.objects.filter(participant__study=study).count()  # the first read
    writer = threading.Thread(target=answering)
    writer.start()
    writer.join()  # the export waits for the answer: had the answer to wait for the export too,
    # it could only fail
    csv = export.export_file(study, "answers.csv")
    said["exported"] = len(pd.read_csv(io.BytesIO(csv)))
said["after"] = Answer.objects.filter(participant__study=study).count()
print(json.dumps(said))
"""


@pytest.mark.integration  # a Django process of its own on a SQLite file, ~10 s
@pytest.mark.timeout(300)
def test_it_stores_an_answer_during_an_export_on_sqlite_which_the_export_does_not_see(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env |= {"CSN_HOME": str(tmp_path / "home"), "DJANGO_SETTINGS_MODULE": "evalsite.settings"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert (said["engine"], said["journal"]) == ("sqlite", "wal"), said
    assert said.get("answer_status") == 302, said  # stored while the export read
    assert said["before"] == 1 and said["after"] == 2, said
    assert said["exported"] == said["before"], said  # the export's snapshot: before the answer
