"""The workers against real Redis, a real Celery worker process and PostgreSQL."""

from __future__ import annotations

import shutil

import pytest

from evalsite.jobs.models import Job
from evalsite.retrieval.embedder import get_embedder, version_for
from evalsite.retrieval.models import Embedding
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.stimuli.slakh_import import import_slakh
from evalsite.stimuli.tasks import embed_clips, queue_ingest
from evalsite.studies.models import Study
from evalsite.studies.tasks import queue_design
from tests.evalsite.retrieval.helpers import corrupt_clip, make_catalogue
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")


def _job_finished(job):
    def check():
        job.refresh_from_db()
        return job.is_finished

    return check


@pytest.mark.slow  # ~45 s: run with `pytest -m integration`
def test_it_ingests_a_catalogue_and_designs_a_study_with_a_real_worker(
    broker, worker_factory, ada, tiny_dataset, settings, tmp_path
):
    catalogue = Catalogue.objects.create(owner=ada, name="tiny")
    report = import_slakh(tiny_dataset, "test", catalogue, seconds=2.0, attention=True)
    import_slakh(tiny_dataset, "train", catalogue, seconds=2.0)
    # An uploaded-but-unprocessed clip (the prepare step transcodes it) and a poison clip queued
    # first, so the others must get past it.
    pending = Clip(catalogue=catalogue, name="upload.wav", piece="UPLOADED")
    source = report.mixes[0].file.path
    pending.file.name = "clips/upload-source.wav"
    (tmp_path / "media" / "clips").mkdir(parents=True, exist_ok=True)
    shutil.copy(source, tmp_path / "media" / "clips" / "upload-source.wav")
    pending.save()
    poison = corrupt_clip(catalogue, settings.MEDIA_ROOT)
    ids = sorted([poison.pk, *catalogue.clips.exclude(pk=poison.pk).values_list("id", flat=True)])
    ids.remove(poison.pk)
    ids.insert(0, poison.pk)

    worker = worker_factory().start()
    job = queue_ingest(catalogue, clip_ids=ids)  # outside a transaction: queued at once
    wait_for(_job_finished(job), 180, worker, "the ingest job")
    assert job.status == Job.Status.DONE, (job.message, worker.tail())
    poison.refresh_from_db()
    pending.refresh_from_db()
    assert poison.status == Clip.Status.FAILED and "cannot decode" in poison.error
    assert job.errors == [{"clip": poison.pk, "name": "broken.wav", "error": poison.error}]
    assert pending.status == Clip.Status.READY and pending.loudness_lufs is not None
    assert (job.done, job.failed, job.total) == (len(ids) - 1, 1, len(ids))
    assert Embedding.objects.count() == len(ids) - 1

    study = Study.objects.create(owner=ada, name="model", catalogue=catalogue,
                                 instruments=["drums", "bass"])  # fmt: skip
    design = queue_design(study, catalogue, "nearest_random", 3, seed=5, catch_per_kind=1)
    wait_for(_job_finished(design), 120, worker, "the design job")
    study.refresh_from_db()
    assert design.status == Job.Status.DONE, (design.message, worker.tail())
    assert study.design["strategy"] == "nearest_random" and study.design["seed"] == 5
    assert study.trials.filter(is_catch=False, is_practice=False).count() == 6
    assert not study.trials.filter(model_choice__isnull=True).exists()
    assert study.trials.filter(catch_kind="attention").exists()
    added = study.events.get(kind="trials").changes  # written by the worker with its trials
    assert (added["how"], added["job"]) == ("model", design.pk)
    assert added["added"] == study.trials.count()


@pytest.mark.slow  # ~60 s (two worker starts and a visibility timeout)
def test_it_finishes_a_task_after_kill_9_without_duplicate_embeddings(broker, worker_factory, ada):
    catalogue = make_catalogue(ada, n_pieces=12, clips_per_piece=2)
    ids = list(catalogue.clips.values_list("id", flat=True))
    # 24 clips in model calls of 4 with a 1 s pause after each: one task of 6+ seconds.
    worker = worker_factory(CSN_EMBED_BATCH=4, CSN_EMBED_PAUSE_S=1.0).start()
    embed_clips.delay(ids)
    count = lambda: Embedding.objects.count()  # noqa: E731
    wait_for(lambda: 4 <= count() < len(ids), 120, worker, "the first embeddings")
    worker.kill9()
    partial = count()
    assert partial < len(ids)
    # Not lost: unacknowledged, the message is held in kombu's `unacked` hash (or, once a
    # consumer has restored it after the visibility timeout, back in its queue).
    assert broker.hlen("unacked") + broker.llen("gpu") == 1
    restarted = worker_factory().start()
    wait_for(lambda: count() == len(ids), 120, restarted, "the redelivered task")
    version = version_for(get_embedder())
    per_clip = Embedding.objects.filter(version=version).values_list("clip_id", flat=True)
    assert sorted(per_clip) == sorted(ids)  # each clip exactly once
    assert broker.llen("gpu") == 0
    wait_for(lambda: broker.hlen("unacked") == 0, 30, restarted, "the redelivered task's ack")


def test_it_makes_a_clip_added_later_findable_through_the_worker(
    broker, worker_factory, ada, settings, client
):
    from evalsite.stimuli.audio import clip_from_array
    from tests.evalsite.retrieval.helpers import SR, piece_audio

    catalogue = make_catalogue(ada, n_pieces=5)
    worker = worker_factory().start()
    job = queue_ingest(catalogue)
    wait_for(_job_finished(job), 120, worker, "the ingest job")
    client.force_login(ada)
    query = catalogue.clips.order_by("id").first()
    params = {"clip": query.pk, "instrument": "drums", "k": 10, "catalogue": catalogue.pk}
    before = {
        h["clip"] for h in client.get("/retrieval/api/search", params).json()["results"]["drums"]
    }
    settings.CSN_AUTO_EMBED = True  # the post-commit signal queues the new clip
    new = clip_from_array(piece_audio(7, 1), SR, catalogue, name="late", piece="LATE")
    wait_for(lambda: Embedding.objects.filter(clip=new).exists(), 60, worker, "auto-embed")
    hits = client.get("/retrieval/api/search", params).json()["results"]["drums"]
    assert {h["clip"] for h in hits} == before | {new.pk}
