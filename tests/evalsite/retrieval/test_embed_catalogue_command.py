"""`manage.py embed_catalogue NAME`: queues the embedding job the model-work page queues, for a
catalogue of no study (e.g. `import_slakh --catalogue NAME`) after CSN_CHECKPOINT changed.
Eager mode, as the other ingest-job tests here (test_tasks.py); tests/integration has the real
worker."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from evalsite.jobs.models import Job
from evalsite.retrieval.embedder import get_embedder, version_for
from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.query import QueryError, coverage
from evalsite.studies.loadtest_server import database_url
from tests.conftest import BROKER_DOWN, ROOT

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command("embed_catalogue", *args, stdout=out)
    return out.getvalue()


def test_it_embeds_a_catalogue_of_no_study_after_the_checkpoint_changed(
    catalogue, eager, settings, other_checkpoint, django_capture_on_commit_callbacks
):
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))  # the old checkpoint's
    settings.CSN_CHECKPOINT = str(other_checkpoint)
    version = version_for(get_embedder())
    with pytest.raises(QueryError) as refused:
        coverage(version, catalogue)
    assert f"manage.py embed_catalogue {catalogue.name}" in str(refused.value)
    with django_capture_on_commit_callbacks(execute=True):
        said = _run(catalogue.name)
    job = Job.objects.get()
    assert job.kind == Job.Kind.INGEST and job.catalogue == catalogue and job.study is None
    assert job.status == Job.Status.DONE and job.checkpoint_id == version.checkpoint_id
    assert f"queued embed clips job {job.pk}: 6 clips of catalogue {catalogue.name!r}" in said
    assert coverage(version, catalogue)[:2] == (6, 6)
    assert "nothing to queue" in _run(catalogue.name)  # idempotent: every clip has one
    assert Job.objects.count() == 1


def test_it_queues_nothing_while_a_job_for_the_same_checkpoint_is_unfinished(
    catalogue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # no worker has taken it
        first = _run(catalogue.name)
    assert "queued" in first
    again = _run(catalogue.name)
    job = Job.objects.get()
    assert f"job {job.pk} ({job.status}) already embeds" in again


def test_it_says_a_catalogue_without_clips_has_none_rather_than_that_all_are_embedded(ada):
    from evalsite.stimuli.models import Catalogue

    Catalogue.objects.create(owner=ada, name="empty")  # a mistyped import stored nothing
    assert _run("empty") == "catalogue 'empty' has no clips to embed; nothing to queue\n"
    assert not Job.objects.exists()


def test_it_counts_one_clip_in_the_singular(ada, django_capture_on_commit_callbacks):
    from tests.evalsite.retrieval.helpers import make_catalogue

    make_catalogue(ada, n_pieces=1, name="one")
    with django_capture_on_commit_callbacks(execute=False):
        said = _run("one")
    assert f"queued embed clips job {Job.objects.get().pk}: 1 clip of catalogue 'one' " in said


def test_it_names_the_catalogues_it_could_mean(ada, bob, catalogue):
    from tests.evalsite.retrieval.helpers import make_catalogue

    make_catalogue(bob, n_pieces=1, name=catalogue.name)
    with pytest.raises(CommandError, match="2 catalogues are named 'demo'.*--owner"):
        _run(catalogue.name)
    assert "queued" in _run(catalogue.name, "--owner", "ada")
    with pytest.raises(CommandError, match="no catalogue named 'nope'"):
        _run("nope")


def test_it_refuses_a_checkpoint_file_that_is_not_a_checkpoint_before_queuing(
    catalogue, settings, tmp_path
):
    junk = tmp_path / "junk.pt"
    junk.write_text("junk\n")
    settings.CSN_CHECKPOINT = str(junk)
    with pytest.raises(CommandError) as refused:
        _run(catalogue.name)
    # the worker's own words for it (evalsite.retrieval.embedder._load), on one line
    assert str(refused.value) == f"CSN_CHECKPOINT={junk}: not a csn checkpoint (a text file)"
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)  # the subprocess reads the committed catalogue
def test_it_says_in_one_line_that_the_broker_refused_the_job(catalogue, checkpoint):
    env = os.environ | {"DATABASE_URL": database_url(), "CELERY_BROKER_URL": BROKER_DOWN,
                        "CSN_CHECKPOINT": str(checkpoint), "CSN_AUTO_EMBED": "0"}  # fmt: skip
    command = [sys.executable, "manage.py", "embed_catalogue", catalogue.name]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    job = Job.objects.get()
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"CommandError: queued embed clips job {job.pk}: 6 clips of catalogue {catalogue.name!r} "
        f"without an embedding under checkpoint {job.checkpoint_id}, but it failed at once: "
        f"{job.message}"
    ]
    assert job.status == Job.Status.FAILED and "127.0.0.1:1" in job.message
