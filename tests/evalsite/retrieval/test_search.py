"""Exact search and the per-subspace index (plain functions, no database)."""

from __future__ import annotations

import numpy as np

from evalsite.retrieval.bench import recall_at, removal_bench, synthetic
from evalsite.retrieval.search import HnswParams, SubspaceIndex, exact_topk


def brute_force(base, queries, k):
    d = np.linalg.norm(queries[:, None, :] - base[None, :, :], axis=2)  # (Q, N)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


def test_it_finds_the_same_neighbours_as_brute_force():
    rng = np.random.default_rng(0)
    base, queries = rng.standard_normal((300, 8)), rng.standard_normal((20, 8))
    dist, idx = exact_topk(base, queries, 10)
    ref_d, ref_i = brute_force(base, queries, 10)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-5)


def test_it_returns_everything_when_k_exceeds_the_catalogue():
    base = np.array([[0.0], [3.0], [1.0]], np.float32)
    dist, idx = exact_topk(base, np.array([[0.2]], np.float32), 10)
    assert idx.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(dist, [[0.2, 0.8, 2.8]], rtol=1e-5)


def test_it_gives_the_exact_top_k_from_the_hnsw_index_on_a_small_catalogue():
    base = synthetic(2000, 16, seed=1, clusters=40)
    queries = synthetic(100, 16, seed=2, clusters=40)
    ids = np.arange(2000) + 500  # clip ids, not row numbers
    index = SubspaceIndex(16, exact_max=0, params=HnswParams(32, 200, 200))
    index.add(ids, base)
    assert index.method == "hnsw"
    _, found = index.search(queries, 10)
    _, truth = exact_topk(base, queries, 10)
    assert recall_at(found, ids[truth], 10) == 1.0


def test_it_switches_to_hnsw_above_the_size_and_keeps_finding_new_vectors():
    rng = np.random.default_rng(3)
    index = SubspaceIndex(4, exact_max=50)
    index.add(np.arange(40), rng.standard_normal((40, 4)))
    assert index.method == "exact"
    index.add(np.arange(40, 80), rng.standard_normal((40, 4)))
    assert index.method == "hnsw"
    target = np.full((1, 4), 9.0, np.float32)
    index.add(np.array([999]), target)
    dist, ids = index.search(target, 1)
    assert ids[0, 0] == 999 and dist[0, 0] == 0.0


def test_it_returns_k_real_ids_from_hnsw_when_many_vectors_are_identical():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((200, 8)).astype(np.float32)
    base[:100] = base[0]  # half identical: HNSW cannot reach every node and pads with -1
    index = SubspaceIndex(8, exact_max=10)
    index.add(np.arange(200) + 1000, base)
    assert index.method == "hnsw"
    dist, ids = index.search(base[:1], 200)
    assert sorted(ids[0].tolist()) == list(range(1000, 1200))
    assert dist.max() < 100


def test_it_times_both_syncs_in_the_removal_benchmark_without_returning_a_removed_clip():
    base = synthetic(400, 8, seed=5, clusters=20)
    queries = synthetic(5, 8, seed=6, clusters=20)
    r = removal_bench(base, queries, HnswParams(16, 40, 16), log=lambda _m: None)
    assert set(r) == {"old_wall", "old_cpu", "new_wall", "new_cpu"}  # it raises on a removed hit


def test_it_times_the_calling_threads_cpu_not_the_other_threads_of_the_process():
    """The benchmark's q/CPU-s is per CPU-second of the one searching thread: CPU that other
    threads of the process burn meanwhile (FAISS's OpenMP threads spinning after a
    multi-threaded build) is not the search's."""
    import threading

    from evalsite.retrieval.bench import timed

    def elsewhere():
        worker = threading.Thread(target=lambda: sum(range(5_000_000)))
        worker.start()
        worker.join()  # this thread waits, using no CPU

    _, cpu, wall = timed(elsewhere)
    assert wall > 0.02 and cpu < 0.2 * wall, (cpu, wall)
    _, cpu, wall = timed(lambda: sum(range(5_000_000)))  # the same work on this thread
    assert cpu > 0.02, (cpu, wall)
