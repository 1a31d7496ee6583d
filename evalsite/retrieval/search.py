"""Nearest-neighbour search in one instrument subspace: exact below a size, FAISS HNSW above.

Distances are Euclidean in the subspace, the model's own masked distance d(x, y; m_c).
Exact search (numpy, float64 accumulation) serves catalogues of up to EXACT_MAX vectors: at that
size one query costs well under a millisecond and needs no index. Above it, a FAISS
IndexHNSWFlat (M, efConstruction, efSearch below, tuned with `manage.py retrieval_bench` to
recall@10 >= 0.95) answers approximately; it is built from the database once per process and
then extended incrementally as clips are added (HNSW supports adding without a rebuild).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

EXACT_MAX = 20_000  # vectors per subspace; above it the HNSW index is used


@dataclass(frozen=True)
class HnswParams:
    m: int = 32  # links per node
    ef_construction: int = 160  # 80 needed efSearch 64 for recall 0.95 at 1M; 160 needs 32
    ef_search: int = 32  # raised to k when k is larger


DEFAULT_HNSW = HnswParams()


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances (Q, k), indices (Q, k)) of the k nearest rows of base (N, d), closest first."""
    base = np.asarray(base, dtype=np.float32)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    k = min(k, base.shape[0])
    if k == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    sq = (
        (queries.astype(np.float64) ** 2).sum(1)[:, None]
        - 2.0 * queries.astype(np.float64) @ base.astype(np.float64).T
        + (base.astype(np.float64) ** 2).sum(1)[None, :]
    )  # (Q, N) squared distances
    part = np.argpartition(sq, k - 1, axis=1)[:, :k] if k < base.shape[0] else None
    idx = part if part is not None else np.tile(np.arange(base.shape[0]), (len(queries), 1))
    order = np.take_along_axis(sq, idx, 1).argsort(axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, 1)  # (Q, k)
    dist = np.sqrt(np.maximum(np.take_along_axis(sq, idx, 1), 0.0)).astype(np.float32)
    return dist, idx.astype(np.int64)


@dataclass(frozen=True)
class IvfParams:
    nlist: int = 2048  # inverted lists (k-means cells)
    nprobe: int = 8  # lists scanned per query
    train_size: int = 100_000  # vectors k-means is trained on


def build_ivf(base: np.ndarray, params: IvfParams = IvfParams()):
    """IVF-Flat whose coarse quantizer is itself an HNSW graph over the centroids, so a query
    pays for nprobe short lists instead of a scan of every centroid."""
    import faiss

    d = base.shape[1]
    quantizer = faiss.IndexHNSWFlat(d, 32)
    index = faiss.IndexIVFFlat(quantizer, d, params.nlist)
    rng = np.random.default_rng(0)
    sample = base[rng.choice(len(base), min(len(base), params.train_size), replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    index.nprobe = params.nprobe
    return index


def build_hnsw(base: np.ndarray, params: HnswParams = DEFAULT_HNSW):
    import faiss

    index = faiss.IndexHNSWFlat(base.shape[1], params.m)
    index.hnsw.efConstruction = params.ef_construction
    index.hnsw.efSearch = params.ef_search
    if len(base):
        index.add(np.ascontiguousarray(base, dtype=np.float32))
    return index


class SubspaceIndex:
    """Vectors of one subspace with their ids; exact search or an HNSW index by size."""

    def __init__(self, dim: int, exact_max: int = EXACT_MAX, params: HnswParams = DEFAULT_HNSW):
        self.dim = dim
        self.exact_max = exact_max
        self.params = params
        self.ids = np.zeros(0, np.int64)
        self.vectors = np.zeros((0, dim), np.float32)
        self.hnsw = None
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def method(self) -> str:
        return "hnsw" if self.hnsw is not None else "exact"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self.lock:
            self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
            self.vectors = np.concatenate([self.vectors, vectors])
            if self.hnsw is not None:
                self.hnsw.add(vectors)
            elif len(self.ids) > self.exact_max:
                self.hnsw = build_hnsw(self.vectors, self.params)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances (Q, k'), ids (Q, k')) with k' = min(k, size), closest first: always k'
        real ids (exact search where HNSW cannot fill k)."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        k = min(k, len(self))
        with self.lock:
            if self.hnsw is None:
                dist, idx = exact_topk(self.vectors, queries, k)
                return dist, self.ids[idx]
            self.hnsw.hnsw.efSearch = max(self.params.ef_search, k)
            sq, idx = self.hnsw.search(queries, k)
            if (idx < 0).any():
                # HNSW labels a slot it could not fill -1 (a graph the search cannot walk far
                # enough, e.g. many identical vectors); self.ids[-1] would turn each into the
                # last clip added at a huge distance. The exact answer is complete.
                dist, idx = exact_topk(self.vectors, queries, k)
                return dist, self.ids[idx]
            return np.sqrt(np.maximum(sq, 0)), self.ids[idx]
