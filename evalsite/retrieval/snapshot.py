"""A catalogue's search rows saved by the worker that embeds it, so that a web process's first
search loads one file instead of reading and decoding every vector from the database once per
instrument.

A snapshot is the scope's embedding rows (service.scope) as the worker last saw them: embedding
ids (keys, increasing), clip ids, the full float32 vectors (N, D) and the database's id hash of
each key, in one uncompressed .npz under MEDIA_ROOT/retrieval-index/ (the media the web process
and the workers share), named by a random generation that an IndexSnapshot row records. A web
process loads only the file of the generation its database names, and checks that the file says
so too; any other file, or one it cannot read or whose arrays disagree (in dtype, shape or
length, with each other or with the checkpoint's dimension, or keys not increasing), is logged
with its reason and ignored: the index is built from the rows, and the worker's next refresh,
which finds no usable snapshot, writes a new generation in its place.

Above EXACT_MAX searchable rows the file also holds each instrument's HNSW graph (graph_<name>,
FAISS's serialised bytes, built over exactly the vectors a new index takes from the file, in
that order) and the parameters they were built with (hnsw: M, efConstruction; efSearch is not
a build parameter), so that a web process's first search deserialises the graph instead of
building it (about 1 ms per vector per instrument). Being members of the same file, graphs share
its generation, its CRC checks and its removal and sweep. A graph built with other parameters
than the process uses, over other vectors, or damaged (a bad CRC, truncated, not an HNSW graph,
links outside it) is logged with its reason and not used: the index builds its graph as before.
The graphs are read and written by snapshot_graphs: the worker grows the old snapshot's graphs
where the new rows are the old ones with rows appended after them, and builds them from scratch
otherwise. A catalogue's rows are read from the file once for all its instruments' indexes
(load_shared).

A snapshot is never trusted as the current scope: it stands in for the rows an index took, and
the index's usual sync (service.synced_index) then compares it with the database (count, id-hash
sum and newest id of the scope) and reads only what differs: rows added since, and the ids of a
scope that lost or regained rows. This is sound because an embedding row is never updated (a
new vector is a new row), so a key's vector in any snapshot is that row's vector; and because
the generation lives in the same database as the rows, a file written for another database
(one restored from a backup, whose ids may since name other rows) is never used.

[choice] The worker rewrites a snapshot after an embedding task only when the rows it lacks or
holds too many are at least REFRESH_SHARE of the scope (or there is none yet): a catalogue
imported in batches of CSN_EMBED_BATCH is then written about log(N) / log(1 + REFRESH_SHARE)
times, not N / batch times, each write reading from the database only what changed. A first
search reads at most that share of the rows from the database.

Files no row names do not pile up: a writer whose row does not commit (the catalogue deleted
meanwhile, the database gone) removes its file, and files that a killed writer left (its .npz
before the row committed, its .tmp inside np.savez) or whose removal failed are swept by the
worker after each refresh and at the catalogue's delete. [choice] Only files unchanged for
LEFTOVER_AFTER_S are swept: a younger one may be a writer's that is about to commit it (np.savez
keeps changing its .tmp, the rename keeps its time), and a web process never needs an unnamed
file (it loads the generation its row names, and reads rows when that file has gone).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from evalsite.retrieval import search, snapshot_graphs
from evalsite.retrieval.models import Embedding, IndexSnapshot, ModelVersion
from evalsite.stimuli.models import Catalogue, Clip

log = logging.getLogger(__name__)
FOLDER = "retrieval-index"
REFRESH_SHARE = 0.05  # see [choice] above
_READ_CHUNK = 2000  # vectors read per query (under SQLite's limit on query parameters)
LEFTOVER_AFTER_S = 3600  # see [choice] above: a file no row names is swept once this old
_NAME = re.compile(r"v(\d+)-c(\d+)-[0-9a-f]+\.(npz|tmp)")  # path_for's names and their .tmp
# [choice] Seconds a snapshot read for one instrument's index is kept for the catalogue's other
# instruments (a first search of each usually follows within seconds); see load_shared.
SHARED_FOR_S = 60.0


@dataclass(frozen=True)
class Snapshot:
    keys: np.ndarray  # (N,) embedding ids, increasing
    ids: np.ndarray  # (N,) clip ids
    vectors: np.ndarray  # (N, D) float32, the full vectors
    hashes: np.ndarray  # (N,) the database's id hash of each key (service._IdHash)
    path: Path | None = None  # the file read (its graphs are read from it when needed)
    hnsw: tuple[int, int] | None = None  # (M, efConstruction) of its graphs; None: no graphs

    @property
    def last(self) -> int:
        """The newest key held (0 when empty)."""
        return int(self.keys[-1]) if len(self.keys) else 0

    @property
    def held(self) -> tuple[int, int]:
        """(count, id-hash sum) of the keys held, as service.synced_index records an index's."""
        return len(self.keys), int(self.hashes.sum())


def path_for(version_id: int, catalogue_id: int, generation: str) -> Path:
    name = f"v{version_id}-c{catalogue_id}-{generation}.npz"
    return Path(settings.MEDIA_ROOT) / FOLDER / name


def load(version: ModelVersion, catalogue_id: int) -> Snapshot | None:
    """The catalogue's snapshot of the generation the database names, or None (none written, or
    its file missing, unreadable or not that generation's: logged, and the caller reads rows)."""
    row = IndexSnapshot.objects.filter(version=version, catalogue_id=catalogue_id).first()
    if row is None:
        return None
    return _read(path_for(version.pk, catalogue_id, row.generation), row.generation, version.dim)


def _read(path: Path, expected: str, dim: int) -> Snapshot | None:
    """The rows of the file (not its graphs: graph() reads one when an index needs it)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            generation = f["generation"]
            hnsw = f["hnsw"] if "hnsw" in f.files else None
            snap = Snapshot(f["keys"], f["ids"], f["vectors"], f["hashes"], path)
        problem = _disagreement(snap, generation, expected, dim)
        if not problem and hnsw is not None:
            if hnsw.shape != (2,) or hnsw.dtype != np.int64:
                problem = f"hnsw: {hnsw.dtype} {hnsw.shape}; expected int64 (2,)"
            snap = Snapshot(snap.keys, snap.ids, snap.vectors, snap.hashes, path,
                            (int(hnsw[0]), int(hnsw[1])))  # fmt: skip
    # Any failure to read it: gone meanwhile (OSError), empty (EOFError), truncated or a bad CRC
    # (zipfile.BadZipFile), not an .npz or a pickle (ValueError), a member missing (KeyError)...
    except Exception as exc:  # a snapshot is an optimisation: the rows are the truth
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        log.warning("%s: not a usable index snapshot (%s); reading rows instead", path, problem)
        return None
    return snap


def _read_named(version: ModelVersion, named: list[tuple[int, str]]) -> Snapshot | None:
    """The snapshot of one catalogue's (catalogue id, generation), or the rows of several in one
    (the all-catalogues search's: in key order, a key in two files held once, no graphs); a file
    that is not usable is logged and left out (the caller's sync reads its rows)."""
    snaps = [_read(path_for(version.pk, c, g), g, version.dim) for c, g in named]
    found = [snap for snap in snaps if snap is not None]
    if len(named) == 1 or not found:
        return found[0] if found else None
    # A clip moved between two catalogues' writes is in both files, with the same row's vector.
    keys, first = np.unique(np.concatenate([snap.keys for snap in found]), return_index=True)

    def merged(name: str) -> np.ndarray:
        return np.concatenate([getattr(snap, name) for snap in found])[first]

    return Snapshot(keys, merged("ids"), merged("vectors"), merged("hashes"))


_shared_lock = threading.Lock()
# at most one: (version id, catalogue id or None: all, generations) -> (snapshot, conditions
# that took it, when)
_shared: dict[tuple[int, int | None, tuple[str, ...]], tuple[Snapshot, set[str], float]] = {}


def load_shared(version: ModelVersion, catalogue_id: int | None, condition: str) -> Snapshot | None:
    """load() for condition's new index (catalogue_id None: every catalogue's snapshot, merged):
    the files are read once for all the instruments. The snapshot read is kept for the others
    until each has taken it, another snapshot is read, or SHARED_FOR_S have passed (so a process
    holds at most one beside its indexes); an instrument that takes it again (its index dropped)
    reads the files again."""
    rows = IndexSnapshot.objects.filter(version=version)
    if catalogue_id is not None:
        rows = rows.filter(catalogue_id=catalogue_id)
    named = sorted(rows.values_list("catalogue_id", "generation"))
    if not named:
        return None
    key = (version.pk, catalogue_id, tuple(generation for _, generation in named))
    with _shared_lock:
        snap, taken, when = _shared.get(key, (None, set(), 0.0))
        if snap is None or condition in taken or time.monotonic() - when > SHARED_FOR_S:
            _shared.clear()
            snap = _read_named(version, named)
            if snap is None:
                return None
            taken, when = set(), time.monotonic()
        taken.add(condition)
        if taken.issuperset(version.conditions):
            _shared.pop(key, None)
        else:
            _shared[key] = (snap, taken, when)
    return snap


def forget_shared(older_than_s: float = 0.0) -> None:
    """Drop the snapshot load_shared keeps, when it was read more than older_than_s ago."""
    with _shared_lock:
        for key, (_, _, when) in list(_shared.items()):
            if time.monotonic() - when >= older_than_s:
                del _shared[key]


def _disagreement(snap: Snapshot, generation: np.ndarray, expected: str, dim: int) -> str:
    """What in a file read is not the snapshot the row names ("" when nothing)."""
    if generation.shape != () or generation.dtype.kind != "U" or str(generation) != expected:
        return f"generation {generation!r}; expected {expected!r}"
    n = len(snap.keys) if snap.keys.ndim else 0
    shapes = {"keys": (n,), "ids": (n,), "hashes": (n,), "vectors": (n, dim)}
    for name, shape in shapes.items():
        array, dtype = getattr(snap, name), np.float32 if name == "vectors" else np.int64
        if array.shape != shape or array.dtype != dtype:
            return f"{name}: {array.dtype} {array.shape}; expected {np.dtype(dtype)} {shape}"
    if n > 1 and not (np.diff(snap.keys) > 0).all():  # refresh and the sync rely on the order
        return "keys: not increasing"
    return ""


def _empty(dim: int) -> Snapshot:
    return Snapshot(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, dim), np.float32),
                    np.zeros(0, np.int64))  # fmt: skip


def _read_vectors(keys: np.ndarray) -> dict[int, np.ndarray]:
    """{key: (D,) vector} of the embedding rows keys that still exist."""
    got: dict[int, np.ndarray] = {}
    for s in range(0, len(keys), _READ_CHUNK):
        rows = Embedding.objects.filter(pk__in=keys[s : s + _READ_CHUNK].tolist())
        got.update(
            (k, np.frombuffer(bytes(b), dtype="<f4")) for k, b in rows.values_list("id", "vector")
        )
    return got


def refresh(
    version: ModelVersion,
    catalogue_id: int,
    share: float = REFRESH_SHARE,
    exact_max: int | None = None,
    params: search.HnswParams | None = None,
    grow: bool = True,
) -> bool:
    """Write the catalogue's snapshot anew when it is missing or differs from the scope by at
    least share of its rows, or lacks the HNSW graphs (built with params) that a search over
    more than exact_max of the scope's rows would build; True when written. Reads the scope's
    ids (no vectors) and the vectors of only the rows the old snapshot lacks. exact_max and
    params default to search's EXACT_MAX and DEFAULT_HNSW, what a web process uses. The old
    snapshot's graphs are grown where they can be (snapshot_graphs.members), unless grow is
    False (the benchmark's "before")."""
    from evalsite.retrieval.service import _hashed, scope

    exact_max = search.EXACT_MAX if exact_max is None else exact_max
    params = params or search.DEFAULT_HNSW
    old = load(version, catalogue_id) or _empty(version.dim)
    wanted = np.array(
        list(_hashed(scope(version, catalogue_id)).order_by("id").values_list(
            "id", "clip_id", "id_hash")), np.int64,
    ).reshape(-1, 3)  # fmt: skip  # (N, 3) key, clip id, id hash
    keys = wanted[:, 0]
    kept = np.isin(keys, old.keys)  # (N,)
    changed = int((~kept).sum()) + int((~np.isin(old.keys, keys)).sum())
    exists = IndexSnapshot.objects.filter(version=version, catalogue_id=catalogue_id).exists()
    # Whether the snapshot being written needs graphs the old one lacks: judged by the scope's
    # rows (the old ones' finite vectors, and the new ones, whose vectors are not read yet: an
    # upper bound, and snapshot_graphs.members skips them where the rows read leave exact_max or
    # fewer), not by the old snapshot's, which grown past exact_max by less than share kept none.
    searchable = snapshot_graphs.searchable(
        old.vectors[np.searchsorted(old.keys, keys[kept])]) + int((~kept).sum())  # fmt: skip
    graphless = searchable > exact_max and old.hnsw != (params.m, params.ef_construction)
    if not len(keys) or (exists and changed < max(1.0, share * len(keys)) and not graphless):
        return False
    read = _read_vectors(keys[~kept])
    present = kept | np.isin(keys, list(read))  # a row deleted meanwhile is left out
    wanted, kept = wanted[present], kept[present]
    vectors = np.empty((len(wanted), version.dim), np.float32)  # (N, D)
    vectors[kept] = old.vectors[np.searchsorted(old.keys, wanted[kept, 0])]
    if read:
        vectors[~kept] = np.stack([read[k] for k in wanted[~kept, 0].tolist()])
    snap = Snapshot(wanted[:, 0], wanted[:, 1], vectors, wanted[:, 2])
    graphs = snapshot_graphs.members(version, old, snap.keys, vectors, exact_max, params, grow)
    _write(version, catalogue_id, snap, graphs)
    return True


def _write(
    version: ModelVersion, catalogue_id: int, snap: Snapshot, graphs: dict[str, np.ndarray]
) -> None:
    """Write the file (with graphs, snapshot_graphs.members) under a new generation (a
    temporary name, then renamed), then point the database at it; the old generation's file is
    removed once that commits. When the row does not commit, the new file is removed (a killed
    writer's is left to sweep)."""
    generation = secrets.token_hex(8)
    path = path_for(version.pk, catalogue_id, generation)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        members: dict[str, Any] = {"generation": np.array(generation), "keys": snap.keys,
                                   "ids": snap.ids, "vectors": snap.vectors,
                                   "hashes": snap.hashes, **graphs}  # fmt: skip
        with open(tmp, "wb") as f:
            np.savez(f, **members)
        tmp.replace(path)
        with transaction.atomic():
            row, created = IndexSnapshot.objects.select_for_update().get_or_create(
                version=version,
                catalogue_id=catalogue_id,
                defaults={"generation": generation, "rows": len(snap.keys)},
            )
            if not created:
                previous = path_for(version.pk, catalogue_id, row.generation)
                row.generation, row.rows = generation, len(snap.keys)
                row.save(update_fields=["generation", "rows", "written_at"])
                # A web process that read the old generation and opens it after this reads rows.
                remove_after_commit(previous)
    except BaseException:  # e.g. the catalogue deleted meanwhile: its foreign key fails at COMMIT
        _remove(tmp)
        _remove(path)
        raise


def _remove(path: Path) -> bool:
    """Remove a snapshot file if there (True); one that cannot be removed is logged and left."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("%s: could not remove this index snapshot file (%s); left as it is", path, exc)
        return False
    return True


def remove_after_commit(path: Path) -> None:
    """Remove the file once the transaction commits. Robust: a failure never fails what
    committed, nor the commit actions queued after it."""

    def remove_snapshot_file() -> None:  # a function: Django logs a robust one by __qualname__
        _remove(path)

    transaction.on_commit(remove_snapshot_file, robust=True)


def sweep(catalogue_id: int | None = None, older_than_s: float = LEFTOVER_AFTER_S) -> int:
    """Remove the snapshot files (of catalogue_id, or all) that no row names and that have not
    changed for older_than_s (see [choice] above); how many were removed."""
    folder = Path(settings.MEDIA_ROOT) / FOLDER
    if not folder.is_dir():
        return 0
    rows = IndexSnapshot.objects.all()
    if catalogue_id is not None:
        rows = rows.filter(catalogue_id=catalogue_id)
    named = {path_for(*row).name for row in rows.values_list("version", "catalogue", "generation")}
    before = time.time() - older_than_s
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _NAME.fullmatch(entry.name)
            if match is None or entry.name in named:
                continue  # not a snapshot file, or one a row names
            if catalogue_id is not None and int(match[2]) != catalogue_id:
                continue
            try:
                old = entry.stat(follow_symlinks=False).st_mtime < before
            except FileNotFoundError:  # removed meanwhile (committed over, or swept)
                continue
            if old and _remove(Path(entry.path)):
                removed += 1
    if removed:
        log.info("%s: removed %s snapshot files no row names", folder, removed)
    return removed


def refresh_catalogues(version: ModelVersion, clip_ids: list[int]) -> None:
    """Refresh the snapshots of the catalogues of clip_ids (just embedded). A failure is logged
    and never fails the embedding: a web process then reads the rows it lacks."""
    catalogues = set(Clip.objects.filter(pk__in=clip_ids).values_list("catalogue_id", flat=True))
    for catalogue_id in sorted(catalogues):
        try:
            refresh(version, catalogue_id)
        except Exception:  # an optimisation: the database stays the truth
            log.exception("catalogue %s: could not write its index snapshot", catalogue_id)
    try:
        sweep()  # what killed writers left, of any catalogue
    except Exception:
        log.exception("could not sweep leftover index snapshot files")


@receiver(post_delete, sender=IndexSnapshot, dispatch_uid="retrieval_snapshot_file")
def remove_file(sender, instance: IndexSnapshot, **kwargs) -> None:
    """A snapshot's row deleted (its catalogue's or checkpoint version's delete cascades to it):
    its file goes too, once that commits."""
    remove_after_commit(path_for(instance.version_id, instance.catalogue_id, instance.generation))


@receiver(post_delete, sender=Catalogue, dispatch_uid="retrieval_snapshot_leftovers")
def sweep_catalogue(sender, instance: Catalogue, **kwargs) -> None:
    """A catalogue deleted: once that commits, the files its killed writers left (old enough)."""
    catalogue_id = instance.pk

    def sweep_deleted_catalogue() -> None:
        sweep(catalogue_id)

    transaction.on_commit(sweep_deleted_catalogue, robust=True)
