"""An import, or an upload of several files, queues its clips' embeddings in batches of
CSN_EMBED_BATCH, once, after the clips exist: before, each clip saved one by one committed alone
and queued a task of its own (the demo's catalogue stage ran 92 one-clip tasks, each waiting for
the file broker's poll)."""

from __future__ import annotations

import base64
import json

import pytest

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.stimuli.slakh_import import import_slakh


def _queued_embeds(broker) -> list[list[int]]:
    """The clip ids of each embed task waiting in Redis (kombu's JSON envelope, protocol 2)."""
    batches = []
    for raw in broker.lrange("gpu", 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "stimuli.embed_clips"
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        batches.append(list(args[0]))
    return batches


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")


@pytest.mark.integration
def test_an_import_queues_its_clips_for_embedding_in_batches(broker, settings, tiny_dataset, ada):
    settings.CSN_AUTO_EMBED = True
    settings.CSN_EMBED_BATCH = 4
    catalogue = Catalogue.objects.create(owner=ada, name="batched")
    report = import_slakh(tiny_dataset, "test", catalogue, seconds=2.0, attention=True,
                          conditions=("drums", "bass"))  # fmt: skip
    ready = sorted(catalogue.clips.filter(status=Clip.Status.READY).values_list("pk", flat=True))
    assert len(ready) > 4 and report.mixes
    batches = _queued_embeds(broker)
    assert sorted(pk for batch in batches for pk in batch) == ready  # each clip once
    assert len(batches) == -(-len(ready) // 4)  # full batches, not one task per clip


@pytest.mark.integration
def test_an_import_told_not_to_embed_queues_nothing(broker, settings, tiny_dataset, ada):
    """For a caller that queues an ingest job next (the demo): the job alone embeds the clips."""
    settings.CSN_AUTO_EMBED = True
    catalogue = Catalogue.objects.create(owner=ada, name="for a job")
    report = import_slakh(tiny_dataset, "test", catalogue, seconds=2.0, conditions=("drums",),
                          embed=False)  # fmt: skip
    assert report.mixes and catalogue.clips.filter(status=Clip.Status.READY).exists()
    assert _queued_embeds(broker) == [] and report.not_queued == ""


@pytest.mark.integration
def test_an_upload_of_several_files_queues_their_embeddings_together(broker, settings, client):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from evalsite.studies.models import Study
    from tests.evalsite.studies.experimenter_personas import wav_bytes

    settings.CSN_AUTO_EMBED = True
    alice = Study._meta.get_field("owner").related_model.objects.create_user("alice", "", "pw")
    study = Study.objects.create(owner=alice, name="uploads", instruments=["drums"])
    client.force_login(alice)
    files = [SimpleUploadedFile(f"f{i}.wav", wav_bytes(freq=220 + 110 * i)) for i in range(3)]
    client.post(reverse("studies:clips", args=[study.pk]), {"files": files})
    ready = sorted(Clip.objects.filter(status=Clip.Status.READY).values_list("pk", flat=True))
    assert len(ready) == 3
    assert _queued_embeds(broker) == [ready]  # one task, not one per file
