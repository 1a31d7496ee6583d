"""With a real worker: the worker that embeds a catalogue saves its index snapshot, a web
process's first search loads it (reads no vector from the database) and answers as the database
is now, after a clip is added through the worker and after one is deleted."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evalsite.retrieval import service, snapshot
from evalsite.retrieval.models import Embedding, IndexSnapshot
from evalsite.stimuli.tasks import queue_ingest
from tests.evalsite.retrieval.helpers import make_catalogue
from tests.integration.conftest import wait_for
from tests.integration.test_workers import _job_finished

pytestmark = pytest.mark.integration


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")


def first_search(client, params: dict) -> tuple[list[int], list[str]]:
    """Clip ids of the drums hits of a fresh process's first search, and the queries that read
    the vector column."""
    service.forget_indexes()
    with CaptureQueriesContext(connection) as queries:
        answer = client.get("/retrieval/api/search", params).json()
    read = [q["sql"] for q in queries if '"retrieval_embedding"."vector"' in q["sql"]]
    return [h["clip"] for h in answer["results"]["drums"]], read


def test_it_loads_the_first_search_from_the_snapshot_the_worker_saved(
    broker, worker_factory, ada, settings, client
):
    from evalsite.stimuli.audio import clip_from_array
    from tests.evalsite.retrieval.helpers import SR, piece_audio

    catalogue = make_catalogue(ada, n_pieces=5)
    worker = worker_factory().start()
    job = queue_ingest(catalogue)
    wait_for(_job_finished(job), 120, worker, "the ingest job")
    row = IndexSnapshot.objects.get(catalogue=catalogue)
    assert snapshot.path_for(row.version_id, catalogue.pk, row.generation).exists()
    client.force_login(ada)
    query = catalogue.clips.order_by("id").first()
    params = {"clip": query.pk, "instrument": "drums", "k": 10, "catalogue": catalogue.pk}
    hits, read = first_search(client, params)
    others = set(catalogue.clips.exclude(pk=query.pk).values_list("pk", flat=True))
    assert set(hits) == others
    assert len(read) == 1 and "LIMIT 1" in read[0]  # the query clip's own row, not the scope's

    settings.CSN_AUTO_EMBED = True  # the post-commit signal queues the new clip
    new = clip_from_array(piece_audio(7, 1), SR, catalogue, name="late", piece="LATE")
    wait_for(lambda: Embedding.objects.filter(clip=new).exists(), 60, worker, "auto-embed")
    wait_for(lambda: IndexSnapshot.objects.get(pk=row.pk).rows == 6, 30, worker, "snapshot")
    hits, _ = first_search(client, params)
    assert set(hits) == others | {new.pk}

    gone = min(others)
    catalogue.clips.filter(pk=gone).delete()
    hits, _ = first_search(client, params)
    assert set(hits) == (others - {gone}) | {new.pk}
