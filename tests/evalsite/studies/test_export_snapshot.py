"""Export downloads taken while participants answer: each file, and every file of one zip, is read
from one snapshot of the database, so the files of one download agree with each other."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import pandas as pd
import pytest
from django.db import connection
from django.test import Client

from evalsite.studies import export
from evalsite.studies.db_snapshot import read_snapshot
from evalsite.studies.models import Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.participant_steps import finish, post, to_step


def _answering_in_a_thread(study: Study, walkers: int) -> tuple[threading.Thread, threading.Event]:
    """`walkers` participants at their first trial, then a thread that walks each through every
    remaining trial over the real participant pages; the event is set when it is done."""
    study.status = Study.Status.OPEN
    study.settings = study.settings | {
        "screening": False,
        "min_listen_share": 0,
        "target_answers_per_trial": 50,
    }
    study.save()
    ready = []
    for i in range(walkers):
        client = Client()
        p = enter(client, study, pid=f"walker{i}")
        to_step(client, p, "instructions")
        post(client, p, "instructions")
        ready.append((client, p))
    done = threading.Event()

    def answering():
        try:
            for client, p in ready:
                finish(client, p)
        finally:
            done.set()
            connection.close()

    return threading.Thread(target=answering), done


def _answered_pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["participant"].astype(int), frame["trial"].astype(int)))


def _check_participants(parts: pd.DataFrame, answers: pd.DataFrame | None = None) -> None:
    """A finished participant has answered every slot; nobody has more answers than slots."""
    answered = parts["answers"] + parts["practice_answers"]
    assert (answered <= parts["slots"]).all(), parts[["participant", "slots", "answers"]]
    done = parts[parts["status"] == "done"]
    assert (done["answers"] + done["practice_answers"] == done["slots"]).all(), done
    if answers is not None:
        per = answers.groupby("participant").size()
        for row in done.itertuples():
            assert per.get(row.participant, 0) == row.slots, (row.participant, row.slots)


def _check_bundle(content: bytes, pk: int) -> int:
    """Assert that the files of one bundle.zip describe the same answers; their number."""
    z = zipfile.ZipFile(io.BytesIO(content))
    answers = pd.read_csv(z.open(f"study-{pk}/answers.csv"))
    records = json.loads(z.read(f"study-{pk}/answers.json"))
    parts = pd.read_csv(z.open(f"study-{pk}/participants.csv"))
    design = pd.read_csv(z.open(f"study-{pk}/design.csv"))
    config = json.loads(z.read(f"study-{pk}/config.json"))
    assert _answered_pairs(
        pd.DataFrame(records, columns=["participant", "trial"])
    ) == _answered_pairs(answers)
    assert int((parts["answers"] + parts["practice_answers"]).sum()) == len(answers)
    assert _answered_pairs(design[design["answered"]]) == _answered_pairs(answers)
    assert parts["slots"].sum() == len(design)
    assert config["trials"]["total"] == design["trial"].nunique() or len(design) == 0
    _check_participants(parts, answers)
    return len(answers)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_every_bundle_taken_while_participants_answer_is_one_snapshot(study):
    thread, done = _answering_in_a_thread(study, walkers=4)
    thread.start()
    seen = []
    try:
        while not done.is_set():
            seen.append(_check_bundle(export.export_zip(study), study.pk))
            parts = export.export_file(study, "participants.csv")
            _check_participants(pd.read_csv(io.BytesIO(parts)))
    finally:
        thread.join()
    # the bundles were taken while answers arrived, not all before or after
    assert len(set(seen)) >= 3, seen
    assert _check_bundle(export.export_zip(study), study.pk) == 4 * study.trials.count()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's isolation levels")
@pytest.mark.django_db(transaction=True)
def test_it_reads_in_one_read_only_repeatable_read_transaction(study):
    with read_snapshot(), connection.cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        assert cursor.fetchone() == ("repeatable read",)
        cursor.execute("SHOW transaction_read_only")
        assert cursor.fetchone() == ("on",)
    assert connection.get_autocommit()


def test_it_reads_inside_the_callers_transaction_when_there_is_one(answered_study):
    # pytest-django's test transaction: the isolation level is that transaction's to choose
    with read_snapshot():
        content = export.export_zip(answered_study)
    assert _check_bundle(content, answered_study.pk) == 19
