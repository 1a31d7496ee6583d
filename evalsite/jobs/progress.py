"""Creating jobs and deriving their progress from the state of their objects.

An ingest job's clip counts as done when it has an embedding under the job's checkpoint, as
failed when the clip is failed (its error is listed); a model-choice job's trial counts as done
when it has a model choice. Recomputing from the database makes progress right however often a
task ran (redelivery after a crash, retries).
"""

from __future__ import annotations

from celery import Task
from django.utils import timezone

from evalsite.jobs.models import Job
from evalsite.stimuli.models import Clip


def start(job: Job) -> None:
    if job.status == Job.Status.QUEUED:
        job.status = Job.Status.RUNNING
        job.save(update_fields=["status", "updated_at"])


def refresh(job: Job) -> Job:
    """Recount done/failed/errors from the database; finish the job when nothing is left."""
    from evalsite.retrieval.models import Embedding

    # Another task may have failed the job or listed an error since this copy was read; a save of
    # the stale copy would undo that (every caller saves its own changes first).
    job.refresh_from_db()
    if job.kind in (Job.Kind.INGEST, Job.Kind.DESIGN):
        ids = job.params.get("clips", [])
        embedded = set(
            Embedding.objects.filter(
                clip_id__in=ids, version__checkpoint_id=job.checkpoint_id
            ).values_list("clip_id", flat=True)
        )
        failed = Clip.objects.filter(pk__in=ids, status=Clip.Status.FAILED).exclude(pk__in=embedded)
        job.total, job.done, job.failed = len(ids), len(embedded), failed.count()
        job.errors = [
            {"clip": c.pk, "name": c.name or c.piece or f"clip {c.pk}", "error": c.error}
            for c in failed.order_by("id")[:200]
        ] + [e for e in job.errors if "clip" not in e]
    elif job.kind == Job.Kind.MODEL_CHOICE and job.study_id:
        trials = job.study.trials.all()
        job.total = trials.count()
        job.done = trials.filter(model_choice__isnull=False).count()
    finished = job.done + job.failed >= job.total and job.kind != Job.Kind.DESIGN
    if finished and job.status in (Job.Status.QUEUED, Job.Status.RUNNING):
        job.status = Job.Status.DONE
        job.finished_at = timezone.now()
    job.save()
    return job


def finish(job: Job, message: str = "") -> Job:
    job = refresh(job)
    job.status = Job.Status.DONE
    job.message = message or job.message
    job.finished_at = timezone.now()
    job.save()
    return job


def add_error(job: Job, message: str) -> None:
    job.errors = [*job.errors, {"error": message}]
    job.save(update_fields=["errors", "updated_at"])


class JobTask(Task):
    """A task whose first argument is a Job id: failing for good marks the job failed."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        job = Job.objects.filter(pk=args[0] if args else kwargs.get("job_id")).first()
        if job:
            job.fail(f"{self.name} failed: {type(exc).__name__}: {exc}")
