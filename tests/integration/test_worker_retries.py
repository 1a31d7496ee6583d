"""A real worker retries a task whose database connection was terminated under it (a database
restart, a failover, an administrator): the job still ends, with each clip embedded once."""

from __future__ import annotations

import pytest
from django.db import connection

from evalsite.jobs.models import Job
from evalsite.retrieval.models import Embedding
from evalsite.studies.models import Study
from evalsite.studies.tasks import queue_design
from tests.evalsite.retrieval.helpers import make_catalogue
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")


def _terminate_other_backends() -> int:
    """End every other connection to the test database: the worker's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_it_retries_a_design_job_whose_database_connection_was_terminated(
    broker, worker_factory, ada
):
    catalogue = make_catalogue(ada, n_pieces=8)
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    # Batches of 4 with a 3 s pause after each: the worker holds its connection, idle, while
    # the test terminates it; its next query fails.
    worker = worker_factory(CSN_EMBED_BATCH=4, CSN_EMBED_PAUSE_S=3).start()
    job = queue_design(study, catalogue, "nearest_random", 2, seed=3, catch_per_kind=0)
    wait_for(lambda: Embedding.objects.count() >= 4, 90, worker, "the first batch")
    assert _terminate_other_backends() >= 1

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, 90, worker, "the design job")
    assert job.status == Job.Status.DONE, (job.message, worker.tail())
    assert "terminating connection" in worker.tail() and "Retry in" in worker.tail()
    assert study.trials.filter(is_practice=False).count() == 2
    assert Embedding.objects.count() == 8  # each clip once, however often the task ran
