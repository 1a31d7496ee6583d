"""Vectors stored NaN or infinite before ingest refused them (retrieval migration 0002): they
were left out of every search but counted as embedded, so embed_clips skipped their clips for
good. The migration deletes them; their clips count as not embedded and the next ingest embeds
them again."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from evalsite.retrieval import ingest
from evalsite.retrieval.models import Embedding, to_bytes
from evalsite.retrieval.query import coverage

BEFORE = ("retrieval", "0001_initial")


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_a_stored_non_finite_vector_counts_as_not_embedded_and_is_embedded_again(catalogue):
    clips = list(catalogue.clips.order_by("id"))
    report = ingest.embed_clips([c.pk for c in clips])
    assert sorted(report.embedded) == [c.pk for c in clips]
    (version,) = {e.version for e in Embedding.objects.all()}
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([BEFORE])
    try:  # as a database written before ingest refused non-finite vectors holds them
        nan, inf = clips[0], clips[1]
        for clip, value in ((nan, np.nan), (inf, -np.inf)):
            row = Embedding.objects.get(clip=clip, version=version)
            vector = row.as_array().copy()
            vector[2] = value
            Embedding.objects.filter(pk=row.pk).update(vector=to_bytes(vector))
    finally:
        MigrationExecutor(connection).migrate(latest)
    assert coverage(version, catalogue)[:2] == (len(clips) - 2, len(clips))
    again = ingest.embed_clips([c.pk for c in clips])
    assert sorted(again.embedded) == [nan.pk, inf.pk]
    assert all(np.isfinite(e.as_array()).all() for e in Embedding.objects.all())
    assert coverage(version, catalogue)[:2] == (len(clips), len(clips))
