"""The HNSW graphs of a catalogue's snapshot (snapshot.py): read by a web process's first search,
written by the worker.

A graph is saved as FAISS's serialised bytes (graph_<name>) beside the parameters it was built
with (hnsw: M, efConstruction), over exactly the vectors a new index takes from the file: the
finite ones, in key order, cut into the instrument's subspace. A web process uses one only when
search.load_hnsw accepts it (those parameters, those vectors in that order, links inside it).

[choice] The worker grows the old snapshot's graphs instead of building new ones when the new
snapshot's rows are the old ones in the same order with rows appended after them (the old keys
are a prefix of the new ones: nothing removed, no key among them, the same parameters) and the
old graph passes the web process's checks: the new vectors are added to it (HNSW adds without
a rebuild) and it still holds exactly the new file's vectors in key order. Otherwise, or where
the old graph fails a check (logged as a warning naming the file, the member and the reason),
it is built from scratch. A grown graph is not the bytes a build of the same vectors would give
(FAISS inserts in another order), but an HNSW graph over the same vectors with the same
parameters. Each graph built or grown is logged at INFO (the import benchmark counts them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from evalsite.retrieval import search

if TYPE_CHECKING:
    from evalsite.retrieval.models import ModelVersion
    from evalsite.retrieval.snapshot import Snapshot

log = logging.getLogger(__name__)


def graph(snap: Snapshot, condition: str, vectors: np.ndarray, params: search.HnswParams):
    """The worker's HNSW graph of condition in snap's file when it is sound and over exactly
    vectors (N, d) with params (search.load_hnsw), else None: logged, and the caller builds it.
    None without a word when the snapshot has no graphs (written at or under EXACT_MAX)."""
    if snap.hnsw is None or snap.path is None:
        return None
    name = f"graph_{condition}"
    if snap.hnsw != (params.m, params.ef_construction):
        problem = (f"built with M={snap.hnsw[0]}, efConstruction={snap.hnsw[1]}; this process "
                   f"uses M={params.m}, efConstruction={params.ef_construction}")  # fmt: skip
    else:
        try:  # reading the whole member checks its CRC
            with np.load(snap.path, allow_pickle=False) as f:
                data = f[name]
            index, problem = search.load_hnsw(data, vectors, params)
        except Exception as exc:  # the rows are the truth, a graph an optimisation
            index, problem = None, f"{type(exc).__name__}: {exc}"
        if index is not None:
            return index
    log.warning("%s: %s not a usable HNSW graph (%s); building it instead", snap.path, name,
                problem)  # fmt: skip
    return None


def searchable(vectors: np.ndarray) -> int:
    """How many of the vectors (N, D) an index holds (service._add_vectors leaves out one that
    is not finite)."""
    return int(np.isfinite(vectors).all(axis=1).sum())


def _grown_from(old: Snapshot, keys: np.ndarray, params: search.HnswParams) -> int | None:
    """How many of the new snapshot's searchable rows the old one's graphs hold, when the new
    rows (keys (N,), increasing) are the old ones with rows appended after them and the old
    graphs were built with params; None when they must be built from scratch."""
    n = len(old.keys)
    if old.hnsw != (params.m, params.ef_construction) or not n or n > len(keys):
        return None
    if not np.array_equal(keys[:n], old.keys):
        return None
    return searchable(old.vectors)


def members(
    version: ModelVersion,
    old: Snapshot,
    keys: np.ndarray,
    vectors: np.ndarray,
    exact_max: int,
    params: search.HnswParams,
    grow: bool = True,
) -> dict[str, np.ndarray]:
    """The members holding each instrument's HNSW graph (and hnsw, the parameters they were
    built with) when an index over the new snapshot's vectors (N, D), of keys (N,), would build
    one (more than exact_max searchable), else none. Each graph is grown from old's (see
    [choice] above) where it can be and grow is set, else built from scratch."""
    import faiss

    finite = vectors[np.isfinite(vectors).all(axis=1)]  # (N', D)
    if len(finite) <= exact_max:
        return {}
    held = _grown_from(old, keys, params) if grow else None
    out: dict[str, np.ndarray] = {"hnsw": np.array([params.m, params.ef_construction], np.int64)}
    for condition in version.conditions:
        sub = np.ascontiguousarray(version.subspace(finite, condition))  # (N', d)
        grown = graph(old, condition, sub[:held], params) if held is not None else None
        if grown is None or held is None:
            out[f"graph_{condition}"] = search.serialize_hnsw(sub, params)
            log.info("graph_%s built over %s vectors", condition, len(sub),
                     extra={"graph": "built"})  # fmt: skip
            continue
        if held < len(sub):
            grown.add(sub[held:])  # (N' - held, d) appended in key order
        out[f"graph_{condition}"] = faiss.serialize_index(grown)
        log.info("graph_%s grown from %s to %s vectors", condition, held, len(sub),
                 extra={"graph": "grown"})  # fmt: skip
    return out
