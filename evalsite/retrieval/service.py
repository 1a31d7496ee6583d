"""Per-instrument indexes over the catalogue, kept in sync with the database, and the search the
page and the JSON API call.

One SubspaceIndex per (checkpoint version, catalogue or all, condition), held by the process.
A new one starts from the catalogue's snapshot where the embedding worker saved one (snapshot.py:
the rows as the worker last saw them, read from a file, not from the database; the all-catalogues
index from every catalogue's snapshot, merged, without their graphs), else empty, and is then
synced as below like any other.
Before each search the index takes the embeddings added since it last looked (ids are
increasing, so that is one indexed query) and adds them. Then it checks that the rows it holds
live are still exactly the scope's rows up to the newest it took, by their count and the sum of
a 32-bit hash of each id (computed by the database): a count alone misses one clip failing while
another is added, and a plain id sum misses two leaving while two others with the same sum
return (41 + 44 = 42 + 43). When they are not (a clip removed, failed or back, a row committed
late, a row replaced), it reads the scope's ids up to that newest one (no vectors), marks the
rows no longer there dead (never returned; see SubspaceIndex for when that rebuilds), revives
held rows that are back, and reads the vectors of only the rows it does not hold. The index is
keyed by embedding row, so a clip that leaves and comes back is never held twice, and a clip
whose row was replaced is searched by its new vector only.
A search of a scope that has not changed since the index last looked (the common case) pays
one aggregate for all of this, before the two queries above: count, hash sum and newest id of
the whole scope, equal to what the index holds and no newer than the newest it took. The API
reads that aggregate in the same query as its coverage counts and hands it to every
instrument's index (query.coverage); only a difference goes on to the two queries.
Indexes no search can use again are released: another checkpoint's at a search with the current
one (a web process serves one checkpoint, CSN_CHECKPOINT), a deleted catalogue's at the next
search that builds an index, or at a search once SWEEP_EVERY_S have passed since the last
check (one query of the held catalogues' ids; the warm search between pays nothing more). And
the process holds at most settings.CSN_RETRIEVAL_INDEXES, dropping the least recently searched
first: one is rebuilt from the database, as in a fresh process, when it is searched again.
A hit whose clip is not ready is never returned. Only
whole-mix clips are searched: stem-combination clips built for catch trials (Clip.meta["kind"])
are not pieces of the catalogue.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import BigIntegerField, Count, F, Func, Max, Sum

from evalsite.retrieval import snapshot, snapshot_graphs
from evalsite.retrieval.models import Embedding, ModelVersion
from evalsite.retrieval.search import EXACT_MAX, GraphSource, SubspaceIndex
from evalsite.stimuli.models import Catalogue, Clip, piece_key

log = logging.getLogger(__name__)
_lock = threading.Lock()
# (version id, catalogue id or None, condition, exact_max) -> (index, newest embedding id in it,
# (count, id-hash sum) of the embedding rows in it); least recently searched first
_registry: OrderedDict[tuple, tuple[SubspaceIndex, int, tuple[int, int]]] = OrderedDict()
# [choice] Seconds between checks, by a warm search, for indexes of deleted catalogues: a delete
# in one web process is not seen by the others, and a check on every search would add a query
# to a search that otherwise reads the database once.
SWEEP_EVERY_S = 60.0
_swept = -math.inf  # time.monotonic() of the last check


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


class _IdHash(Func):
    """A 32-bit hash of an integer column, computed by the database. On PostgreSQL its own
    hashint8 (the hash its hash indexes use; C, no dearer than reading the column: at 10,000
    rows the arithmetic below cost about 35 ms more per check). Elsewhere SQL that SQLite runs
    without overflow (products stay under 2^63; xor is (a | b) - (a & b), SQLite having no
    xor): the xorshift-multiply finaliser of Thomas Mueller's hash32 (constant 0x45d9f3b).
    Either, summed over rows, tells apart two sets of ids with the same count and sum but for a
    chance of about 2^-32 per change. Hashes are only ever compared with others the same
    database computed."""

    output_field = BigIntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])

        def xorshift(x: str) -> str:
            s = f"({x} >> 16)"
            return f"(({x} | {s}) - ({x} & {s}))"

        x = f"({column} & 4294967295)"
        for _ in range(2):
            x = f"(({xorshift(x)} * 73244475) & 4294967295)"
        return xorshift(x), params

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"hashint8(({column})::bigint)", params


def _hashed(qs):
    return qs.annotate(id_hash=_IdHash("id"))


def _decode(rows) -> tuple[np.ndarray, np.ndarray | None, list[int], int]:
    """(clip ids, vectors, embedding ids, sum of the id hashes) of the rows."""
    ids, vecs, emb_ids, hashes = [], [], [], 0
    for emb_id, clip_id, blob, id_hash in rows:
        ids.append(clip_id)
        vecs.append(np.frombuffer(bytes(blob), dtype="<f4"))
        emb_ids.append(emb_id)
        hashes += id_hash
    return np.asarray(ids, np.int64), np.stack(vecs) if vecs else None, emb_ids, hashes


def _held(qs) -> tuple[int, int]:
    """(count, sum of id hashes) of the embedding rows: what an index over them holds."""
    row = _hashed(qs).aggregate(n=Count("id"), s=Sum(F("id_hash")))
    return row["n"], int(row["s"] or 0)


def scope_state(embedding_id) -> dict:
    """Aggregates for a query's .aggregate() that give what synced_index compares: the count,
    the id hash sum and the newest id of the embedding rows, whose id is embedding_id (a field
    name or path). Read with other counts in one query and handed to synced_index as state."""
    return {"n": Count(embedding_id), "s": Sum(_IdHash(embedding_id)), "top": Max(embedding_id)}


def _state(row: dict) -> tuple[int, int, int]:
    return row["n"], int(row["s"] or 0), row["top"] or 0


def _unchanged(state: tuple[int, int, int], last: int, held: tuple[int, int]) -> bool:
    """Whether a scope of state (count, id hash sum, newest id) is still the rows an index
    took, up to id last, with (count, id hash sum) held. Any row newer than last, or a count
    or sum that differs, means a change."""
    return state[:2] == held and state[2] <= last


def _add(index: SubspaceIndex, version: ModelVersion, condition: str, rows) -> tuple[int, int]:
    """Add rows (id, clip id, vector, id hash) to the index; (count, hash sum) of the rows taken.
    A row whose vector is not finite anywhere, in this instrument's part or another's (ingest
    refuses them and migration 0002 deleted older ones: a row written otherwise), is taken but
    left out of the index (index.leave_out): it is never returned, in any instrument, and no
    distance is NaN; the search counts it as not embedded (unsearchable), as model choices and
    designs treat it as no embedding."""
    ids, vecs, emb_ids, hashes = _decode(rows)
    if vecs is not None:
        _add_vectors(index, version, condition, ids, vecs, np.asarray(emb_ids, np.int64))
    return len(emb_ids), hashes


def _add_vectors(
    index: SubspaceIndex,
    version: ModelVersion,
    condition: str,
    ids: np.ndarray,
    vecs: np.ndarray,
    keys: np.ndarray,
    graph: GraphSource | None = None,
) -> None:
    """_add of decoded rows: clip ids (N,), full vectors (N, D), embedding ids (N,); graph as
    for SubspaceIndex.add."""
    finite = np.isfinite(vecs).all(axis=1)  # (N,) the whole vector, every instrument's part
    if not finite.all():
        log.warning(
            "clips %s: embedding with checkpoint %s not finite; left out of the search",
            ids[~finite].tolist(), version.checkpoint_id,
        )  # fmt: skip
        index.leave_out(keys[~finite])
    sub = version.subspace(vecs[finite], condition)  # (N', d)
    index.add(ids[finite], sub, keys=keys[finite], graph=graph)


def _resync(index: SubspaceIndex, version: ModelVersion, condition: str, qs) -> tuple[int, int]:
    """Make the index's live rows exactly the rows of qs: one query of their ids, then the
    vectors of those the index does not hold (in chunks, under SQLite's limit on query
    parameters). Returns (count, hash sum) of the rows of qs."""
    wanted = list(_hashed(qs).values_list("id", "id_hash").iterator(chunk_size=20_000))
    missing = index.retain(np.fromiter((i for i, _ in wanted), np.int64, len(wanted)))
    for s in range(0, len(missing), 2000):
        rows = _hashed(Embedding.objects.filter(pk__in=missing[s : s + 2000].tolist()))
        _add(index, version, condition, rows.order_by("id").values_list(*_COLUMNS))
    return len(wanted), sum(h for _, h in wanted)


_COLUMNS = ("id", "clip_id", "vector", "id_hash")


def synced_index(
    version: ModelVersion,
    condition: str,
    catalogue_id: int | None = None,
    exact_max=EXACT_MAX,
    state: tuple[int, int, int] | None = None,
) -> SubspaceIndex:
    """The condition's index over the scope, updated with what the database holds now, or as
    state says it held when the caller read it (scope_state) earlier in the same request: the
    index then answers as of that read, and is read again only where it differs."""
    key = (version.pk, catalogue_id, condition, exact_max)
    qs = scope(version, catalogue_id)
    snapshot.forget_shared(older_than_s=snapshot.SHARED_FOR_S)
    with _lock:
        if key not in _registry or time.monotonic() - _swept >= SWEEP_EVERY_S:
            _release_unused(version.pk)
        index, last, held = _registry.get(key, (None, 0, (0, 0)))
        if index is not None:
            _registry.move_to_end(key)
        fresh = index is None
        if index is None:
            index, last, held = _cold_index(version, condition, catalogue_id, exact_max)
        if last or not fresh:  # holds rows (a warm index, or one loaded from a snapshot)
            current = state or _state(qs.aggregate(**scope_state("id")))
            if _unchanged(current, last, held):
                if fresh:
                    _register(key, index, last, held)
                return index
            if _held(qs.filter(id__lte=last)) != held:  # rows left, came back or came late
                held = _resync(index, version, condition, qs.filter(id__lte=last))
        rows = _hashed(qs.filter(id__gt=last)).order_by("id").values_list(*_COLUMNS)
        rows = list(rows.iterator(chunk_size=2000))
        n, hashes = _add(index, version, condition, rows)
        if n:
            last = max(last, rows[-1][0])
            held = (held[0] + n, held[1] + hashes)
        _register(key, index, last, held)
    return index


def _register(key: tuple, index: SubspaceIndex, last: int, held: tuple[int, int]) -> None:
    """Record (under _lock) what the index holds; drop the least recently searched beyond
    settings.CSN_RETRIEVAL_INDEXES."""
    _registry[key] = (index, last, held)
    while len(_registry) > settings.CSN_RETRIEVAL_INDEXES:
        _registry.popitem(last=False)


def _cold_index(
    version: ModelVersion, condition: str, catalogue_id: int | None, exact_max: int
) -> tuple[SubspaceIndex, int, tuple[int, int]]:
    """(index, newest key, (count, id-hash sum)) of a new index: empty, or holding the rows of
    the catalogue's snapshot (snapshot.py; one reading of the file for all its instruments) and,
    above exact_max, the HNSW graph the worker built over them, which the caller then syncs with
    the database. For all catalogues (None), the rows of every catalogue's snapshot, merged: a
    graph over them is built here, the catalogues' graphs being over other rows."""
    probe = version.subspace(np.zeros((1, version.dim), np.float32), condition)
    index = SubspaceIndex(probe.shape[1], exact_max=exact_max)
    snap = snapshot.load_shared(version, catalogue_id, condition)
    if snap is None or not len(snap.keys):
        return index, 0, (0, 0)

    def saved_graph(vectors: np.ndarray, params) -> object | None:
        return snapshot_graphs.graph(snap, condition, vectors, params)

    _add_vectors(index, version, condition, snap.ids, snap.vectors, snap.keys, saved_graph)
    return index, snap.last, snap.held


def _release_unused(version_id: int) -> None:
    """Drop (under _lock) the indexes of another checkpoint than version_id's and those of
    catalogues that no longer exist."""
    global _swept
    _swept = time.monotonic()
    held = {key[1] for key in _registry if key[1] is not None}
    alive = set(Catalogue.objects.filter(pk__in=held).values_list("pk", flat=True))
    for key in list(_registry):
        if key[0] != version_id or (key[1] is not None and key[1] not in alive):
            del _registry[key]


def unsearchable(
    version: ModelVersion,
    condition: str,
    catalogue_id: int | None = None,
    state: tuple[int, int, int] | None = None,
) -> int:
    """How many embedding rows of the scope are left out of every search (not finite): the
    same rows in every instrument's index, read from condition's, synced as for synced_index
    (with the state a search of condition has just synced it to: no query)."""
    return len(synced_index(version, condition, catalogue_id, state=state).left_out)


def held_indexes() -> list[tuple]:
    """Keys (version id, catalogue id or None, condition, exact_max) of the indexes this process
    holds, least recently searched first."""
    with _lock:
        return list(_registry)


def forget_indexes() -> None:
    global _swept
    with _lock:
        _registry.clear()
        _swept = -math.inf
    snapshot.forget_shared()


def search_vector(
    version: ModelVersion,
    vector: np.ndarray,
    condition: str,
    k: int = 10,
    catalogue_id: int | None = None,
    exclude_piece: tuple | None = None,
    exclude_clip: int | None = None,
    exact_max: int = EXACT_MAX,
    state: tuple[int, int, int] | None = None,
) -> tuple[list[Hit], str]:
    """The k nearest pieces (one clip per piece, the closest) to vector (D,) in the condition's
    subspace, leaving out exclude_piece (a Clip.piece_key) / exclude_clip; state as for
    synced_index. Pieces are told apart by Clip.piece_key, not by name: two datasets, or two
    catalogues, may each have a Track00001. Returns (hits, method)."""
    index = synced_index(version, condition, catalogue_id, exact_max, state)
    query = version.subspace(np.asarray(vector, np.float32)[None, :], condition)  # (1, d)
    fetch = 4 * k + 8
    while True:
        # Another request may add entries meanwhile: fetch is clamped to one reading of the size
        # and grows from its unclamped value, so a first look at an empty index (0) still ends.
        size = len(index)
        fetch = min(size, fetch)
        dist, ids = index.search(query, fetch)
        ready = Clip.objects.filter(pk__in=ids[0].tolist(), status=Clip.Status.READY)
        columns = ready.values_list("pk", "catalogue_id", "dataset", "piece")
        pieces = {row[0]: row for row in columns}
        hits, seen = [], set()
        for d, cid in zip(dist[0].tolist(), ids[0].tolist()):
            if cid not in pieces or not math.isfinite(d):  # failed or removed since it looked
                continue
            key = piece_key(*pieces[cid])
            if cid == exclude_clip or key == exclude_piece or key in seen:
                continue
            seen.add(key)
            hits.append(Hit(cid, key[2], float(d)))
        if len(hits) >= k or fetch >= size:
            return hits[:k], index.method
        fetch = max(fetch * 4, 4 * k + 8)
