"""Celery wiring in eager mode (tasks run in the test process after the commit). What must work
with a real worker and broker is in tests/integration."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from django.db import connection

from evalsite.celery import app
from evalsite.jobs.models import Job
from evalsite.retrieval import ingest
from evalsite.retrieval.embedder import checkpoint_id
from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.models import Embedding, ModelVersion
from evalsite.stimuli.models import Clip
from evalsite.stimuli.tasks import queue_ingest
from evalsite.studies.model_design import build_model_trials, choose
from evalsite.studies.models import Study, Trial
from evalsite.studies.tasks import (
    design_from_model,
    model_choices,
    queue_design,
    queue_model_choices,
)
from tests.evalsite.retrieval.helpers import add_attention_set, corrupt_clip

pytestmark = pytest.mark.django_db


def test_it_routes_model_work_to_gpu_and_the_rest_to_cpu():
    router = app.amqp.router
    route = lambda name: router.route({}, name)["queue"].name  # noqa: E731
    app.loader.import_default_modules()  # every task module, as a worker loads them
    ours = sorted(n for n in app.tasks if n.split(".")[0] in {"stimuli", "studies", "reports"})
    # by the registered names, so that a renamed task cannot leave a route (or this test) behind
    model_work = {"stimuli.embed_clips", "studies.model_choices", "studies.design_from_model"}
    assert model_work < set(ours) and "reports.recompute_report" in ours
    assert {n: route(n) for n in ours} == {n: "gpu" if n in model_work else "cpu" for n in ours}
    assert {q.name for q in app.conf.task_queues} == {"cpu", "gpu"}
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost


def test_it_queues_ingest_only_after_the_commit(
    catalogue, eager, settings, django_capture_on_commit_callbacks
):
    corrupt_clip(catalogue, settings.MEDIA_ROOT)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = queue_ingest(catalogue)
    assert Embedding.objects.count() == 0 and len(callbacks) == 1
    callbacks[0]()
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    assert (job.total, job.done, job.failed) == (7, 6, 1)
    assert job.errors[0]["clip"] == Clip.objects.get(name="broken.wav").pk
    assert "cannot decode" in job.errors[0]["error"]


def test_it_embeds_with_the_jobs_checkpoint_when_another_is_deployed_before_a_worker_runs(
    catalogue, eager, settings, other_checkpoint, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = queue_ingest(catalogue)
    settings.CSN_CHECKPOINT = str(other_checkpoint)  # the queued job's file is still there
    callbacks[0]()
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.done == job.total == 6
    used = set(Embedding.objects.values_list("version__checkpoint_id", flat=True))
    assert used == {job.checkpoint_id}


def test_it_fails_the_job_naming_both_checkpoints_when_its_own_is_gone(
    catalogue, eager, settings, checkpoint, other_checkpoint, tmp_path,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    deployed = tmp_path / "final.pt"
    shutil.copy(checkpoint, deployed)
    settings.CSN_CHECKPOINT = str(deployed)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = queue_ingest(catalogue)
    shutil.copy(other_checkpoint, deployed)  # retrained and written over the same file
    callbacks[0]()
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and Embedding.objects.count() == 0
    assert job.checkpoint_id in job.message and checkpoint_id(deployed) in job.message
    assert job.checkpoint_id != checkpoint_id(deployed)


def test_it_ends_the_job_when_its_task_fails_for_good_on_clips_the_old_model_embedded(
    catalogue, eager, settings, other_checkpoint, monkeypatch, django_capture_on_commit_callbacks
):
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))  # with the first model
    settings.CSN_CHECKPOINT = str(other_checkpoint)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(ingest, "embed_clips", out_of_memory)
    eager.conf.task_eager_propagates = False  # a propagated error skips on_failure
    with django_capture_on_commit_callbacks(execute=True):
        queue_ingest(catalogue)
    job = Job.objects.get(kind=Job.Kind.INGEST)
    assert job.status == Job.Status.DONE and (job.total, job.done, job.failed) == (6, 0, 6)
    assert all("CUDA out of memory" in e["error"] for e in job.errors)


def test_it_fails_the_job_when_the_fan_out_task_fails(
    catalogue, eager, settings, django_capture_on_commit_callbacks
):
    settings.CSN_EMBED_BATCH = 0  # past the settings check: range() refuses a step of 0
    eager.conf.task_eager_propagates = False  # a propagated error skips on_failure
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_ingest(catalogue)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.message.startswith("stimuli.ingest_catalogue failed: ValueError")


def test_it_stores_the_model_choice_on_every_trial(
    catalogue, eager, ada, django_capture_on_commit_callbacks
):
    clips = list(catalogue.clips.order_by("id"))
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    for i in range(4):
        Trial.objects.create(study=study, instrument=["drums", "bass"][i % 2], reference=clips[i],
                             candidate_a=clips[i + 1], candidate_b=clips[i + 2])  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_model_choices(study)
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.done == job.total == 4
    version = ModelVersion.objects.get()
    for t in study.trials.all():
        vecs = {e.clip_id: e.as_array() for e in Embedding.objects.all()}
        trio = np.stack([vecs[t.reference_id], vecs[t.candidate_a_id], vecs[t.candidate_b_id]])
        ref, a, b = version.subspace(trio, t.instrument)
        assert (t.model_choice, pytest.approx(t.model_margin, rel=1e-5)) == choose(ref, a, b)


def test_it_lists_each_missing_clip_once_and_counts_failed_trials_on_redelivery(
    catalogue, eager, ada, django_capture_on_commit_callbacks
):
    clips = list(catalogue.clips.order_by("id"))
    Clip.objects.filter(pk=clips[0].pk).update(status=Clip.Status.FAILED, error="bad audio")
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    for ref, a, b in [(0, 1, 2), (0, 3, 4), (1, 2, 3)]:  # the failed clip is in two trials
        Trial.objects.create(study=study, instrument="drums", reference=clips[ref],
                             candidate_a=clips[a], candidate_b=clips[b])  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_model_choices(study)
    model_choices(job.pk)  # delivered again: the worker died before acknowledging it
    job.refresh_from_db()
    assert job.errors == [{"clip": clips[0].pk, "error": "bad audio"}]
    assert (job.total, job.done, job.failed) == (3, 1, 2)  # trials, not clips
    recorded = study.events.filter(kind="model_choices").values_list("changes", flat=True)
    assert [(c["set"], c["job"]) for c in recorded] == [(1, job.pk)]  # once, however often run


def test_it_clears_earlier_choices_it_cannot_recompute_and_counts_only_its_own_work(
    catalogue, eager, ada, django_capture_on_commit_callbacks
):
    clips = list(catalogue.clips.order_by("id"))
    Clip.objects.filter(pk=clips[0].pk).update(status=Clip.Status.FAILED, error="bad audio")
    study = Study.objects.create(owner=ada, name="s", catalogue=catalogue, instruments=["drums"])
    for ref, a, b in [(0, 1, 2), (0, 3, 4), (1, 2, 3)]:  # choices of an earlier checkpoint
        Trial.objects.create(study=study, instrument="drums", reference=clips[ref],
                             candidate_a=clips[a], candidate_b=clips[b],
                             model_choice="b", model_margin=9.0)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_model_choices(study)
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    assert (job.total, job.done, job.failed) == (3, 1, 2)
    assert "2 earlier choice(s) cleared" in job.message
    with_clip = study.trials.filter(reference=clips[0])
    assert list(with_clip.values_list("model_choice", "model_margin")) == [(None, None)] * 2
    assert study.trials.get(reference=clips[1]).model_margin != 9.0  # recomputed


def test_it_designs_a_study_from_the_model_with_catch_trials(
    catalogue, eager, ada, django_capture_on_commit_callbacks
):
    ref = catalogue.clips.order_by("id").first()
    add_attention_set(catalogue, ref, "drums", "g1")
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue,
                                 instruments=["drums", "guitar"])  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        job = queue_design(study, catalogue, "margin_stratified", 4, seed=11, catch_per_kind=1)
    job.refresh_from_db()
    study.refresh_from_db()
    assert job.status == Job.Status.DONE, job.message
    assert study.design["strategy"] == "margin_stratified" and study.design["seed"] == 11
    assert study.design["checkpoint_id"] == ModelVersion.objects.get().checkpoint_id
    main = study.trials.filter(is_catch=False, is_practice=False)
    assert main.count() == 8
    assert not study.trials.filter(model_choice__isnull=True).exists()
    for t in main:
        assert len({t.reference.piece, t.candidate_a.piece, t.candidate_b.piece}) == 3
    kinds = set(study.trials.filter(is_catch=True).values_list("catch_kind", flat=True))
    assert kinds == {"repeat", "attention", "identical"}
    attention = study.trials.get(catch_kind="attention")
    same = attention.candidate_a if attention.expected == "a" else attention.candidate_b
    assert same.meta["role"] == "same" and attention.instrument == "drums"


@pytest.mark.parametrize(
    "counts, expected",
    [
        ({"per_instrument": 0}, "per_instrument=0: expected an integer >= 1"),
        ({"per_instrument": "3"}, "per_instrument='3': expected an integer >= 1"),
        ({"catch_per_kind": -1}, "catch_per_kind=-1: expected an integer >= 0"),
    ],
)
def test_it_refuses_to_queue_or_build_a_design_with_counts_out_of_range(
    catalogue, ada, counts, expected
):
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    args = {"per_instrument": 2, "catch_per_kind": 1, **counts}
    with pytest.raises(ValueError) as err:
        queue_design(study, catalogue, "nearest_random", seed=1, **args)
    assert str(err.value) == expected and not Job.objects.exists()
    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    version = ModelVersion.objects.get()
    with pytest.raises(ValueError) as err:  # a job queued before this check: the worker refuses
        build_model_trials(study, catalogue, version, "nearest_random", seed=1, **args)
    assert str(err.value) == expected and not study.trials.exists()


def test_it_designs_with_the_jobs_checkpoint_when_another_is_deployed_before_a_worker_runs(
    catalogue, eager, ada, settings, other_checkpoint, django_capture_on_commit_callbacks
):
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = queue_design(study, catalogue, "nearest_random", 2, seed=1)
    settings.CSN_CHECKPOINT = str(other_checkpoint)
    callbacks[0]()
    job.refresh_from_db()
    study.refresh_from_db()
    assert job.status == Job.Status.DONE and job.done == job.total, job.message
    assert study.design["checkpoint_id"] == job.checkpoint_id


def test_it_designs_the_same_trials_from_the_same_seed(
    catalogue, eager, ada, django_capture_on_commit_callbacks
):
    def design(name):
        study = Study.objects.create(owner=ada, name=name, catalogue=catalogue,
                                     instruments=["bass"])  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            queue_design(study, catalogue, "nearest_random", 5, seed=3, catch_per_kind=0)
        rows = study.trials.order_by("id").values_list(
            "reference", "candidate_a", "candidate_b", "model_choice", "catch_kind"
        )
        return list(rows)

    assert design("one") == design("two")


def test_it_finishes_a_design_job_whose_study_already_has_trials(
    catalogue, eager, ada, django_capture_on_commit_callbacks
):
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    with django_capture_on_commit_callbacks(execute=True):
        first = queue_design(study, catalogue, "nearest_random", 2, seed=1)
        second = queue_design(study, catalogue, "nearest_random", 2, seed=1)  # a double submit
    first.refresh_from_db()
    second.refresh_from_db()
    made = study.trials.count()
    assert first.status == Job.Status.DONE and f"{made} trial(s) designed" in first.message
    assert second.status == Job.Status.DONE
    assert second.message == f"study already has {made} trial(s); nothing designed"
    assert study.trials.filter(is_catch=False, is_practice=False).count() == 2
    # The worker was killed after the commit, before the job was finished: run again, it ends.
    Job.objects.filter(pk=first.pk).update(status=Job.Status.RUNNING, finished_at=None)
    design_from_model(first.pk)
    first.refresh_from_db()
    assert first.status == Job.Status.DONE and study.trials.count() == made


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # each worker thread commits on its own connection
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
def test_it_designs_a_study_once_when_two_workers_run_its_design_jobs_at_once(
    catalogue, ada, monkeypatch
):
    from evalsite.studies import model_design

    embed_clips(list(catalogue.clips.values_list("id", flat=True)))
    study = Study.objects.create(owner=ada, name="m", catalogue=catalogue, instruments=["drums"])
    monkeypatch.setattr(design_from_model, "delay", lambda job_id: None)  # the threads run them
    jobs = [queue_design(study, catalogue, "nearest_random", 2, seed=1) for _ in range(2)]
    both_planned, plan, errors = threading.Barrier(2, timeout=60), model_design.plan_trials, []

    def planned_together(*args, **kwargs):  # both jobs are past every check outside the lock
        both_planned.wait()
        return plan(*args, **kwargs)

    def worker(job_id):
        try:
            design_from_model(job_id)
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(repr(exc))
        finally:
            connection.close()

    monkeypatch.setattr(model_design, "plan_trials", planned_together)
    threads = [threading.Thread(target=worker, args=(job.pk,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    made = study.trials.count()
    messages = sorted(Job.objects.filter(study=study).values_list("status", "message"))
    assert messages == [
        ("done", f"{made} trial(s) designed (nearest_random, seed 1)"),
        ("done", f"study already has {made} trial(s); nothing designed"),
    ]
    assert study.trials.filter(is_catch=False, is_practice=False).count() == 2


def test_it_reports_a_missing_checkpoint_on_the_job(catalogue, settings, tmp_path):
    settings.CSN_CHECKPOINT = str(tmp_path / "nope.pt")
    job = queue_ingest(catalogue)
    assert job.status == Job.Status.FAILED and "nope.pt" in job.message
