"""A snapshot file that cannot be read, or whose arrays do not agree with each other or with the
checkpoint, is logged (naming the file) and ignored: the first search reads the rows and answers
as brute force does, and the worker's next refresh writes a good generation in its place.
(Moved from the rsnap review's repros: an empty, truncated or bit-flipped .npz raised EOFError or
zipfile.BadZipFile out of snapshot.load, so every first search answered 500.)"""

# ruff: noqa: F811  (test_index_sync's fixtures, imported below, are these tests' parameters)

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from evalsite.retrieval import ingest, service, snapshot
from evalsite.retrieval.models import IndexSnapshot
from tests.evalsite.retrieval.helpers import make_catalogue
from tests.evalsite.retrieval.test_index_snapshot import first_search, vectors_read
from tests.evalsite.retrieval.test_index_sync import (  # noqa: F401  (fixtures)
    DIM,
    EXACT,
    assert_brute_force,
    catalogue,
    vector_of,
    version,
)

pytestmark = pytest.mark.django_db


def current_file(version_id: int, catalogue_id: int) -> Path:
    row = IndexSnapshot.objects.get(version_id=version_id, catalogue_id=catalogue_id)
    return snapshot.path_for(version_id, catalogue_id, row.generation)


def flip_a_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF  # inside the vectors member: its CRC no longer matches
    return bytes(damaged)


UNREADABLE = {
    "empty": lambda data: b"",
    "truncated_half": lambda data: data[: len(data) // 2],
    "truncated_tail": lambda data: data[:-10],  # the zip directory cut
    "bad_crc": flip_a_byte,
    "not_npz": lambda data: b"truncated",
}


INCONSISTENT = {
    "vectors_float64": lambda a: {"vectors": a["vectors"].astype(np.float64)},
    "vectors_other_dim": lambda a: {"vectors": a["vectors"][:, :-1]},  # (N, D - 1)
    "ids_short": lambda a: {"ids": a["ids"][:-1]},
    "hashes_long": lambda a: {"hashes": np.append(a["hashes"], 0)},
    "keys_2d": lambda a: {"keys": a["keys"][:, None]},  # (N, 1)
    "keys_float": lambda a: {"keys": a["keys"].astype(np.float64)},
    "keys_unordered": lambda a: {"keys": a["keys"][::-1].copy()},
    "generation_array": lambda a: {"generation": np.array([str(a["generation"])])},
    "member_missing": lambda a: {"hashes": None},
}


def damage_inconsistently(path: Path, how: str) -> None:
    with np.load(path) as f:
        arrays = {name: f[name] for name in f.files}
    arrays |= INCONSISTENT[how](arrays)
    with open(path, "wb") as out:
        np.savez(out, **{k: v for k, v in arrays.items() if v is not None})


def assert_rows_read_after_a_warning(version, catalogue, path, caplog):
    query = vector_of(catalogue.clips.order_by("id").first().pk, version)
    with caplog.at_level(logging.WARNING, logger="evalsite.retrieval.snapshot"):
        hits, queries = first_search(version, catalogue, query, EXACT)  # raised before
    assert vectors_read(queries)
    assert_brute_force(hits, version, catalogue, query)
    assert any(
        path.name in r.getMessage() and "reading rows instead" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    ), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("damage", sorted(UNREADABLE))
def test_it_reads_rows_when_the_file_is_unreadable(version, catalogue, damage, caplog):
    assert snapshot.refresh(version, catalogue.pk)
    path = current_file(version.pk, catalogue.pk)
    path.write_bytes(UNREADABLE[damage](path.read_bytes()))
    assert_rows_read_after_a_warning(version, catalogue, path, caplog)


@pytest.mark.parametrize("how", sorted(INCONSISTENT))
def test_it_reads_rows_when_the_files_arrays_disagree(version, catalogue, how, caplog):
    assert snapshot.refresh(version, catalogue.pk)
    path = current_file(version.pk, catalogue.pk)
    damage_inconsistently(path, how)
    assert_rows_read_after_a_warning(version, catalogue, path, caplog)


def test_it_answers_the_api_with_a_truncated_file_and_the_worker_replaces_it(
    ada, checkpoint, client, django_capture_on_commit_callbacks
):
    cat = make_catalogue(ada, n_pieces=4)
    clips = sorted(cat.clips.values_list("pk", flat=True))
    ingest.ingest_clips(clips)  # what the embed task runs in the worker: writes the snapshot
    row = IndexSnapshot.objects.get(catalogue=cat)
    damaged = snapshot.path_for(row.version_id, cat.pk, row.generation)
    damaged.write_bytes(damaged.read_bytes()[:-10])  # e.g. a crash before the data hit the disk

    service.forget_indexes()
    client.force_login(ada)
    client.raise_request_exception = False
    query = {"clip": clips[0], "instrument": "drums", "k": 3, "catalogue": cat.pk}
    answer = client.get("/retrieval/api/search", query)
    assert answer.status_code == 200, answer.content[:300]
    assert len(answer.json()["results"]["drums"]) == 3

    # The worker's next refresh (what embed_clips runs after storing vectors) replaces it.
    with django_capture_on_commit_callbacks(execute=True):
        snapshot.refresh_catalogues(row.version, clips)
    now = IndexSnapshot.objects.get(catalogue=cat)
    assert now.generation != row.generation and now.rows == 4
    assert not damaged.exists()
    snap = snapshot.load(row.version, cat.pk)
    assert snap is not None and snap.ids.tolist() == clips
