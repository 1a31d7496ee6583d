"""A ready clip is queued for embedding (evalsite/retrieval/signals.py) only once its save has
committed: a save rolled back, whole or to a savepoint, queues nothing, then or with a later
commit in the same thread (before, its id stayed in the thread's pending set and the next commit
queued the embedding of a clip that does not exist)."""

from __future__ import annotations

import pytest
from django.db import transaction

from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue, Clip
from tests.evalsite.retrieval.helpers import SR, piece_audio
from tests.integration.test_import_queue import _queued_embeds


class RolledBack(Exception):
    pass


@pytest.fixture
def catalogue(django_user_model):
    owner = django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")
    return Catalogue.objects.create(owner=owner, name="commits")


def _clip(catalogue, i: int) -> Clip:
    return clip_from_array(piece_audio(i, 0), SR, catalogue, name=f"clip {i}", piece=f"P{i}")


@pytest.mark.integration
def test_a_rolled_back_save_queues_nothing_and_a_committed_one_queues_it(
    broker, settings, catalogue
):
    settings.CSN_AUTO_EMBED = True
    with pytest.raises(RolledBack), transaction.atomic():
        _clip(catalogue, 1)
        raise RolledBack
    assert _queued_embeds(broker) == []
    kept = _clip(catalogue, 2)  # commits alone
    assert _queued_embeds(broker) == [[kept.pk]]


@pytest.mark.integration
def test_a_clip_saved_in_a_rolled_back_savepoint_is_not_queued_with_its_transaction(
    broker, settings, catalogue
):
    settings.CSN_AUTO_EMBED = True
    with transaction.atomic():
        kept = _clip(catalogue, 1)
        with pytest.raises(RolledBack), transaction.atomic():
            _clip(catalogue, 2)
            raise RolledBack
    assert list(Clip.objects.values_list("pk", flat=True)) == [kept.pk]
    assert _queued_embeds(broker) == [[kept.pk]]
