"""The process's search indexes are released once no search can use them again: a deleted
catalogue's, and another checkpoint's once a search uses the current one; and the process holds
at most settings.CSN_RETRIEVAL_INDEXES of them, dropping the least recently searched first."""

from __future__ import annotations

import numpy as np
import pytest

from evalsite.retrieval import service
from evalsite.retrieval.models import Embedding, ModelVersion, to_bytes
from evalsite.retrieval.service import held_indexes, search_vector
from evalsite.stimuli.models import Catalogue, Clip

pytestmark = pytest.mark.django_db
DIM = 8


def make_version(name: str) -> ModelVersion:
    return ModelVersion.objects.create(
        checkpoint_id=name, path="-", dim=DIM, sample_rate=22050, conditions=["drums", "bass"],
        subspaces={"drums": {"slice": [0, 4]}, "bass": {"slice": [4, 8]}},
    )  # fmt: skip


def make_catalogue(owner, name: str, *versions: ModelVersion) -> Catalogue:
    catalogue = Catalogue.objects.create(owner=owner, name=name)
    clips = Clip.objects.bulk_create(
        Clip(catalogue=catalogue, name=f"c{i}", piece=f"P{i}", status=Clip.Status.READY)
        for i in range(6)
    )
    rng = np.random.default_rng(len(name))
    Embedding.objects.bulk_create(
        Embedding(clip=c, version=v, vector=to_bytes(rng.standard_normal(DIM)))
        for c in clips
        for v in versions
    )
    return catalogue


def search(version, catalogue, condition="drums"):
    hits, _ = search_vector(version, np.zeros(DIM, np.float32), condition, 3, catalogue.pk)
    assert len(hits) == 3
    return hits


def catalogues_held() -> set:
    return {key[1] for key in held_indexes()}


def test_it_releases_a_deleted_catalogues_indexes(ada, monkeypatch):
    version = make_version("v1")
    gone, kept = make_catalogue(ada, "gone", version), make_catalogue(ada, "kept", version)
    search(version, gone), search(version, gone, "bass"), search(version, kept)
    assert catalogues_held() == {gone.pk, kept.pk}
    gone_pk = gone.pk
    gone.delete()
    # the next search of a catalogue this process has not searched yet releases them
    search(version, make_catalogue(ada, "new", version))
    assert gone_pk not in catalogues_held()
    # and so does a warm search, once the sweep interval has passed
    doomed = make_catalogue(ada, "doomed", version)
    search(version, doomed)
    doomed_pk = doomed.pk
    doomed.delete()
    search(version, kept)
    assert doomed_pk in catalogues_held()  # within the interval: a warm search reads no more
    monkeypatch.setattr(service, "SWEEP_EVERY_S", 0.0)
    search(version, kept)
    assert catalogues_held() == {kept.pk, Catalogue.objects.get(name="new").pk}


def test_it_releases_another_checkpoints_indexes_once_a_search_uses_the_current_one(ada):
    old, new = make_version("old"), make_version("new")
    catalogue = make_catalogue(ada, "both", old, new)
    search(old, catalogue), search(old, catalogue, "bass")
    assert {key[0] for key in held_indexes()} == {old.pk}
    search(new, catalogue)
    assert {key[0] for key in held_indexes()} == {new.pk}


def test_it_holds_at_most_the_set_number_dropping_the_least_recently_searched(ada, settings):
    settings.CSN_RETRIEVAL_INDEXES = 2
    version = make_version("v1")
    a, b, c = (make_catalogue(ada, name, version) for name in "abc")
    search(version, a), search(version, b), search(version, a)  # b is now the least recent
    search(version, c)
    assert catalogues_held() == {a.pk, c.pk}
    search(version, b)  # rebuilt from the database, the same answer as a fresh process
    assert catalogues_held() == {c.pk, b.pk}
