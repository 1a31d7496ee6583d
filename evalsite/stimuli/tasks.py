"""Ingest tasks: prepare (validate, decode, loudness, transcode) on "cpu", embed on "gpu".

Each task takes ids, calls plain functions in evalsite/retrieval/ingest.py and is idempotent;
tasks are queued after the database commit (queue_ingest). Bad audio fails its clip and the
task goes on. A task that fails for good (retries spent, an error outside the retry list, a time
limit) marks only the clips it did not finish: a pending clip it could not prepare is failed, a
ready clip it could not embed stays ready with the error (its job counts it failed; queuing it
again clears the error). The job page lists the errors.
"""

from __future__ import annotations

import logging

from celery import chain, shared_task
from django.conf import settings

from evalsite.jobs import progress
from evalsite.jobs.failures import RETRY, RetryingTask, describe
from evalsite.jobs.models import Job
from evalsite.jobs.progress import JobTask
from evalsite.retrieval import ingest
from evalsite.retrieval.embedder import (
    CheckpointChanged,
    CheckpointMissing,
    ModelUnavailable,
    checkpoint_id,
    checkpoint_path,
    embedder_for,
)
from evalsite.stimuli.models import Catalogue, Clip

log = logging.getLogger(__name__)


def _job(job_id: int | None) -> Job | None:
    return Job.objects.filter(pk=job_id).first() if job_id else None


def _current_checkpoint_id() -> str:
    try:
        return checkpoint_id()
    except CheckpointMissing:
        return ""


class ClipTask(RetryingTask):
    """A task of a batch of clips (clip_ids, job_id). Failing for good, it leaves its error on
    the clips it did not finish and on its job, whose progress then counts them."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        clip_ids = args[0] if args else kwargs.get("clip_ids", [])
        job = _job(args[1] if len(args) > 1 else kwargs.get("job_id"))
        message = f"{self.name} failed: {describe(exc)}"
        self.mark_unfinished(clip_ids, job, message, getattr(exc, "clip_errors", {}))
        if job:
            progress.add_error(job, message)
            progress.refresh(job)

    def mark_unfinished(self, clip_ids: list[int], job: Job | None, message: str,
                        clip_errors: dict[int, str]) -> None:  # fmt: skip
        """The ready clips not embedded: the error (clip_errors' own when it names the clip),
        status unchanged, as a ready clip's audio is not at fault."""
        from evalsite.retrieval.models import Embedding

        # Done means embedded with the job's checkpoint (what its progress counts), not with any
        # model: a clip embedded only by an earlier model is not done for this job.
        ckpt = job.checkpoint_id if job else _current_checkpoint_id()
        embedded = Embedding.objects.filter(
            clip_id__in=clip_ids, version__checkpoint_id=ckpt
        ).values_list("clip_id")
        ready = Clip.objects.filter(pk__in=clip_ids, status=Clip.Status.READY)
        for clip_id in ready.exclude(pk__in=embedded).values_list("pk", flat=True):
            Clip.objects.filter(pk=clip_id).update(error=clip_errors.get(clip_id, message))


class PrepareTask(ClipTask):
    def mark_unfinished(self, clip_ids: list[int], job: Job | None, message: str,
                        clip_errors: dict[int, str]) -> None:  # fmt: skip
        """The pending clips were not prepared: failed. The ready ones go on to be embedded,
        the step of the chain the failure skipped."""
        pending = Clip.objects.filter(pk__in=clip_ids, status=Clip.Status.PENDING)
        pending.update(status=Clip.Status.FAILED, error=message)
        try:
            embed_clips.si(clip_ids, job.pk if job else None).delay()
        except Exception:  # the broker refused it: nothing will embed them; say so on them
            log.exception("could not queue the embedding of clips %s", clip_ids)
            super().mark_unfinished(clip_ids, job, message, clip_errors)


@shared_task(name="stimuli.prepare_clips", base=PrepareTask, **RETRY)
def prepare_clips(clip_ids: list[int], job_id: int | None = None) -> dict:
    job = _job(job_id)  # not started here: the job runs once its gpu step does (embed_clips)
    errors = ingest.prepare_clips(clip_ids)
    if job:
        progress.refresh(job)
    return {"failed": len(errors)}


@shared_task(name="stimuli.embed_clips", base=ClipTask, **RETRY)
def embed_clips(clip_ids: list[int], job_id: int | None = None) -> dict:
    job = _job(job_id)
    if job:
        progress.start(job)
    try:  # a job's clips: with the checkpoint it was queued with, which its progress counts
        embedder = embedder_for(job.checkpoint_id, job.params.get("checkpoint")) if job else None
        report = ingest.embed_clips(clip_ids, embedder=embedder)
    except (CheckpointMissing, CheckpointChanged, ModelUnavailable) as exc:  # permanent: no retry
        if job:
            job.fail(str(exc))
        log.error("%s", exc)
        return {"error": str(exc)}
    except ingest.NonFiniteEmbeddings as exc:  # a broken model: permanent, and not the clips'
        ingest.mark_unembedded(exc.clip_errors)
        if job:
            progress.refresh(job)
            job.fail(str(exc))
        log.error("%s", exc)
        return {"error": str(exc)}
    if job:
        progress.refresh(job)
    if report.unreadable:  # retried (an OSError) for the unreadable clips alone: others are done
        raise ingest.UnreadableClips(report.unreadable)
    return {"embedded": len(report.embedded), "skipped": len(report.skipped)}


def ingest_signature(clip_ids: list[int], job_id: int | None = None):
    """prepare (cpu) then embed (gpu), for one batch of clips."""
    return chain(prepare_clips.si(clip_ids, job_id), embed_clips.si(clip_ids, job_id))


@shared_task(name="stimuli.ingest_catalogue", base=JobTask, **RETRY)
def ingest_catalogue(job_id: int) -> int:
    """Fan a job's clips out into batches (each batch: prepare then embed), each batch once: the
    job records how many clips it has queued after each batch, so a retry (a database error
    after the loop) or a redelivery queues only what was not queued yet."""
    job = _job(job_id)
    if job is None:
        return 0
    # Not started here (a cpu task): the job stays queued, waiting for a gpu worker
    # (Job.waiting_for), until embed_clips starts it.
    ids, batch = job.params.get("clips", []), settings.CSN_EMBED_BATCH
    # `queued` counts clips: a retry on a worker with another CSN_EMBED_BATCH resumes at the
    # same clip.
    for i in range(job.params.get("queued", 0), len(ids), batch):
        ingest_signature(ids[i : i + batch], job.pk).delay()
        job.params["queued"] = min(i + batch, len(ids))
        Job.objects.filter(pk=job.pk).update(params=job.params)
    progress.refresh(job)
    return len(ids)


def queue_ingest(catalogue: Catalogue, clip_ids: list[int] | None = None, study=None) -> Job:
    """Create an ingest job for a catalogue's clips (default: all not failed) and queue it after
    the current transaction commits. The job is visible at once on the progress page."""
    if clip_ids is None:
        clip_ids = list(
            catalogue.clips.exclude(status=Clip.Status.FAILED)
            .order_by("id")
            .values_list("id", flat=True)
        )
    try:
        path = checkpoint_path()
        ckpt = checkpoint_id(path)
    except CheckpointMissing as exc:
        job = Job.objects.create(kind=Job.Kind.INGEST, catalogue=catalogue, study=study)
        job.fail(str(exc))
        return job
    job = Job.objects.create(
        kind=Job.Kind.INGEST,
        catalogue=catalogue,
        study=study,
        checkpoint_id=ckpt,
        params={"clips": clip_ids, "checkpoint": str(path)},
        total=len(clip_ids),
    )
    # A new try: an earlier embedding task's error on a ready clip no longer holds (and would
    # count the clip failed before this job's task ran).
    Clip.objects.filter(pk__in=clip_ids, status=Clip.Status.READY).exclude(error="").update(
        error=""
    )
    progress.queue_on_commit(job, ingest_catalogue)
    return job


def queue_missing_embeddings(catalogue: Catalogue) -> tuple[Job | None, str]:
    """Queue an ingest job (`queue_ingest`, as the model-work page's Embed clips) for the
    catalogue's clips without an embedding under the deployed checkpoint (CSN_CHECKPOINT), and
    say what was done. Idempotent: nothing is queued while every clip has one, or while an
    unfinished ingest job of the catalogue embeds with that checkpoint. (None, why) then."""
    try:
        ckpt = checkpoint_id(checkpoint_path())
    except CheckpointMissing as exc:
        return None, str(exc)
    label = f"catalogue {catalogue.name!r}"
    running = catalogue.jobs.filter(
        kind=Job.Kind.INGEST,
        checkpoint_id=ckpt,
        status__in=[Job.Status.QUEUED, Job.Status.RUNNING],
    ).first()
    if running is not None:
        return None, (
            f"{label}: job {running.pk} ({running.status}) already embeds it with checkpoint "
            f"{ckpt}; nothing to queue"
        )
    clips = catalogue.clips.exclude(status=Clip.Status.FAILED)
    missing = list(
        clips.exclude(pk__in=progress.embedded_clips(clips.values("pk"), ckpt))
        .order_by("id")
        .values_list("id", flat=True)
    )
    if not missing and not clips.exists():  # a mistyped import stored nothing: not "all done"
        return None, f"{label} has no clips to embed; nothing to queue"
    if not missing:
        return None, f"{label}: every clip is embedded with checkpoint {ckpt}; nothing to queue"
    job = queue_ingest(catalogue, clip_ids=missing)
    count = f"{len(missing)} clip{'s' if len(missing) != 1 else ''}"
    return job, (
        f"queued {job.get_kind_display()} job {job.pk}: {count} of {label} "
        f"without an embedding under checkpoint {ckpt}"
    )
