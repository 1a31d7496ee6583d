"""Above EXACT_MAX the worker saves each instrument's HNSW graph in the catalogue's snapshot and a
web process's first search loads it instead of building one; it answers as a graph built from the
rows does, and still as the database is now (a clip gone since is never returned, one embedded
since is found). A graph built with other HNSW parameters, over other vectors, or damaged is
logged and not used: the graph is built as before. Every instrument's index of a catalogue comes
from one reading of the file's rows. EXACT_MAX is lowered for the worker by monkeypatch and for
the search by its exact_max argument (test_index_sync's HNSW)."""

# ruff: noqa: F811  (test_index_sync's fixtures, imported below, are these tests' parameters)

from __future__ import annotations

import logging
import re
from pathlib import Path

import faiss
import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evalsite.retrieval import search as search_module
from evalsite.retrieval import service, snapshot
from evalsite.retrieval.models import Embedding, IndexSnapshot, ModelVersion, to_bytes
from evalsite.retrieval.search import DEFAULT_HNSW, HnswParams, _links_inside, build_hnsw
from evalsite.stimuli.models import Catalogue, Clip
from tests.evalsite.retrieval.test_index_snapshot import first_search, vectors_read
from tests.evalsite.retrieval.test_index_sync import (  # noqa: F401  (fixtures)
    DIM,
    EXACT,
    HNSW,
    assert_brute_force,
    catalogue,
    vector_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    """Two instruments (test_index_sync's has one), so that one file serves two indexes."""
    return ModelVersion.objects.create(
        checkpoint_id="graph-test", path="-", dim=DIM, sample_rate=22050,
        conditions=["drums", "bass"],
        subspaces={"drums": {"slice": [0, 4]}, "bass": {"slice": [4, 8]}},
    )  # fmt: skip


@pytest.fixture
def worker_above_exact_max(monkeypatch):
    """The worker sees the 80 clips as above EXACT_MAX (the search is told by exact_max)."""
    monkeypatch.setattr(search_module, "EXACT_MAX", HNSW)


def drums_index(version, catalogue, exact_max=HNSW):
    return service.synced_index(version, "drums", catalogue.pk, exact_max=exact_max)


def current_file(version, catalogue) -> Path:
    row = IndexSnapshot.objects.get(version=version, catalogue=catalogue)
    return snapshot.path_for(version.pk, catalogue.pk, row.generation)


def rewrite_members(path: Path, **members) -> None:
    with np.load(path) as f:
        arrays = {name: f[name] for name in f.files}
    arrays |= members
    with open(path, "wb") as out:
        np.savez(out, **arrays)


def drums_vectors(path: Path) -> np.ndarray:
    with np.load(path) as f:
        return np.ascontiguousarray(f["vectors"][:, :4])  # (N, 4) the drums subspace


def queries_of(version, catalogue, n=8) -> list[np.ndarray]:
    return [vector_of(c, version) for c in catalogue.clips.order_by("id")[:n].values_list(
        "pk", flat=True)]  # fmt: skip


def test_it_writes_graphs_only_above_exact_max(version, catalogue, monkeypatch):
    assert snapshot.refresh(version, catalogue.pk)  # 80 clips, EXACT_MAX 20,000
    with np.load(current_file(version, catalogue)) as f:
        assert not [name for name in f.files if name.startswith("graph")]
    monkeypatch.setattr(search_module, "EXACT_MAX", HNSW)
    # Nothing changed in the rows, but the snapshot now lacks the graphs a search would build.
    assert snapshot.refresh(version, catalogue.pk)
    with np.load(current_file(version, catalogue)) as f:
        assert {"graph_drums", "graph_bass", "hnsw"} <= set(f.files)
        assert f["hnsw"].tolist() == [DEFAULT_HNSW.m, DEFAULT_HNSW.ef_construction]
    assert not snapshot.refresh(version, catalogue.pk)  # and then nothing to do


def test_it_writes_graphs_when_the_catalogue_grows_past_exact_max_by_a_few_rows(
    version, catalogue, monkeypatch
):
    """Written at exact_max rows (no graphs), then two rows more: fewer than REFRESH_SHARE
    changed, yet a search over the 80 builds a graph, so the snapshot is written with them and a
    web process's first search loads them (review rdiff, finding 4: refresh judged the old
    snapshot's 78 rows, and the first search built the graph inside the request)."""
    monkeypatch.setattr(search_module, "EXACT_MAX", 78)
    clips = list(catalogue.clips.order_by("id"))
    Clip.objects.filter(pk__in=[c.pk for c in clips[-2:]]).update(status=Clip.Status.FAILED)
    assert snapshot.refresh(version, catalogue.pk)  # 78 rows: at exact_max, no graphs
    with np.load(current_file(version, catalogue)) as f:
        assert not [name for name in f.files if name.startswith("graph")]
    Clip.objects.filter(pk__in=[c.pk for c in clips[-2:]]).update(status=Clip.Status.READY)
    assert snapshot.refresh(version, catalogue.pk)  # 80 rows: 2.5% changed, but graphless
    service.forget_indexes()  # a fresh web process
    service.search_vector(version, vector_of(clips[0].pk, version), "drums", 5, catalogue.pk,
                          exact_max=78)  # fmt: skip
    index = drums_index(version, catalogue, exact_max=78)
    assert index.method == "hnsw" and index.hnsw_builds == 0  # loaded, not built
    assert not snapshot.refresh(version, catalogue.pk)  # and then nothing to do


def test_it_loads_the_graph_and_answers_as_a_built_one(version, catalogue, worker_above_exact_max):
    queries = queries_of(version, catalogue)
    built = [first_search(version, catalogue, q, HNSW)[0] for q in queries]  # from the rows
    assert drums_index(version, catalogue).hnsw_builds == 1
    assert snapshot.refresh(version, catalogue.pk)
    for query, from_rows in zip(queries, built):
        hits, read = first_search(version, catalogue, query, HNSW)
        index = drums_index(version, catalogue)
        assert index.method == "hnsw" and index.hnsw_builds == 0  # loaded, not built
        assert vectors_read(read) == []
        assert hits == from_rows
        assert_brute_force(hits, version, catalogue, query)


def test_it_answers_as_the_database_is_after_the_graph(version, catalogue, ada,
                                                       worker_above_exact_max):  # fmt: skip
    clips = list(catalogue.clips.order_by("id"))
    assert snapshot.refresh(version, catalogue.pk)
    queries = [vector_of(c.pk, version) for c in clips[1:4]]  # each would be its clip's first hit
    clips[1].delete()
    Clip.objects.filter(pk=clips[2].pk).update(status=Clip.Status.FAILED)
    elsewhere = Catalogue.objects.create(owner=ada, name="elsewhere")
    Clip.objects.filter(pk=clips[3].pk).update(catalogue=elsewhere)
    late = Clip.objects.create(catalogue=catalogue, name="late", piece="LATE",
                               status=Clip.Status.READY)  # fmt: skip
    vector = np.full(DIM, 0.01, np.float32)
    Embedding.objects.create(clip=late, version=version, vector=to_bytes(vector))
    for query in queries:
        hits, _ = first_search(version, catalogue, query, HNSW)
        assert drums_index(version, catalogue).hnsw_builds == 0
        assert {c.pk for c in clips[1:4]}.isdisjoint(h.clip_id for h in hits)
        assert_brute_force(hits, version, catalogue, query)
    hits, _ = first_search(version, catalogue, vector, HNSW)
    assert hits[0].clip_id == late.pk
    assert_brute_force(hits, version, catalogue, vector)


def test_it_takes_every_instruments_index_from_one_reading(
    version, catalogue, worker_above_exact_max
):
    assert snapshot.refresh(version, catalogue.pk)
    path = current_file(version, catalogue)
    query = vector_of(catalogue.clips.order_by("id").first().pk, version)
    service.forget_indexes()
    service.synced_index(version, "drums", catalogue.pk, exact_max=EXACT)
    path.unlink()  # bass's index must come from that same reading, not from the file or rows
    with CaptureQueriesContext(connection) as read:
        hits, _ = service.search_vector(version, query, "bass", 5, catalogue.pk, exact_max=EXACT)
    assert vectors_read(read) == []
    assert len(service.synced_index(version, "bass", catalogue.pk, exact_max=EXACT)) == 80
    assert hits[0].clip_id == catalogue.clips.order_by("id").first().pk


def other_params_graph(vectors: np.ndarray) -> np.ndarray:
    return faiss.serialize_index(build_hnsw(vectors, HnswParams(m=8, ef_construction=40)))


def shuffled_graph(vectors: np.ndarray) -> np.ndarray:
    """A sound graph, with the default parameters, over the same vectors in another order."""
    return faiss.serialize_index(build_hnsw(vectors[::-1].copy()))


def neighbour_out_of_range(vectors: np.ndarray) -> np.ndarray:
    graph = build_hnsw(vectors)
    links = faiss.vector_to_array(graph.hnsw.neighbors)
    links[links >= 0] += len(vectors)  # every link past the last entry
    faiss.copy_array_to_vector(links, graph.hnsw.neighbors)
    return faiss.serialize_index(graph)


GRAPHS = {  # how the drums graph is replaced -> what the warning says
    "other_params": (other_params_graph, "built with M=8, efConstruction=40"),
    "other_order": (shuffled_graph, "vectors are not the snapshot's"),
    # FAISS >= 1.11's reader refuses it itself; load_hnsw's own check is for older ones
    "neighbour_out_of_range": (neighbour_out_of_range, "out of range|links are not a graph"),
    "truncated": (lambda v: faiss.serialize_index(build_hnsw(v))[:-100], "not a FAISS index"),
    "not_a_graph": (
        lambda v: np.frombuffer(b"not a faiss index" * 10, np.uint8),
        "not a FAISS index",
    ),  # fmt: skip
    "float_member": (
        lambda v: faiss.serialize_index(build_hnsw(v)).astype(np.float32),
        "expected uint8",
    ),  # fmt: skip
}


def assert_built_after_a_warning(version, catalogue, path, caplog, why: str = "") -> None:
    query = vector_of(catalogue.clips.order_by("id").first().pk, version)
    with caplog.at_level(logging.WARNING, logger="evalsite.retrieval"):
        hits, read = first_search(version, catalogue, query, HNSW)
    assert vectors_read(read) == []  # the rows still come from the file
    index = drums_index(version, catalogue)
    assert index.method == "hnsw" and index.hnsw_builds == 1
    assert_brute_force(hits, version, catalogue, query)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(path.name in w and "graph" in w and re.search(why, w) for w in warnings), warnings


@pytest.mark.parametrize("how", sorted(GRAPHS))
def test_it_builds_the_graph_when_the_saved_one_is_not_sound(
    version, catalogue, worker_above_exact_max, how, caplog
):
    assert snapshot.refresh(version, catalogue.pk)
    path = current_file(version, catalogue)
    make, why = GRAPHS[how]
    rewrite_members(path, graph_drums=make(drums_vectors(path)))
    assert_built_after_a_warning(version, catalogue, path, caplog, why)


def test_it_builds_the_graph_when_this_process_uses_other_params(
    version, catalogue, monkeypatch, caplog
):
    monkeypatch.setattr(search_module, "EXACT_MAX", HNSW)
    # The worker runs with other parameters than the web process (recorded with the graphs).
    assert snapshot.refresh(version, catalogue.pk, params=HnswParams(m=8, ef_construction=40))
    path = current_file(version, catalogue)
    with np.load(path) as f:
        assert f["hnsw"].tolist() == [8, 40]
    assert_built_after_a_warning(version, catalogue, path, caplog, why="M=8")
    # and the worker's next refresh with this process's parameters writes graphs it can use
    assert snapshot.refresh(version, catalogue.pk)
    service.forget_indexes()
    assert drums_index(version, catalogue).hnsw_builds == 0


def test_it_builds_the_graph_when_its_bytes_fail_their_checksum(
    version, catalogue, worker_above_exact_max, caplog
):
    assert snapshot.refresh(version, catalogue.pk)
    path = current_file(version, catalogue)
    data = bytearray(path.read_bytes())
    with np.load(path) as f:
        graph = f["graph_drums"].tobytes()
    at = data.find(graph[-400:-300])  # a stretch of the drums graph's links, inside the file
    assert at > 0
    data[at + 50] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_built_after_a_warning(version, catalogue, path, caplog, "CRC")


def test_it_finds_links_outside_the_graph_that_an_older_faiss_reads_unchecked():
    vectors = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    graph = build_hnsw(vectors)
    assert _links_inside(graph.hnsw, 50)
    links = faiss.vector_to_array(graph.hnsw.neighbors)
    links[3] = 50  # one link past the last entry
    faiss.copy_array_to_vector(links, graph.hnsw.neighbors)
    assert not _links_inside(graph.hnsw, 50)
    links[3] = 0
    faiss.copy_array_to_vector(links, graph.hnsw.neighbors)
    offsets = faiss.vector_to_array(graph.hnsw.offsets)
    offsets[1] += 1  # entry 0's links run into entry 1's
    faiss.copy_array_to_vector(offsets, graph.hnsw.offsets)
    assert not _links_inside(graph.hnsw, 50)
