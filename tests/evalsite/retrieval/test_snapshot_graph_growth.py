"""The worker grows the old snapshot's HNSW graphs when the new snapshot's rows are the old ones,
in the same order, with rows appended after them: the grown graph passes every check a web
process applies before using one and answers as a graph built from the rows. A row removed, a
row whose key falls among the old ones, or a damaged old graph makes it build from scratch (the
last with a warning). EXACT_MAX is lowered as in test_snapshot_hnsw_graph."""

# ruff: noqa: F811  (the fixtures imported below are these tests' parameters)

from __future__ import annotations

import logging

import faiss
import numpy as np
import pytest

from evalsite.retrieval import search as search_module
from evalsite.retrieval import snapshot
from evalsite.retrieval.models import Embedding
from evalsite.retrieval.search import DEFAULT_HNSW, load_hnsw
from evalsite.stimuli.models import Clip
from tests.evalsite.retrieval.test_index_snapshot import first_search, vectors_read
from tests.evalsite.retrieval.test_index_sync import (  # noqa: F401  (fixtures)
    HNSW,
    assert_brute_force,
    catalogue,
    vector_of,
)
from tests.evalsite.retrieval.test_snapshot_hnsw_graph import (  # noqa: F401  (fixtures)
    current_file,
    drums_index,
    queries_of,
    rewrite_members,
    version,
    worker_above_exact_max,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """The sizes of the HNSW graphs built from scratch (every graph is built by build_hnsw)."""
    sizes: list[int] = []
    build = search_module.build_hnsw

    def counted(base, params=DEFAULT_HNSW):
        sizes.append(len(base))
        return build(base, params)

    monkeypatch.setattr(search_module, "build_hnsw", counted)
    return sizes


def clips_by_key(catalogue) -> list[int]:
    """The catalogue's clip ids in the order of their embeddings' keys."""
    return list(Embedding.objects.filter(clip__catalogue=catalogue).order_by("id").values_list(
        "clip_id", flat=True))  # fmt: skip


def set_status(clip_ids: list[int], status: str) -> None:
    Clip.objects.filter(pk__in=clip_ids).update(status=status)


def assert_graphs_pass_the_web_checks(version, catalogue) -> None:
    """Each saved graph is what a web process accepts: over exactly the file's vectors of its
    instrument, in key order, with this process's parameters and its links inside it."""
    path = current_file(version, catalogue)
    with np.load(path) as f:
        vectors = f["vectors"]  # (N, D) all finite here
        for condition in version.conditions:
            sub = np.ascontiguousarray(version.subspace(vectors, condition))  # (N, d)
            graph, problem = load_hnsw(f[f"graph_{condition}"], sub, DEFAULT_HNSW)
            assert graph is not None, (condition, problem)


def assert_first_searches_load_the_graph(version, catalogue, queries, expected=None) -> None:
    """A fresh web process's first search loads the saved graph (builds none, reads no vector
    from the database) and answers with the exact top-k (and as expected, when given)."""
    for i, query in enumerate(queries):
        hits, read = first_search(version, catalogue, query, HNSW)
        assert drums_index(version, catalogue).hnsw_builds == 0
        assert vectors_read(read) == []
        assert_brute_force(hits, version, catalogue, query)
        if expected is not None:
            assert hits == expected[i]


def test_it_grows_the_saved_graphs_when_rows_are_appended(
    version, catalogue, worker_above_exact_max, builds
):
    queries = queries_of(version, catalogue)
    from_rows = [first_search(version, catalogue, q, HNSW)[0] for q in queries]  # built in it
    late = clips_by_key(catalogue)[-20:]
    set_status(late, Clip.Status.FAILED)
    builds.clear()
    assert snapshot.refresh(version, catalogue.pk)  # 60 rows: built from scratch
    assert builds == [60, 60]  # drums and bass
    set_status(late, Clip.Status.READY)  # their keys are above every key the snapshot holds
    builds.clear()
    assert snapshot.refresh(version, catalogue.pk)
    assert builds == []  # grown: the 20 vectors added to the old graphs
    with np.load(current_file(version, catalogue)) as f:
        assert len(f["keys"]) == 80
    assert_graphs_pass_the_web_checks(version, catalogue)
    assert_first_searches_load_the_graph(version, catalogue, queries, expected=from_rows)


def test_it_builds_from_scratch_when_a_row_was_removed(
    version, catalogue, worker_above_exact_max, builds
):
    keys = clips_by_key(catalogue)
    set_status(keys[-10:], Clip.Status.FAILED)
    assert snapshot.refresh(version, catalogue.pk)
    set_status(keys[-10:], Clip.Status.READY)
    Clip.objects.filter(pk=keys[5]).delete()  # 10 appended, but one of the old rows gone
    builds.clear()
    assert snapshot.refresh(version, catalogue.pk)
    assert builds == [79, 79]
    assert_graphs_pass_the_web_checks(version, catalogue)
    assert_first_searches_load_the_graph(version, catalogue, queries_of(version, catalogue))


def test_it_builds_from_scratch_when_a_key_falls_among_the_old_ones(
    version, catalogue, worker_above_exact_max, builds
):
    keys = clips_by_key(catalogue)
    back = [keys[3]] + keys[-10:]  # one key among the old snapshot's, and 10 above them all
    set_status(back, Clip.Status.FAILED)
    assert snapshot.refresh(version, catalogue.pk)
    set_status(back, Clip.Status.READY)
    builds.clear()
    assert snapshot.refresh(version, catalogue.pk)
    assert builds == [80, 80]
    assert_graphs_pass_the_web_checks(version, catalogue)
    assert_first_searches_load_the_graph(version, catalogue, queries_of(version, catalogue))


def test_it_builds_from_scratch_when_the_old_graph_is_damaged(
    version, catalogue, worker_above_exact_max, builds, caplog
):
    late = clips_by_key(catalogue)[-20:]
    set_status(late, Clip.Status.FAILED)
    assert snapshot.refresh(version, catalogue.pk)
    old = current_file(version, catalogue)
    with np.load(old) as f:
        rewrite_members(old, graph_drums=f["graph_drums"][:-100])  # truncated
    set_status(late, Clip.Status.READY)
    builds.clear()
    with caplog.at_level(logging.WARNING, logger="evalsite.retrieval"):
        assert snapshot.refresh(version, catalogue.pk)
    assert builds == [80]  # drums built; bass, sound, grown
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(old.name in w and "graph_drums" in w for w in warnings), warnings
    assert_graphs_pass_the_web_checks(version, catalogue)
    assert_first_searches_load_the_graph(version, catalogue, queries_of(version, catalogue))


def test_it_builds_from_scratch_when_the_old_graphs_have_other_params(
    version, catalogue, worker_above_exact_max, builds
):
    late = clips_by_key(catalogue)[-20:]
    set_status(late, Clip.Status.FAILED)
    other = search_module.HnswParams(m=8, ef_construction=40)
    assert snapshot.refresh(version, catalogue.pk, params=other)
    set_status(late, Clip.Status.READY)
    builds.clear()
    assert snapshot.refresh(version, catalogue.pk)
    assert builds == [80, 80]
    with np.load(current_file(version, catalogue)) as f:
        graph = faiss.deserialize_index(f["graph_drums"])
        assert graph.hnsw.efConstruction == DEFAULT_HNSW.ef_construction
    assert_graphs_pass_the_web_checks(version, catalogue)
