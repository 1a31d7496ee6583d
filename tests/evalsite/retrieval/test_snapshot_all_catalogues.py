"""The all-catalogues search (a superuser's) starts its indexes from the catalogues' snapshots, as a
catalogue's search starts from its own: a first search reads no vector from the database when
every catalogue's snapshot is current, and answers as the database is now (a clip gone, failed
or moved since is never returned or returned once, a clip of a catalogue without a snapshot or
of none is found). A damaged snapshot is logged and that catalogue's rows are read instead."""

# ruff: noqa: F811  (test_index_sync's fixtures, imported below, are these tests' parameters)

from __future__ import annotations

import logging

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evalsite.retrieval import service, snapshot
from evalsite.retrieval.models import Embedding, to_bytes
from evalsite.retrieval.service import scope
from evalsite.stimuli.models import Catalogue, Clip
from tests.evalsite.retrieval.test_index_snapshot import vectors_read
from tests.evalsite.retrieval.test_index_sync import (  # noqa: F401  (fixtures)
    DIM,
    EXACT,
    HNSW,
    catalogue,
    vector_of,
    version,
)
from tests.evalsite.retrieval.test_snapshot_hnsw_graph import current_file

pytestmark = pytest.mark.django_db


def embedded_catalogue(owner, version, name: str, n: int, seed: int, catalogue=True):
    """n ready clips of a new catalogue (or of none), embedded with random vectors."""
    cat = Catalogue.objects.create(owner=owner, name=name) if catalogue else None
    clips = Clip.objects.bulk_create(
        Clip(catalogue=cat, name=f"{name}{i}", piece=f"{name}{i:02d}", status=Clip.Status.READY)
        for i in range(n)
    )
    rng = np.random.default_rng(seed)
    Embedding.objects.bulk_create(
        Embedding(clip=c, version=version, vector=to_bytes(rng.standard_normal(DIM))) for c in clips
    )
    return cat, clips


@pytest.fixture
def second(ada, version):
    return embedded_catalogue(ada, version, "second", 40, seed=8)[0]


def brute_force_all(version, query: np.ndarray, k: int = 10) -> list[int]:
    """The clips of the k nearest rows of the whole scope (every catalogue, and none)."""
    rows = list(scope(version).values_list("clip_id", "vector"))
    vecs = np.stack([np.frombuffer(bytes(v), "<f4") for _, v in rows])[:, :4]  # (N, 4)
    order = np.argsort(np.linalg.norm(vecs - query[:4], axis=1), kind="stable")[:k]
    return [rows[i][0] for i in order]


def first_search_all(version, query, exact_max):
    """The all-catalogues search as the first of a fresh web process, and its queries."""
    service.forget_indexes()
    with CaptureQueriesContext(connection) as queries:
        hits, _ = service.search_vector(version, query, "drums", 10, None, exact_max=exact_max)
    return [h.clip_id for h in hits], queries


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_takes_the_all_catalogues_index_from_the_snapshots(
    version, catalogue, second, exact_max
):
    assert snapshot.refresh(version, catalogue.pk) and snapshot.refresh(version, second.pk)
    for clip in [catalogue.clips.order_by("id").first(), second.clips.order_by("id").last()]:
        query = vector_of(clip.pk, version)
        hits, read = first_search_all(version, query, exact_max)
        assert vectors_read(read) == []
        assert hits == brute_force_all(version, query)
    index = service.synced_index(version, "drums", None, exact_max)
    assert len(index) == 120 and index.method == ("hnsw" if exact_max == HNSW else "exact")


def test_it_answers_as_the_database_is_after_the_snapshots(version, catalogue, second, ada):
    assert snapshot.refresh(version, catalogue.pk) and snapshot.refresh(version, second.pk)
    clips = list(catalogue.clips.order_by("id"))
    gone = [clips[1].pk, clips[2].pk]
    queries = [vector_of(clip_id, version) for clip_id in gone + [clips[3].pk]]
    clips[1].delete()
    Clip.objects.filter(pk=clips[2].pk).update(status=Clip.Status.FAILED)
    Clip.objects.filter(pk=clips[3].pk).update(catalogue=second)  # moved: found once
    _, third = embedded_catalogue(ada, version, "third", 5, seed=9)  # no snapshot
    _, loose = embedded_catalogue(ada, version, "loose", 3, seed=10, catalogue=False)
    queries += [vector_of(clip.pk, version) for clip in (third[0], loose[0])]
    for query in queries:
        for exact_max in (HNSW, EXACT):
            hits, _ = first_search_all(version, query, exact_max)
            assert hits == brute_force_all(version, query)
            assert not set(gone) & set(hits) and len(set(hits)) == len(hits)
    assert len(service.synced_index(version, "drums", None, HNSW)) == 80 - 2 + 40 + 5 + 3


def test_it_holds_a_clip_in_two_catalogues_snapshots_once(version, catalogue, second):
    """A clip moved after its old catalogue's snapshot and before its new one's is in both."""
    moved = catalogue.clips.order_by("id").first()
    assert snapshot.refresh(version, catalogue.pk)
    Clip.objects.filter(pk=moved.pk).update(catalogue=second)
    assert snapshot.refresh(version, second.pk, share=0)
    query = vector_of(moved.pk, version)
    hits, read = first_search_all(version, query, HNSW)
    assert hits == brute_force_all(version, query) and hits.count(moved.pk) == 1
    assert len(service.synced_index(version, "drums", None, HNSW)) == 120


def test_it_reads_the_rows_of_a_catalogue_whose_snapshot_is_damaged(
    version, catalogue, second, caplog
):
    assert snapshot.refresh(version, catalogue.pk) and snapshot.refresh(version, second.pk)
    damaged = current_file(version, second)
    damaged.write_bytes(damaged.read_bytes()[:-200])  # truncated
    query = vector_of(second.clips.order_by("id").first().pk, version)
    with caplog.at_level(logging.WARNING, logger="evalsite.retrieval"):
        hits, read = first_search_all(version, query, HNSW)
    assert hits == brute_force_all(version, query)
    assert vectors_read(read)  # the second catalogue's rows, from the database
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(damaged.name in w for w in warnings), warnings
