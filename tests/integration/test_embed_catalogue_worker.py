"""`manage.py embed_catalogue NAME` with real Redis and a real Celery worker: a catalogue of no
study (`import_slakh --catalogue`) gets embedded with the deployed checkpoint, and the command
run again queues nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from evalsite.jobs.models import Job
from evalsite.retrieval.models import Embedding
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.stimuli.slakh_import import import_slakh
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def _run(name: str) -> str:
    out = StringIO()
    call_command("embed_catalogue", name, stdout=out)
    return out.getvalue()


def test_it_embeds_a_catalogue_of_no_study_with_a_real_worker(
    broker, worker_factory, django_user_model, tiny_dataset
):
    ada = django_user_model.objects.create_user("ada", "ada@example.org", "hear-the-drums-1")
    catalogue = Catalogue.objects.create(owner=ada, name="slakh test")
    import_slakh(tiny_dataset, "test", catalogue, seconds=2.0, conditions=("drums",), embed=False)
    ready = set(catalogue.clips.filter(status=Clip.Status.READY).values_list("pk", flat=True))
    assert ready and not Embedding.objects.exists()
    said = _run("slakh test")
    job = Job.objects.get()
    assert f"job {job.pk}: {len(ready)} clips of catalogue 'slakh test'" in said
    worker = worker_factory().start()

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, 180, worker, "the embedding job")
    assert job.status == Job.Status.DONE and job.study is None, (job.message, worker.tail())
    assert set(Embedding.objects.values_list("clip_id", flat=True)) == ready
    assert "nothing to queue" in _run("slakh test") and Job.objects.count() == 1
