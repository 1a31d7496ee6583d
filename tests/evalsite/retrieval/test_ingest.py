"""Ingest and embedding storage, against the database (plain functions, no broker)."""

from __future__ import annotations

import numpy as np
import pytest

from evalsite.retrieval.embedder import get_embedder, version_for
from evalsite.retrieval.ingest import embed_clips, ingest_clips, prepare_clips, upsert_embeddings
from evalsite.retrieval.models import Embedding, ModelVersion
from evalsite.stimuli.models import Clip
from tests.evalsite.retrieval.helpers import corrupt_clip

pytestmark = pytest.mark.django_db


def test_it_stores_one_embedding_per_clip_with_the_checkpoint_identity(catalogue, checkpoint):
    ids = list(catalogue.clips.values_list("id", flat=True))
    report = embed_clips(ids)
    assert sorted(report.embedded) == sorted(ids)
    version = ModelVersion.objects.get()
    emb = get_embedder()
    assert version.checkpoint_id == emb.checkpoint_id and version.dim == emb.dim == 40
    assert version.subspaces["bass"] == {"slice": [8, 16]}
    first = Embedding.objects.filter(clip_id=ids[0]).get()
    expected = emb.embed_files([Clip.objects.get(pk=ids[0]).file.path])[0]
    np.testing.assert_allclose(first.as_array(), expected, rtol=1e-5, atol=1e-6)


def test_it_does_nothing_when_the_same_checkpoint_embeds_again(catalogue):
    ids = list(catalogue.clips.values_list("id", flat=True))
    embed_clips(ids)
    before = list(Embedding.objects.order_by("id").values_list("id", "vector"))
    again = embed_clips(ids)
    assert again.embedded == [] and sorted(again.skipped) == sorted(ids)
    assert list(Embedding.objects.order_by("id").values_list("id", "vector")) == before


def test_it_keeps_the_existing_row_on_a_duplicate_upsert(catalogue):
    clip = catalogue.clips.first()
    version = version_for(get_embedder())
    assert upsert_embeddings(version, [clip.pk], np.ones((1, 40), np.float32)) == 1
    assert upsert_embeddings(version, [clip.pk], np.zeros((1, 40), np.float32)) == 1
    assert Embedding.objects.get().as_array().tolist() == [1.0] * 40


def test_it_adds_a_new_version_for_a_new_checkpoint(catalogue, settings, other_checkpoint):
    ids = list(catalogue.clips.values_list("id", flat=True))
    embed_clips(ids)
    settings.CSN_CHECKPOINT = str(other_checkpoint)
    embed_clips(ids)
    assert ModelVersion.objects.count() == 2
    assert Embedding.objects.count() == 2 * len(ids)
    per_clip = Embedding.objects.filter(clip_id=ids[0]).order_by("version_id")
    assert not np.allclose(per_clip[0].as_array(), per_clip[1].as_array())


def test_it_fails_a_corrupt_clip_visibly_and_embeds_the_others(catalogue, settings):
    poison = corrupt_clip(catalogue, settings.MEDIA_ROOT)
    ids = list(catalogue.clips.values_list("id", flat=True))
    report = ingest_clips(ids)
    poison.refresh_from_db()
    assert poison.status == Clip.Status.FAILED
    assert "broken.wav" in poison.error and "cannot decode" in poison.error
    assert poison.pk in report.failed
    assert Embedding.objects.count() == len(ids) - 1


def test_it_fails_a_ready_clip_whose_file_cannot_be_decoded(catalogue):
    clip = catalogue.clips.first()
    with open(clip.file.path, "wb") as f:
        f.write(b"garbage" * 100)
    report = embed_clips([clip.pk])
    clip.refresh_from_db()
    assert clip.status == Clip.Status.FAILED and clip.pk in report.failed
    assert "cannot decode audio" in clip.error


def test_it_leaves_ready_clips_alone_when_preparing(catalogue):
    clip = catalogue.clips.first()
    name = clip.file.name
    assert prepare_clips([clip.pk]) == {}
    clip.refresh_from_db()
    assert clip.file.name == name
