"""The per-process index follows the catalogue without rebuilding: a clip that leaves is left in
the index as dead and never returned, one that comes back is revived (never added twice), a row
committed late below the newest id is added, and the index is rebuilt only once dead entries
pass the stated share. Every answer is checked against brute force over the scope as it is."""

from __future__ import annotations

import numpy as np
import pytest

from evalsite.retrieval.models import Embedding, ModelVersion, to_bytes
from evalsite.retrieval.service import scope, search_vector, synced_index
from evalsite.stimuli.models import Catalogue, Clip

pytestmark = pytest.mark.django_db
HNSW, EXACT = 10, 10_000  # exact_max: 80 vectors take the HNSW path under the first
DIM = 8  # full vectors; the "drums" subspace is their first 4 values


@pytest.fixture
def version():
    return ModelVersion.objects.create(
        checkpoint_id="sync-test", path="-", dim=DIM, sample_rate=22050,
        conditions=["drums"], subspaces={"drums": {"slice": [0, 4]}},
    )  # fmt: skip


@pytest.fixture
def catalogue(ada, version):
    """80 ready clips, each its own piece, embedded with random vectors."""
    catalogue = Catalogue.objects.create(owner=ada, name="sync")
    clips = Clip.objects.bulk_create(
        Clip(catalogue=catalogue, name=f"c{i}", piece=f"P{i:02d}", status=Clip.Status.READY)
        for i in range(80)
    )
    rng = np.random.default_rng(7)
    Embedding.objects.bulk_create(
        Embedding(clip=c, version=version, vector=to_bytes(rng.standard_normal(DIM))) for c in clips
    )
    return catalogue


def vector_of(clip_id: int, version) -> np.ndarray:
    return Embedding.objects.get(clip_id=clip_id, version=version).as_array()


def brute_force(version, catalogue, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    rows = list(scope(version, catalogue.pk).values_list("clip_id", "vector"))
    vecs = np.stack([np.frombuffer(bytes(v), "<f4") for _, v in rows])[:, :4]  # (N, 4)
    dist = np.linalg.norm(vecs - query[:4], axis=1)
    order = np.argsort(dist, kind="stable")[:k]
    return [(rows[i][0], float(dist[i])) for i in order]


def search(version, catalogue, query, exact_max, k=10):
    hits, method = search_vector(version, query, "drums", k, catalogue.pk, exact_max=exact_max)
    assert method == ("hnsw" if exact_max == HNSW else "exact")
    return hits


def assert_brute_force(hits, version, catalogue, query, k=10) -> None:
    truth = brute_force(version, catalogue, query, k)
    assert [h.clip_id for h in hits] == [c for c, _ in truth]
    np.testing.assert_allclose(
        [h.distance for h in hits], [d for _, d in truth], rtol=1e-5, atol=1e-5
    )


def index_of(version, catalogue, exact_max):
    return synced_index(version, "drums", catalogue.pk, exact_max=exact_max)


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_drops_a_removed_and_a_failed_clip_without_rebuilding(version, catalogue, exact_max):
    first = catalogue.clips.order_by("id").first()
    query = vector_of(first.pk, version)
    assert_brute_force(search(version, catalogue, query, exact_max), version, catalogue, query)
    index = index_of(version, catalogue, exact_max)
    builds = index.hnsw_builds
    failed = catalogue.clips.exclude(pk=first.pk).order_by("id").first()
    Clip.objects.filter(pk=failed.pk).update(status=Clip.Status.FAILED)
    first.delete()  # its embedding row goes with it
    hits = search(version, catalogue, query, exact_max)
    assert not {first.pk, failed.pk} & {h.clip_id for h in hits}
    assert_brute_force(hits, version, catalogue, query)
    assert index_of(version, catalogue, exact_max) is index and index.hnsw_builds == builds
    assert len(index) == 78


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_returns_a_clip_ready_again_once_without_adding_it_twice(version, catalogue, exact_max):
    back = catalogue.clips.order_by("id")[5]
    query = vector_of(back.pk, version) + 0.01  # back is the nearest clip
    search(version, catalogue, query, exact_max)
    Clip.objects.filter(pk=back.pk).update(status=Clip.Status.FAILED)
    assert back.pk not in {h.clip_id for h in search(version, catalogue, query, exact_max)}
    Clip.objects.filter(pk=back.pk).update(status=Clip.Status.READY)
    hits = search(version, catalogue, query, exact_max, k=80)
    assert [h.clip_id for h in hits].count(back.pk) == 1 and hits[0].clip_id == back.pk
    assert_brute_force(hits, version, catalogue, query, k=80)
    index = index_of(version, catalogue, exact_max)
    assert index.stored == 80 and len(index) == 80 and index.hnsw_builds <= 1


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_adds_a_row_committed_late_below_the_newest_id(version, catalogue, exact_max):
    late = catalogue.clips.order_by("id")[3]
    row = Embedding.objects.get(clip=late, version=version)
    row.delete()  # not yet committed when the index first looks
    query = row.as_array()
    search(version, catalogue, query, exact_max)
    index = index_of(version, catalogue, exact_max)
    Embedding.objects.create(id=row.id, clip=late, version=version, vector=row.vector)
    hits = search(version, catalogue, query, exact_max)
    assert hits[0].clip_id == late.pk and hits[0].distance == 0.0
    assert_brute_force(hits, version, catalogue, query)
    assert index_of(version, catalogue, exact_max) is index and index.hnsw_builds <= 1
    assert index.stored == 80


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_uses_the_new_vector_of_an_embedding_row_replaced(version, catalogue, exact_max):
    clip = catalogue.clips.order_by("id")[10]
    old = vector_of(clip.pk, version)
    search(version, catalogue, old, exact_max)
    Embedding.objects.filter(clip=clip, version=version).delete()
    Embedding.objects.create(clip=clip, version=version, vector=to_bytes(old + 3.0))
    hits = search(version, catalogue, old, exact_max, k=80)
    assert [h.clip_id for h in hits].count(clip.pk) == 1
    assert_brute_force(hits, version, catalogue, old, k=80)  # the old vector (distance 0) is dead


def test_it_rebuilds_only_once_dead_entries_pass_half_the_index(version, catalogue):
    query = vector_of(catalogue.clips.order_by("id").first().pk, version)
    search(version, catalogue, query, HNSW)
    index = index_of(version, catalogue, HNSW)
    ids = list(catalogue.clips.order_by("id").values_list("id", flat=True))
    Clip.objects.filter(pk__in=ids[1:41]).update(status=Clip.Status.FAILED)  # 40 of 80: half
    assert_brute_force(search(version, catalogue, query, HNSW), version, catalogue, query)
    assert (index.hnsw_builds, index.stored, len(index)) == (1, 80, 40)
    Clip.objects.filter(pk=ids[41]).update(status=Clip.Status.FAILED)  # 41 dead: past half
    assert_brute_force(search(version, catalogue, query, HNSW), version, catalogue, query)
    assert (index.hnsw_builds, index.stored, len(index)) == (2, 39, 39)
    Clip.objects.filter(pk__in=ids[1:42]).update(status=Clip.Status.READY)  # all back
    hits = search(version, catalogue, query, HNSW, k=80)
    assert_brute_force(hits, version, catalogue, query, k=80)
    assert (index.hnsw_builds, index.stored, len(index)) == (2, 80, 80)


def test_it_ends_a_search_that_began_on_an_empty_index_another_thread_filled(
    version, catalogue, monkeypatch
):
    # A search whose first look found no entry (fetch 0) while another request then added the
    # catalogue's first embeddings: widening 0 by 4 stayed 0 and the loop queried forever.
    from evalsite.retrieval import service
    from evalsite.retrieval.search import SubspaceIndex

    index, calls = SubspaceIndex(4), []
    real_search = SubspaceIndex.search

    def search_then_fill(self, queries, k):
        calls.append(k)
        assert len(calls) < 10, f"looping: asked for {calls}"
        answer = real_search(self, queries, k)
        if len(calls) == 1:  # the other request's add lands after this search
            rows = list(scope(version, catalogue.pk).values_list("clip_id", "vector"))
            vecs = np.stack([np.frombuffer(bytes(v), "<f4")[:4] for _, v in rows])  # (N, 4)
            self.add(np.array([c for c, _ in rows]), vecs)
        return answer

    monkeypatch.setattr(service, "synced_index", lambda *a, **kw: index)
    monkeypatch.setattr(SubspaceIndex, "search", search_then_fill)
    hits, _ = search_vector(version, np.zeros(DIM, np.float32), "drums", 5, catalogue.pk)
    assert len(calls) <= 2 and len(hits) in (0, 5)


@pytest.mark.parametrize("exact_max", [HNSW, EXACT])
def test_it_drops_a_clip_moved_away_or_made_a_stem_combination(version, catalogue, ada, exact_max):
    moved, combined = catalogue.clips.order_by("id")[2:4]
    query = vector_of(moved.pk, version)
    search(version, catalogue, query, exact_max)
    elsewhere = Catalogue.objects.create(owner=ada, name="elsewhere")
    Clip.objects.filter(pk=moved.pk).update(catalogue=elsewhere)
    combined.meta = {"kind": "combination"}
    combined.save()
    hits = search(version, catalogue, query, exact_max, k=80)
    assert not {moved.pk, combined.pk} & {h.clip_id for h in hits}
    assert_brute_force(hits, version, catalogue, query, k=80)
    Clip.objects.filter(pk=moved.pk).update(catalogue=catalogue)  # and back again
    hits = search(version, catalogue, query, exact_max, k=80)
    assert hits[0].clip_id == moved.pk and len(hits) == 79
    assert_brute_force(hits, version, catalogue, query, k=80)


def test_it_checks_an_unchanged_scope_with_one_query(version, catalogue):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    index = index_of(version, catalogue, EXACT)
    with CaptureQueriesContext(connection) as queries:
        assert index_of(version, catalogue, EXACT) is index
    assert len(queries) == 1, [q["sql"] for q in queries]
    new = Clip.objects.create(catalogue=catalogue, name="new", piece="NEW", status="ready")
    Embedding.objects.create(clip=new, version=version, vector=to_bytes(np.zeros(DIM)))
    assert len(index_of(version, catalogue, EXACT)) == 81  # what the one query does not rule out
