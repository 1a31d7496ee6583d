"""Per-instrument indexes over the catalogue, kept in sync with the database, and the search the
page and the JSON API call.

One SubspaceIndex per (checkpoint version, catalogue or all, condition), held by the process.
Before each search the index takes the embeddings added since it last looked (ids are
increasing, so that is one indexed query) and adds them; if clips were removed or failed since,
it is rebuilt. Only whole-mix clips are searched: stem-combination clips built for catch trials
(Clip.meta["kind"]) are not pieces of the catalogue.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from evalsite.retrieval.models import Embedding, ModelVersion
from evalsite.retrieval.search import EXACT_MAX, SubspaceIndex
from evalsite.stimuli.models import Clip

_lock = threading.Lock()
_registry: dict[tuple, tuple[SubspaceIndex, int]] = {}


@dataclass(frozen=True)
class Hit:
    clip_id: int
    piece: str
    distance: float


def scope(version: ModelVersion, catalogue_id: int | None = None):
    qs = Embedding.objects.filter(version=version, clip__status=Clip.Status.READY).exclude(
        clip__meta__has_key="kind"
    )
    return qs.filter(clip__catalogue_id=catalogue_id) if catalogue_id else qs


def _decode(rows) -> tuple[np.ndarray, np.ndarray, int]:
    ids, vecs, last = [], [], 0
    for emb_id, clip_id, blob in rows:
        ids.append(clip_id)
        vecs.append(np.frombuffer(bytes(blob), dtype="<f4"))
        last = max(last, emb_id)
    return np.asarray(ids, np.int64), np.stack(vecs) if vecs else None, last


def synced_index(
    version: ModelVersion, condition: str, catalogue_id: int | None = None, exact_max=EXACT_MAX
) -> SubspaceIndex:
    """The condition's index over the scope, updated with what the database holds now."""
    key = (version.pk, catalogue_id, condition, exact_max)
    qs = scope(version, catalogue_id)
    with _lock:
        index, last = _registry.get(key, (None, 0))
        if index is not None and qs.count() < len(index):  # clips removed or failed: rebuild
            index, last = None, 0
        if index is None:
            probe = version.subspace(np.zeros((1, version.dim), np.float32), condition)
            index = SubspaceIndex(probe.shape[1], exact_max=exact_max)
        rows = qs.filter(id__gt=last).order_by("id").values_list("id", "clip_id", "vector")
        ids, vecs, newest = _decode(rows.iterator(chunk_size=2000))
        if vecs is not None:
            index.add(ids, version.subspace(vecs, condition))
            last = max(last, newest)
        _registry[key] = (index, last)
    return index


def forget_indexes() -> None:
    with _lock:
        _registry.clear()


def search_vector(
    version: ModelVersion,
    vector: np.ndarray,
    condition: str,
    k: int = 10,
    catalogue_id: int | None = None,
    exclude_piece: str = "",
    exclude_clip: int | None = None,
) -> tuple[list[Hit], str]:
    """The k nearest pieces (one clip per piece, the closest) to vector (D,) in the condition's
    subspace, leaving out exclude_piece / exclude_clip. Returns (hits, method)."""
    index = synced_index(version, condition, catalogue_id)
    query = version.subspace(np.asarray(vector, np.float32)[None, :], condition)  # (1, d)
    fetch = min(len(index), 4 * k + 8)
    while True:
        dist, ids = index.search(query, fetch)
        pieces = dict(Clip.objects.filter(pk__in=ids[0].tolist()).values_list("pk", "piece"))
        hits, seen = [], set()
        for d, cid in zip(dist[0].tolist(), ids[0].tolist()):
            piece = pieces.get(cid, "") or f"clip {cid}"
            if cid == exclude_clip or (exclude_piece and piece == exclude_piece) or piece in seen:
                continue
            seen.add(piece)
            hits.append(Hit(cid, piece, float(d)))
        if len(hits) >= k or fetch >= len(index):
            return hits[:k], index.method
        fetch = min(len(index), fetch * 4)
