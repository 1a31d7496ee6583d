"""Nearest-neighbour search in one instrument subspace: exact below a size, FAISS HNSW above.

Distances are Euclidean in the subspace, the model's own masked distance d(x, y; m_c).
Exact search (numpy, float64 accumulation) serves catalogues of up to EXACT_MAX vectors: at that
size one query costs well under a millisecond and needs no index. Above it, a FAISS
IndexHNSWFlat (M, efConstruction, efSearch below, tuned with `manage.py retrieval_bench` to
recall@10 >= 0.95) answers approximately; it is built from the database once per process and
then kept in step without a rebuild: clips added are added to the graph, clips that leave stay
in it as dead entries that no search returns, until more than DEAD_MAX of it is dead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_MAX = 20_000  # vectors per subspace; above it the HNSW index is used
# [choice] Share of an HNSW index's entries that may be dead (their clip left the scope) before it
# is rebuilt: a search walks past dead entries to fill k with live ones, so with up to half dead it
# visits roughly up to twice what a clean index would, and a rebuild (about 1 ms per vector on 2
# cores) is paid at most once per as many removals as the index then has live entries.
DEAD_MAX = 0.5


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


def serialize_hnsw(base: np.ndarray, params: HnswParams = DEFAULT_HNSW) -> np.ndarray:
    """The bytes (uint8) of an HNSW graph built over base (N, d), for load_hnsw."""
    import faiss

    return faiss.serialize_index(build_hnsw(base, params))


def load_hnsw(data: np.ndarray, base: np.ndarray, params: HnswParams) -> tuple[object | None, str]:
    """(graph, "") from serialize_hnsw's bytes when they are an HNSW graph over exactly base
    (N, d), in that order, built with params' M and efConstruction; else (None, the reason).
    Its links are checked to stay inside the graph: FAISS reads them unchecked, and a search
    would follow one past the end."""
    import faiss

    if data.dtype != np.uint8 or data.ndim != 1:
        return None, f"{data.dtype} {data.shape}; expected uint8 bytes"
    try:
        graph = faiss.deserialize_index(data)
    except RuntimeError as exc:  # FAISS's reader: truncated, not an index, a bad field
        return None, f"not a FAISS index ({str(exc).splitlines()[0][:200]})"
    if not isinstance(graph, faiss.IndexHNSWFlat):
        return None, f"a {type(graph).__name__}; expected IndexHNSWFlat"
    hnsw: Any = graph.hnsw  # Any: faiss's stubs lack the HNSW graph's fields
    n = len(base)
    storage: Any = faiss.downcast_index(graph.storage)
    built = (hnsw.nb_neighbors(1), hnsw.efConstruction)
    if built != (params.m, params.ef_construction):
        return None, (f"built with M={built[0]}, efConstruction={built[1]}; this process uses "
                      f"M={params.m}, efConstruction={params.ef_construction}")  # fmt: skip
    if graph.d != base.shape[1] or graph.ntotal != n:
        return None, f"{graph.ntotal} x {graph.d}; expected {n} x {base.shape[1]}"
    held = faiss.vector_to_array(storage.codes).view(np.float32)
    if not np.array_equal(held, base.reshape(-1)):
        return None, "its vectors are not the snapshot's (other values or another order)"
    if graph.metric_type != faiss.METRIC_L2:
        return None, f"metric {graph.metric_type}; expected L2 ({faiss.METRIC_L2})"
    if not _links_inside(hnsw, n):
        return None, "its links are not a graph over its entries"
    return graph, ""


def _links_inside(hnsw: Any, n: int) -> bool:
    """Whether the graph's levels, offsets and links describe n entries whose links stay among
    them (what a search follows without a bounds check)."""
    import faiss

    links, offsets = faiss.vector_to_array(hnsw.neighbors), faiss.vector_to_array(hnsw.offsets)
    levels = faiss.vector_to_array(hnsw.levels)  # (n,) 1 + the top level of each entry
    per_level = faiss.vector_to_array(hnsw.cum_nneighbor_per_level)  # links up to each level
    if len(levels) != n or len(offsets) != n + 1 or (n and not 0 <= hnsw.entry_point < n):
        return False
    if n and (levels.min() < 1 or levels.max() >= len(per_level)):
        return False
    if offsets[0] != 0 or not np.array_equal(np.diff(offsets), per_level[levels]):
        return False
    return offsets[-1] == len(links) and (not len(links) or -1 <= links.min() <= links.max() < n)


# Given the vectors (N, d) an index is about to build its graph over, a graph already built over
# exactly them with its params (or None: the index builds one)
GraphSource = Callable[[np.ndarray, HnswParams], object | None]


class SubspaceIndex:
    """Vectors of one subspace with their ids (clip ids, what a search returns) and keys (the
    embedding row each came from); exact search or an HNSW index by size.

    `retain(keys)` says which keys are still wanted. An entry whose key is not is dead: never
    returned. An exact index drops dead entries at once (a copy of its arrays, no index to
    build); an HNSW index keeps them in its graph, where they still help a search find its way,
    and leaves them out of every answer, until more than DEAD_MAX of its entries are dead: then
    it is rebuilt from the live ones (exact again if they are no more than exact_max).
    """

    def __init__(self, dim: int, exact_max: int = EXACT_MAX, params: HnswParams = DEFAULT_HNSW):
        self.dim = dim
        self.exact_max = exact_max
        self.params = params
        self.ids = np.zeros(0, np.int64)
        self.keys = np.zeros(0, np.int64)
        self.vectors = np.zeros((0, dim), np.float32)
        self.alive = np.zeros(0, bool)
        self.n_alive = 0
        # keys taken but never searchable (a vector that is not finite): not held, not returned
        self.left_out = np.zeros(0, np.int64)
        self.hnsw: Any = None  # a faiss.IndexHNSWFlat above exact_max
        self.hnsw_builds = 0  # HNSW graphs built from scratch (the cost a rebuild pays)
        self._selector: tuple | None = None  # (bitmap, faiss selector) of the live entries
        self.lock = threading.Lock()

    def __len__(self) -> int:
        """Live entries: what a search can return."""
        return self.n_alive

    @property
    def stored(self) -> int:
        """Entries held, live and dead."""
        return len(self.ids)

    @property
    def method(self) -> str:
        return "hnsw" if self.hnsw is not None else "exact"

    def add(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        keys: np.ndarray | None = None,
        graph: GraphSource | None = None,
    ) -> None:
        """Add live entries; keys (default: the ids) must not be held already. Where this makes
        an index that had no graph build one, graph is asked for a built one first."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.asarray(ids, np.int64)
        keys = ids if keys is None else np.asarray(keys, np.int64)
        with self.lock:
            self.ids = np.concatenate([self.ids, ids])
            self.keys = np.concatenate([self.keys, keys])
            self.vectors = np.concatenate([self.vectors, vectors])
            self.alive = np.concatenate([self.alive, np.ones(len(ids), bool)])
            self.n_alive += len(ids)
            self._selector = None
            if self.hnsw is not None:
                self.hnsw.add(vectors)
            elif self.stored > self.exact_max:
                self._build(graph)

    def leave_out(self, keys: np.ndarray) -> None:
        """Record keys taken but not added (their vector is not finite), so that retain does
        not ask for them again and the caller can count them."""
        with self.lock:
            self.left_out = np.union1d(self.left_out, np.asarray(keys, np.int64))

    def retain(self, keys: np.ndarray) -> np.ndarray:
        """Keep live exactly the entries whose key is in keys (a dead one whose key is wanted
        again comes back to life, so its vector is never held twice), and of the keys left out
        those still wanted; returns the wanted keys neither held nor left out, for the caller
        to add."""
        keys = np.asarray(keys, np.int64)  # distinct (embedding ids)
        with self.lock:
            self.alive = np.isin(self.keys, keys)
            self.n_alive = int(self.alive.sum())
            self._selector = None
            self.left_out = self.left_out[np.isin(self.left_out, keys)]
            missing = keys[~np.isin(keys, self.keys) & ~np.isin(keys, self.left_out)]
            dead = self.stored - self.n_alive
            if dead and (self.hnsw is None or dead > DEAD_MAX * self.stored):
                self._compact()
        return missing

    def _compact(self) -> None:
        """Drop the dead entries; an HNSW graph is rebuilt over the live ones."""
        keep = self.alive
        self.ids, self.keys, self.vectors = self.ids[keep], self.keys[keep], self.vectors[keep]
        self.alive = np.ones(len(self.ids), bool)
        if self.hnsw is not None:
            self.hnsw = None
            if self.stored > self.exact_max:
                self._build()

    def _build(self, graph: GraphSource | None = None) -> None:
        self.hnsw = graph(self.vectors, self.params) if graph is not None else None
        if self.hnsw is None:
            self.hnsw = build_hnsw(self.vectors, self.params)
            self.hnsw_builds += 1

    def _live_only(self):
        """A FAISS selector of the live entries (None when none is dead), kept until they
        change; the bitmap is held beside it because FAISS only points at it."""
        import faiss

        if self.n_alive == self.stored:
            return None
        if self._selector is None:
            bitmap = np.packbits(self.alive, bitorder="little")
            self._selector = (bitmap, faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)))
        return self._selector[1]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances (Q, k'), ids (Q, k')) of live entries with k' = min(k, live entries),
        closest first: always k' real ids (exact search where HNSW cannot fill k)."""
        import faiss

        queries = np.atleast_2d(np.asarray(queries, np.float32))
        k = min(k, len(self))
        with self.lock:
            if self.hnsw is None:  # holds no dead entry (retain drops them at once)
                dist, idx = exact_topk(self.vectors, queries, k)
                return dist, self.ids[idx]
            # faiss's stubs lack SearchParametersHNSW (in FAISS since 1.7.3)
            params = faiss.SearchParametersHNSW(efSearch=max(self.params.ef_search, k))  # type: ignore[attr-defined]
            selector = self._live_only()
            if selector is not None:
                params.sel = selector
            sq, idx = self.hnsw.search(queries, k, params=params)
            if (idx < 0).any():
                # HNSW labels a slot it could not fill -1 (a graph the search cannot walk far
                # enough, e.g. many identical vectors, or many dead entries); self.ids[-1]
                # would turn each into the last clip added at a huge distance. The exact
                # answer over the live entries is complete.
                live = np.flatnonzero(self.alive)
                dist, idx = exact_topk(self.vectors[live], queries, k)
                return dist, self.ids[live[idx]]
            return np.sqrt(np.maximum(sq, 0)), self.ids[idx]
