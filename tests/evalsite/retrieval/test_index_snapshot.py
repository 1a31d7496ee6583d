"""A web process's first search of a catalogue loads the snapshot the embedding worker saved
instead of reading every vector from the database, and still answers as the database is now:
a clip deleted, failed or moved after the snapshot is never returned, one embedded after it is
found, and a file that is not the generation the database names is never used. Answers are
checked against brute force over the scope as it is (test_index_sync's helpers)."""

# ruff: noqa: F811  (test_index_sync's fixtures, imported below, are these tests' parameters)

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evalsite.retrieval import ingest, service, snapshot
from evalsite.retrieval.models import Embedding, IndexSnapshot, to_bytes
from evalsite.stimuli.models import Catalogue, Clip
from tests.evalsite.retrieval.helpers import make_catalogue
from tests.evalsite.retrieval.test_index_sync import (  # noqa: F401  (fixtures)
    DIM,
    EXACT,
    HNSW,
    assert_brute_force,
    catalogue,
    search,
    vector_of,
    version,
)

pytestmark = pytest.mark.django_db


def vectors_read(queries) -> list[str]:
    """The queries that read the embeddings' vector column."""
    return [q["sql"] for q in queries if '"retrieval_embedding"."vector"' in q["sql"]]


def first_search(version, catalogue, query, exact_max):
    """A search as the first one of a fresh web process, and the queries it ran."""
    service.forget_indexes()
    with CaptureQueriesContext(connection) as queries:
        hits = search(version, catalogue, query, exact_max)
    return hits, queries


def test_it_saves_the_snapshot_when_the_worker_embeds_a_catalogue(ada, checkpoint):
    catalogue = make_catalogue(ada, n_pieces=4)
    clips = sorted(catalogue.clips.values_list("pk", flat=True))
    ingest.ingest_clips(clips)  # what the embed task runs in the worker
    row = IndexSnapshot.objects.get(catalogue=catalogue)
    snap = snapshot.load(row.version, catalogue.pk)
    assert snap is not None and row.rows == 4
    assert snap.ids.tolist() == clips
    stored = {e.clip_id: e.as_array() for e in Embedding.objects.filter(clip_id__in=clips)}
    np.testing.assert_array_equal(snap.vectors, np.stack([stored[c] for c in clips]))

    service.forget_indexes()
    with CaptureQueriesContext(connection) as queries:
        hits, _ = service.search_vector(row.version, stored[clips[0]], "drums", 3, catalogue.pk)
    assert hits[0].clip_id == clips[0] and hits[0].distance == pytest.approx(0, abs=1e-5)
    assert vectors_read(queries) == []


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_answers_from_the_snapshot_as_from_the_rows(version, catalogue, exact_max):
    query = vector_of(catalogue.clips.order_by("id").first().pk, version)
    from_rows, queries = first_search(version, catalogue, query, exact_max)
    assert vectors_read(queries)
    assert snapshot.refresh(version, catalogue.pk)
    from_file, queries = first_search(version, catalogue, query, exact_max)
    assert vectors_read(queries) == []
    assert from_file == from_rows
    assert_brute_force(from_file, version, catalogue, query)


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_never_returns_a_clip_that_left_after_the_snapshot(version, catalogue, ada, exact_max):
    clips = list(catalogue.clips.order_by("id"))
    snapshot.refresh(version, catalogue.pk)
    # Each query is the vector of a clip that leaves: it would be the first hit if returned.
    queries = [vector_of(c.pk, version) for c in clips[1:5]]
    clips[1].delete()
    Clip.objects.filter(pk=clips[2].pk).update(status=Clip.Status.FAILED)
    Embedding.objects.filter(clip=clips[3]).delete()  # the clip stays ready, unembedded
    elsewhere = Catalogue.objects.create(owner=ada, name="elsewhere")
    Clip.objects.filter(pk=clips[4].pk).update(catalogue=elsewhere)  # ready, in another
    for query in queries:
        hits, _ = first_search(version, catalogue, query, exact_max)
        assert {c.pk for c in clips[1:5]}.isdisjoint(h.clip_id for h in hits)
        assert_brute_force(hits, version, catalogue, query)


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_finds_a_clip_embedded_after_the_snapshot(version, catalogue, exact_max):
    snapshot.refresh(version, catalogue.pk)
    late = Clip.objects.create(catalogue=catalogue, name="late", piece="LATE",
                               status=Clip.Status.READY)  # fmt: skip
    vector = np.full(DIM, 0.01, np.float32)
    Embedding.objects.create(clip=late, version=version, vector=to_bytes(vector))
    assert not snapshot.refresh(version, catalogue.pk)  # 1 of 81 rows: under REFRESH_SHARE
    hits, _ = first_search(version, catalogue, vector, exact_max)
    assert hits[0].clip_id == late.pk
    assert_brute_force(hits, version, catalogue, vector)


def test_it_rewrites_the_snapshot_reading_only_the_rows_it_lacks(
    version, catalogue, django_capture_on_commit_callbacks
):
    snapshot.refresh(version, catalogue.pk)
    first = IndexSnapshot.objects.get(catalogue=catalogue).generation
    extra = Clip.objects.bulk_create(
        Clip(catalogue=catalogue, name=f"x{i}", piece=f"X{i}", status=Clip.Status.READY)
        for i in range(5)
    )
    Embedding.objects.bulk_create(
        Embedding(clip=c, version=version, vector=to_bytes(np.full(DIM, i, np.float32)))
        for i, c in enumerate(extra)
    )
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert snapshot.refresh(version, catalogue.pk)  # 5 of 85 rows: over REFRESH_SHARE
    (read,) = vectors_read(queries)
    added = Embedding.objects.filter(clip__in=extra).order_by("id").values_list("id", flat=True)
    assert f"IN ({', '.join(str(i) for i in added)})" in read
    row = IndexSnapshot.objects.get(catalogue=catalogue)
    assert row.generation != first and row.rows == 85
    assert not snapshot.path_for(version.pk, catalogue.pk, first).exists()
    snap = snapshot.load(version, catalogue.pk)
    assert snap is not None
    np.testing.assert_array_equal(snap.vectors[-5:], np.repeat(np.arange(5.0)[:, None], DIM, 1))


def test_it_reads_rows_when_the_file_is_not_the_generation_the_database_names(version, catalogue):
    query = vector_of(catalogue.clips.order_by("id").first().pk, version)
    snapshot.refresh(version, catalogue.pk)
    row = IndexSnapshot.objects.get(catalogue=catalogue)
    path = snapshot.path_for(version.pk, catalogue.pk, row.generation)
    # Another database's file at this name: same keys, other vectors, its own generation.
    with np.load(path) as f:
        keys, ids, hashes = f["keys"], f["ids"], f["hashes"]
    with open(path, "wb") as f:
        np.savez(f, generation=np.array("0" * 16), keys=keys, ids=ids, hashes=hashes,
                 vectors=np.zeros((len(keys), DIM), np.float32))  # fmt: skip
    hits, queries = first_search(version, catalogue, query, EXACT)
    assert vectors_read(queries)
    assert_brute_force(hits, version, catalogue, query)

    path.write_bytes(b"truncated")
    hits, queries = first_search(version, catalogue, query, EXACT)
    assert vectors_read(queries)
    assert_brute_force(hits, version, catalogue, query)


def test_it_removes_the_file_with_its_catalogue(
    version, catalogue, django_capture_on_commit_callbacks
):
    snapshot.refresh(version, catalogue.pk)
    row = IndexSnapshot.objects.get(catalogue=catalogue)
    path = snapshot.path_for(version.pk, catalogue.pk, row.generation)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        catalogue.delete()
    assert not IndexSnapshot.objects.filter(pk=row.pk).exists()
    assert not path.exists()
