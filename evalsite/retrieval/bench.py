"""Retrieval benchmark: HNSW against exact search, same vectors, same queries, same run.

Synthetic data stands in for one instrument subspace of a large catalogue. [choice] Embeddings of
music are clustered (pieces of a genre, one kit or patch), so the default generator draws
`clusters` centres ~ N(0, I_d) and each vector = centre + a point of a random low-dimensional
(intrinsic_dim) subspace with scale `spread`, plus isotropic noise 0.05: a structure that
nearest-neighbour indexes exploit as they would on real embeddings. `gaussian` (i.i.d. N(0, I))
is the worst case with no structure, printed for comparison when asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalsite.retrieval.search import (  # noqa: F401
    HnswParams,
    IvfParams,
    SubspaceIndex,
    build_hnsw,
    build_ivf,
    exact_topk,
)


def synthetic(
    n: int,
    dim: int = 128,
    kind: str = "clustered",
    seed: int = 0,
    clusters: int = 2000,
    intrinsic_dim: int = 16,
    spread: float = 0.5,
) -> np.ndarray:
    """(n, dim) float32 vectors of the kind described in the module docstring."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, dim), dtype=np.float32)
    if kind != "clustered":
        raise ValueError(f"kind {kind!r}: expected 'clustered' or 'gaussian'")
    crng = np.random.default_rng(12345)  # the same clusters for base and queries
    centres = crng.standard_normal((clusters, dim), dtype=np.float32)  # (C, d)
    basis = crng.standard_normal((clusters, intrinsic_dim, dim), dtype=np.float32)
    basis /= np.sqrt(dim)
    out = np.empty((n, dim), np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        c = rng.integers(0, clusters, m)
        z = rng.standard_normal((m, 1, intrinsic_dim), dtype=np.float32) * spread
        local = (z @ basis[c])[:, 0, :]  # (m, 1, k) @ (m, k, d) -> (m, d)
        out[s : s + m] = centres[c] + local + 0.05 * rng.standard_normal((m, dim), np.float32)
    return out


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of the true k nearest found among the first k returned."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


@dataclass
class Row:
    method: str
    param: str
    qps: float  # queries per CPU-second of the one searching thread
    recall10: float
    wall_qps: float = 0.0  # queries per wall-clock second (lower when the machine is shared)


def timed(fn, clock=time.thread_time):
    """(result, CPU seconds, wall seconds) of fn(). CPU seconds are the calling thread's by
    default: with FAISS held to one OpenMP thread a search runs on the calling thread, so its
    CPU time is the search's work, a throughput figure other jobs on a shared machine do not
    distort, unlike wall time (both are printed). Process CPU (clock=time.process_time) would
    also count what other threads burn meanwhile, e.g. FAISS's OpenMP threads still spinning
    after a multi-threaded build, which made a q/CPU-s figure lower than the wall one; it is
    the clock for work that does run on several threads (removal_bench's rebuild)."""
    c, w = clock(), time.perf_counter()
    out = fn()
    return out, clock() - c, time.perf_counter() - w


def run_bench(
    base: np.ndarray,
    queries: np.ndarray,
    params: HnswParams,
    ef_grid: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128, 256),
    k: int = 10,
    log=print,
    index_path=None,
    ivf: IvfParams | None = None,
) -> tuple[list[Row], dict]:
    """Exact (FAISS flat, one thread) vs HNSW at each efSearch (one thread)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatL2(base.shape[1])
    flat.add(base)
    (_, truth), cpu, wall = timed(lambda: flat.search(queries, k))
    n = len(queries)
    rows = [Row("exact (IndexFlatL2)", "-", n / cpu, 1.0, n / wall)]
    log(f"exact: {n / cpu:,.0f} q/CPU-s ({n / wall:,.0f} q/s wall)")
    faiss.omp_set_num_threads(threads)  # building may use the cores; searching may not
    t = time.perf_counter()
    index = load_or_build(base, params, index_path)
    build_s = time.perf_counter() - t
    log(f"HNSW M={params.m} efConstruction={params.ef_construction}: ready in {build_s:.0f} s")
    faiss.omp_set_num_threads(1)
    for ef in ef_grid:
        index.hnsw.efSearch = ef
        index.search(queries[:50], k)  # warm caches
        (_, found), cpu, wall = timed(lambda: index.search(queries, k))
        rows.append(Row("HNSW", f"efSearch={ef}", n / cpu, recall_at(found, truth, k), n / wall))
        log(f"  efSearch={ef}: {n / cpu:,.0f} q/CPU-s ({n / wall:,.0f} wall), "
            f"recall@10 {rows[-1].recall10:.4f}")  # fmt: skip
    faiss.omp_set_num_threads(threads)
    if ivf is not None:
        rows += run_ivf(base, queries, truth, ivf, k=k, log=log)
    return rows, {"build_s": build_s, "exact_qps": rows[0].qps}


def run_ivf(
    base: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    params: IvfParams,
    nprobe_grid: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    k: int = 10,
    log=print,
) -> list[Row]:
    """IVF-Flat (HNSW coarse quantizer) at each nprobe, one search thread."""
    import faiss

    t = time.perf_counter()
    index = build_ivf(base, params)
    log(f"IVF nlist={params.nlist}: trained and filled in {time.perf_counter() - t:.0f} s")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    rows, n = [], len(queries)
    for nprobe in nprobe_grid:
        index.nprobe = nprobe
        index.search(queries[:50], k)
        (_, found), cpu, wall = timed(lambda: index.search(queries, k))
        rows.append(Row("IVF-Flat", f"nprobe={nprobe}", n / cpu, recall_at(found, truth, k),
                        n / wall))  # fmt: skip
        log(f"  nprobe={nprobe}: {n / cpu:,.0f} q/CPU-s, recall@10 {rows[-1].recall10:.4f}")
    faiss.omp_set_num_threads(threads)
    return rows


def load_or_build(base: np.ndarray, params: HnswParams, path=None):
    """The HNSW index over base, read from path if it was saved there for the same
    vectors and parameters, else built (and saved when a path is given)."""
    import faiss

    if path is not None and Path(path).exists():
        index = faiss.read_index(str(path))
        if (
            isinstance(index, faiss.IndexHNSW)  # read_index returns the saved index's own class
            and index.ntotal == len(base)
            and index.hnsw.efConstruction == params.ef_construction
        ):
            return index
    index = build_hnsw(base, params)
    if path is not None:
        faiss.write_index(index, str(path))
    return index


def table(rows: list[Row], exact_qps: float) -> str:
    lines = ["| method | parameter | queries/CPU-s (1 thread) | x exact | wall q/s | recall@10 |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r.method} | {r.param} | {r.qps:,.0f} | {r.qps / exact_qps:,.1f} | "
            f"{r.wall_qps:,.0f} | {r.recall10:.4f} |"
        )
    return "\n".join(lines)


def best(rows: list[Row], target_recall: float = 0.95) -> Row | None:
    """The fastest index setting at or above the target recall."""
    ok = [r for r in rows if r.method != "exact (IndexFlatL2)" and r.recall10 >= target_recall]
    return max(ok, key=lambda r: r.qps) if ok else None


def removal_bench(
    base: np.ndarray, queries: np.ndarray, params: HnswParams, k: int = 10, log=print
) -> dict:
    """The first search after one clip leaves an HNSW index of len(base) vectors: the old way
    (rebuild the index from the remaining vectors, then search) against the incremental one
    (`SubspaceIndex.retain`, the removed entry left dead, then search). Each query removes one
    more clip, the one nearest it, so the search would return it were it not skipped. Index
    work only: the database reads are left out on both sides (a rebuild also read every vector,
    the incremental sync reads the scope's ids). Times are wall and process-CPU seconds."""
    ids = np.arange(len(base), dtype=np.int64) + 1  # clip ids; keys the same (one row a clip)
    live = np.ones(len(base), bool)
    index = SubspaceIndex(base.shape[1], exact_max=0, params=params)
    index.add(ids, base)  # built before the clock starts, as a warm process holds it
    new_wall, new_cpu, removed = [], [], []
    for q in queries:
        gone = int(exact_topk(base[live], q[None, :], 1)[1][0, 0])
        gone = int(np.flatnonzero(live)[gone])
        live[gone] = False
        removed.append(ids[gone])

        def incremental(q=q):
            index.retain(ids[live])
            return index.search(q[None, :], k)

        (_, found), cpu, wall = timed(incremental, time.process_time)
        if removed[-1] in found[0]:
            raise RuntimeError(f"clip {removed[-1]} was removed but the search returned it")
        new_wall.append(wall)
        new_cpu.append(cpu)
    log(f"incremental: {len(queries)} removals, index still {index.stored:,} entries, "
        f"{index.hnsw_builds} graph build(s) (the first, before timing)")  # fmt: skip

    def rebuild():
        fresh = SubspaceIndex(base.shape[1], exact_max=0, params=params)
        fresh.add(ids[live], base[live])
        return fresh.search(queries[-1][None, :], k)

    (_, found), old_cpu, old_wall = timed(rebuild, time.process_time)  # a build: all threads
    if removed[-1] in found[0]:
        raise RuntimeError(f"clip {removed[-1]} was removed but the rebuilt index returned it")
    new = {"new_wall": float(np.median(new_wall)), "new_cpu": float(np.median(new_cpu))}
    return {"old_wall": old_wall, "old_cpu": old_cpu, **new}
