"""retrieval_bench --api: the search API end to end over a catalogue made for the run. Only the
shape of what it prints and that it leaves nothing behind are checked, never a time."""

from __future__ import annotations

import re
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import call_command

from evalsite.retrieval.models import Embedding, ModelVersion
from evalsite.stimuli.models import Catalogue, Clip

ROW = r"\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+x"


def _bench(*args: str) -> str:
    out = StringIO()
    call_command("retrieval_bench", "--api", "--n", "30", "--rounds", "3", *args, stdout=out)
    return out.getvalue()


def _assert_figures(text: str) -> None:
    assert "N=30 synthetic clips" in text
    assert "machine: " in text
    assert re.search(r"healthz \(reference\)" + ROW, text)
    for condition in ("drums", "bass", "piano", "guitar", "others"):
        assert re.search(rf"search by piece, {condition}\s+3\s", text), condition
    assert re.search(r"first search \(all, builds indexes\)\s+1\s+[\d.]+\s+-\s+-\s+[\d.]+x", text)
    assert "index kind (from the first answer): drums exact, bass exact" in text


def _assert_nothing_left() -> None:
    assert not Catalogue.objects.filter(name__startswith="retrieval-api-bench").exists()
    assert not get_user_model().objects.filter(username__startswith="retrieval-api-bench").exists()
    assert not Clip.objects.exists() and not Embedding.objects.exists()
    assert not ModelVersion.objects.exists()  # registered by the run, nothing else embedded
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_it_prints_latency_of_searches_and_healthz_in_process_and_removes_its_catalogue():
    text = _bench("--in-process")
    assert "served by: in-process" in text
    _assert_figures(text)
    _assert_nothing_left()


@pytest.mark.slow  # a benchmark run under gunicorn
@pytest.mark.integration  # gunicorn reads the committed catalogue: a few seconds
@pytest.mark.django_db(transaction=True)
def test_it_serves_the_searches_with_gunicorn_and_removes_its_catalogue(tmp_path):
    text = _bench("--server-log", str(tmp_path / "gunicorn.log"))
    assert "served by: gunicorn" in text
    _assert_figures(text)
    _assert_nothing_left()


@pytest.mark.django_db
def test_it_removes_only_what_it_made(catalogue):
    from evalsite.retrieval.embedder import current_version
    from evalsite.retrieval.ingest import upsert_embeddings

    version = current_version(load=True)
    clip = catalogue.clips.first()
    upsert_embeddings(version, [clip.pk], np.ones((1, version.dim), np.float32))
    _bench("--in-process")
    assert list(Catalogue.objects.all()) == [catalogue]
    assert Clip.objects.count() == 6
    assert list(Embedding.objects.values_list("clip", "version")) == [(clip.pk, version.pk)]
