"""Fixtures for the retrieval/worker tests: a tiny checkpoint (session), media in a temporary
folder, eager Celery (tasks run in the test process, as a wiring check only: the integration
tests run a real worker), and the personas ada and bob."""

from __future__ import annotations

import pytest

from evalsite.celery import app
from tests.evalsite.retrieval.helpers import (
    make_catalogue,
    write_checkpoint,
    write_nan_checkpoint,
)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=0)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt2") / "tiny2.pt", seed=1)


@pytest.fixture(scope="session")
def nan_checkpoint(tmp_path_factory):
    return write_nan_checkpoint(tmp_path_factory.mktemp("ckpt_nan") / "diverged.pt")


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, checkpoint):
    from evalsite.retrieval import embedder, service

    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CSN_CHECKPOINT = str(checkpoint)
    settings.CSN_AUTO_EMBED = False  # tests queue work explicitly
    service.forget_indexes()
    embedder.reset()
    yield
    service.forget_indexes()


@pytest.fixture
def eager():
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.org", "hear-the-bass-22")


@pytest.fixture
def catalogue(db, ada):
    return make_catalogue(ada, n_pieces=6)
