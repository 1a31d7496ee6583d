"""Creating jobs and deriving their progress from the state of their objects.

An ingest job's clip counts as done when it has an embedding under the job's checkpoint, as
failed when the clip is failed, or ready with an error (an embedding task that failed for good
left it unembedded; queuing it again clears that error); the errors are listed. Recomputing
from the database makes progress right however often a task ran (redelivery after a crash,
retries). A model-choice job's
task reports its trials itself, as absolute counts (report): a trial's stored choice may be an
earlier checkpoint's.
"""

from __future__ import annotations

import logging

from celery import Task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from evalsite.jobs.failures import RetryingTask, describe
from evalsite.jobs.models import Job
from evalsite.stimuli.models import Clip

log = logging.getLogger(__name__)


def queue_on_commit(job: Job, task: Task) -> None:
    """Send task(job.pk) once the current transaction commits.

    A broker that refuses the message (down, unreachable: kombu's OperationalError) fails the
    job with the reason instead of raising: the job would otherwise stay queued forever (a page
    poll never ends a job), and the request that queued it would answer 500.
    """

    def publish() -> None:
        try:
            task.delay(job.pk)
        except Exception as exc:  # whatever stopped the publish, no worker will run the job
            log.exception("could not queue %s for job %s", task.name, job.pk)
            job.fail(f"could not queue: {exc}")

    transaction.on_commit(publish)


def start(job: Job) -> None:
    """Queued -> running; a job another task has finished or failed meanwhile stays so."""
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, updated_at=now
    ):
        job.status, job.updated_at = Job.Status.RUNNING, now


def refresh(job: Job) -> Job:
    """Recount done/failed/errors from the database; finish an ingest job when nothing is left.

    Page polls call this while workers finish, fail or list errors on the same job: the counts
    are taken first, then stored under the row's lock with the job-level errors and status read
    there, so a poll never writes back a stale status, message or error list. Design and
    model-choice jobs are finished by their task only."""
    job.refresh_from_db()
    return _store(job, _recount(job))


def report(job: Job, *, total: int, done: int, failed: int, clip_errors: list[dict]) -> Job:
    """Progress a task counted itself (absolute numbers, so a redelivered task counts nothing
    twice): clip_errors replace the listed clip errors, job-level errors stay."""
    return _store(job, {"total": total, "done": done, "failed": failed, "errors": clip_errors})


def _store(job: Job, counts: dict) -> Job:
    with transaction.atomic():
        row = Job.objects.select_for_update().get(pk=job.pk)
        if "errors" in counts:  # the clips' errors, then the job-level ones as stored now
            counts["errors"] = counts["errors"] + [e for e in row.errors if "clip" not in e]
        for name, value in counts.items():
            setattr(row, name, value)
        fields = [*counts, "updated_at"]
        finished = row.kind == Job.Kind.INGEST and row.done + row.failed >= row.total
        if finished and row.status in (Job.Status.QUEUED, Job.Status.RUNNING):
            row.status, row.finished_at = Job.Status.DONE, timezone.now()
            fields += ["status", "finished_at"]
        row.save(update_fields=fields)
    _copy_state(row, job)
    return job


def _recount(job: Job) -> dict:
    """The fields the database state determines for a job of clips: total, done, failed and
    the failed clips' errors. A model-choice job's counts come from its task (report): trials
    keep choices of earlier checkpoints, which say nothing about this job's work."""
    if job.kind in (Job.Kind.INGEST, Job.Kind.DESIGN):
        ids = job.params.get("clips", [])
        embedded = set(embedded_clips(ids, job.checkpoint_id))
        unfinished = Q(status=Clip.Status.FAILED) | (Q(status=Clip.Status.READY) & ~Q(error=""))
        failed = Clip.objects.filter(unfinished, pk__in=ids).exclude(pk__in=embedded)
        errors = [
            {"clip": c.pk, "name": c.name or c.piece or f"clip {c.pk}", "error": c.error}
            for c in failed.order_by("id")[:200]
        ]
        # A clip no longer in the catalogue (a failed one the researcher removed,
        # studies.clip_removal) will never be embedded: it counts as failed, or the job
        # would wait for it for ever; its error went with it.
        gone = len(set(ids) - set(Clip.objects.filter(pk__in=ids).values_list("pk", flat=True)))
        return {
            "total": len(ids),
            "done": len(embedded),
            "failed": failed.count() + gone,
            "errors": errors,
        }
    return {}


def embedded_clips(clips, checkpoint_id: str):
    """The ids among `clips` (ids, or a query of them) with an embedding under the checkpoint:
    what an ingest job counts done, and what the Model work page does not count missing."""
    from evalsite.retrieval.models import Embedding

    return Embedding.objects.filter(
        clip_id__in=clips, version__checkpoint_id=checkpoint_id
    ).values_list("clip_id", flat=True)


def unembedded(catalogue_id: int, checkpoint_id: str) -> tuple[int, int]:
    """(missing, ready): the catalogue's ready clips without an embedding under the checkpoint
    (an upload or import while the broker was down, an embedding that failed, a new
    checkpoint), and its ready clips; an ingest job of the catalogue embeds the missing ones.
    Every ready clip, attention-set parts too (the retrieval page counts only the mixes it
    searches)."""
    ready = Clip.objects.filter(catalogue_id=catalogue_id, status=Clip.Status.READY)
    ids = ready.values("pk")
    return ready.exclude(pk__in=embedded_clips(ids, checkpoint_id)).count(), ready.count()


def _copy_state(source: Job, target: Job) -> None:
    for f in ("status", "total", "done", "failed", "errors", "message", "finished_at"):
        setattr(target, f, getattr(source, f))
    target.updated_at = source.updated_at


def finish(job: Job, message: str = "") -> Job:
    job = refresh(job)
    job.status = Job.Status.DONE
    job.message = message or job.message
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "message", "finished_at", "updated_at"])
    return job


def add_error(job: Job, message: str) -> None:
    """List a job-level error, appended under the row's lock (never to a stale copy's list)."""
    with transaction.atomic():
        row = Job.objects.select_for_update().get(pk=job.pk)
        row.errors = [*row.errors, {"error": message}]
        row.save(update_fields=["errors", "updated_at"])
    job.errors, job.updated_at = row.errors, row.updated_at


class JobTask(RetryingTask):
    """A task whose first argument is a Job id: failing for good marks the job failed."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        job = Job.objects.filter(pk=args[0] if args else kwargs.get("job_id")).first()
        if job:
            job.fail(f"{self.name} failed: {describe(exc)}")
