"""Model tasks for studies, on the "gpu" queue: model choices for a study's trials, and a study
designed from the model. Each takes ids, embeds what is missing first (idempotent), then calls
one plain function of evalsite/studies/model_design.py. Failures end on the study's job.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from evalsite.jobs import progress
from evalsite.jobs.failures import RETRY
from evalsite.jobs.models import Job
from evalsite.jobs.progress import JobTask
from evalsite.retrieval import ingest
from evalsite.retrieval.embedder import (
    CheckpointChanged,
    CheckpointMissing,
    checkpoint_id,
    checkpoint_path,
    embedder_for,
    version_for,
)
from evalsite.stimuli.models import Catalogue
from evalsite.studies import history, model_design
from evalsite.studies.models import Answer, Study

log = logging.getLogger(__name__)


def _study(job: Job) -> Study:
    if job.study is None:  # queue_* always set it, and deleting the study deletes the job
        raise ValueError(f"job {job.pk} ({job.kind}): no study; expected the study it is for")
    return job.study


def _catalogue(job: Job) -> Catalogue:
    if job.catalogue is None:  # queue_design always sets it
        raise ValueError(
            f"job {job.pk} ({job.kind}): no catalogue; expected the one to design from"
        )
    return job.catalogue


def _embedder(job: Job):
    """The model of the checkpoint the job was queued with; None (the job failed, saying why)
    when no file holds it any more."""
    try:
        return embedder_for(job.checkpoint_id, job.params.get("checkpoint"))
    except CheckpointChanged as exc:
        job.fail(str(exc))
        return None


def _trial_clip_ids(study: Study) -> list[int]:
    ids: set[int] = set()
    for row in study.trials.values_list("reference_id", "candidate_a_id", "candidate_b_id"):
        ids.update(row)
    return sorted(ids)


@shared_task(name="studies.model_choices", base=JobTask, **RETRY)
def model_choices(job_id: int) -> dict:
    """Embed the study's trial clips that lack an embedding, then store every trial's choice
    with its history entry, unless the study was closed (or answered, unconfirmed) meanwhile."""
    job = Job.objects.select_related("study", "requested_by").get(pk=job_id)
    progress.start(job)
    embedder = _embedder(job)
    if embedder is None:
        return {"error": job.message}
    version = version_for(embedder)
    report = ingest.embed_clips(_trial_clip_ids(_study(job)), embedder=embedder)
    with transaction.atomic():
        # Closing takes the study's lock too: no choice changes once the study is closed.
        study = Study.objects.select_for_update().get(pk=_study(job).pk)
        n_answers = Answer.objects.filter(trial__study=study).count()
        refusal = _choices_refusal(job, study, n_answers)
        if refusal:
            job.fail(refusal)
            return {"error": refusal}
        before = history.model_choice_checkpoint(study)
        trials = list(study.trials.all())
        assigned = model_design.assign_model_choices(trials, version)
        _record_choices(job, study, before, assigned, n_answers)
    # Absolute counts of this run, and the clip errors rebuilt, never appended to: a task
    # delivered again counts each trial and lists each missing clip once.
    errors = {**report.failed, **report.unreadable}
    progress.report(
        job, total=len(trials), done=assigned.set, failed=len(trials) - assigned.set,
        clip_errors=[{"clip": clip_id, "error": errors.get(clip_id, "not embedded")}
                     for clip_id in sorted(assigned.missing)],
    )  # fmt: skip
    message = f"{assigned.set} trial(s) have the model's choice"
    if assigned.cleared:
        message += (
            f"; {assigned.cleared} earlier choice(s) cleared: their clips have no embedding "
            f"under checkpoint {job.checkpoint_id}"
        )
    progress.finish(job, message)
    return {"set": assigned.set, "cleared": assigned.cleared, "missing": len(assigned.missing)}


def _choices_refusal(job: Job, study: Study, n_answers: int) -> str:
    """Why the job may not change the study's model choices now ("" when it may): the rules the
    jobs page applied when it was queued, checked again as the choices are stored."""
    if study.status == Study.Status.CLOSED:
        return f"study {study.name!r} is closed; no model choice changed"
    if n_answers and not job.params.get("answers_confirmed"):
        return (
            f"study {study.name!r} has {n_answers} answer(s) now; no model choice changed: queue "
            "the job again, confirming that the export's model columns will change"
        )
    return ""


def _record_choices(job: Job, study: Study, before, assigned, n_answers: int) -> None:
    """The study's history entry for the choices stored (one per job, however often its task
    ran; none when no trial's choice was set or cleared)."""
    if not (assigned.set or assigned.cleared):
        return
    if study.events.filter(kind=history.Kind.MODEL_CHOICES, changes__job=job.pk).exists():
        return
    what = {"checkpoint": [before, job.checkpoint_id], "set": assigned.set,
            "cleared": assigned.cleared, "answers": n_answers, "job": job.pk}  # fmt: skip
    history.record(study, job.requested_by, history.Kind.MODEL_CHOICES, what)


class DesignTask(JobTask):
    """A design whose clips' files stayed unreadable through the retries fails, naming them: on
    the job, and on each clip (ready, with the error, as a failed embedding task leaves it), so
    the job page lists them as model choices do and the design is never made without them."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        if not isinstance(exc, ingest.UnreadableClips):
            return super().on_failure(exc, task_id, args, kwargs, einfo)
        job = Job.objects.filter(pk=args[0] if args else kwargs.get("job_id")).first()
        if job is None:
            return None
        ingest.mark_unreadable(exc.clip_errors)
        progress.refresh(job)
        job.fail(
            f"nothing designed: the audio of {len(exc.clip_errors)} clip(s) could not be read "
            f"({exc}); put the file(s) back and queue the design again"
        )
        return None


@shared_task(name="studies.design_from_model", base=DesignTask, **RETRY)
def design_from_model(job_id: int) -> dict:
    """Embed the catalogue (all ready clips), then build the study's trials from the model."""
    job = Job.objects.select_related("study", "catalogue", "requested_by").get(pk=job_id)
    if job.is_finished:  # redelivered after it finished: keep what it said
        return {"status": job.status}
    progress.start(job)
    study, p = _study(job), job.params
    if study.trials.exists():  # a second job for the study, or redelivered after the commit
        return _nothing_designed(job, study)
    embedder = _embedder(job)
    if embedder is None:
        return {"error": job.message}
    version = version_for(embedder)
    report = ingest.embed_clips(p["clips"], embedder=embedder)
    progress.refresh(job)
    if report.unreadable:  # retried for them (an OSError); never designed without them unsaid
        raise ingest.UnreadableClips(report.unreadable)
    try:
        with transaction.atomic():  # the trials and their history entry commit together
            made = model_design.build_model_trials(
                study, _catalogue(job), version, p["strategy"], p["per_instrument"], p["seed"],
                practice=p.get("practice", 2), catch_per_kind=p.get("catch_per_kind", 2),
            )  # fmt: skip
            _record_design(job, study, len(made))
    except model_design.StudyNotEmpty:  # another job designed it meanwhile
        return _nothing_designed(job, study)
    except model_design.DesignError as exc:
        job.fail(str(exc))
        return {"error": str(exc)}
    progress.finish(job, _designed(job, len(made), study.design.get("practice_notes")))
    return {"trials": len(made)}


def _designed(job: Job, added: int, notes: list[str] | None = None) -> str:
    """The job's message; with the design's notes on practice (Study.design["practice_notes"])."""
    done = f"{added} trial(s) designed ({job.params['strategy']}, seed {job.params['seed']})"
    return " ".join([f"{done}.", *notes]) if notes else done


def _record_design(job: Job, study: Study, added: int) -> None:
    p = job.params
    what = {"added": added, "how": "model", "strategy": p["strategy"],
            "per_instrument": p["per_instrument"], "catch_per_kind": p.get("catch_per_kind", 2),
            "seed": p["seed"], "practice": p.get("practice", 2),
            "checkpoint": job.checkpoint_id, "job": job.pk}  # fmt: skip
    history.record(study, job.requested_by, history.Kind.TRIALS, what)


def _nothing_designed(job: Job, study: Study) -> dict:
    """Finish the job without designing: the study's trials exist (never design twice). When
    this job designed them (a retry after they committed), it says so, as its first try would."""
    own = study.events.filter(kind=history.Kind.TRIALS, changes__job=job.pk).first()
    if own is not None:
        progress.finish(job, _designed(job, own.changes["added"]))
        return {"trials": own.changes["added"]}
    existing = study.trials.count()
    progress.finish(job, f"study already has {existing} trial(s); nothing designed")
    return {"trials": 0, "existing": existing}


def _new_job(kind: str, study: Study, user, params: dict | None = None, **fields) -> Job:
    user = user if getattr(user, "is_authenticated", False) else None
    try:
        path = checkpoint_path()
        ckpt = checkpoint_id(path)
    except CheckpointMissing as exc:
        job = Job.objects.create(kind=kind, study=study, catalogue=study.catalogue,
                                 requested_by=user)  # fmt: skip
        job.fail(str(exc))
        return job
    params = {**(params or {}), "checkpoint": str(path)}  # the worker loads this checkpoint
    return Job.objects.create(
        kind=kind, study=study, requested_by=user, checkpoint_id=ckpt, params=params, **fields
    )


def queue_model_choices(study: Study, user=None, *, answers_confirmed: bool = False) -> Job:
    """Queue model choices for every trial of the study, after the current transaction commits.
    answers_confirmed: the researcher accepted that the export's model columns of the study's
    answers change; without it, the task changes nothing once the study has answers."""
    params = {"answers_confirmed": answers_confirmed}
    job = _new_job(Job.Kind.MODEL_CHOICE, study, user, params, catalogue=study.catalogue)
    if not job.is_finished:
        job.total = study.trials.count()
        job.save(update_fields=["total"])
        progress.queue_on_commit(job, model_choices)
    return job


def queue_design(
    study: Study,
    catalogue,
    strategy: str,
    per_instrument: int,
    seed: int = 0,
    practice: int = 2,
    catch_per_kind: int = 2,
    user=None,
) -> Job:
    """Queue a model design of the (empty) study from the catalogue, after the commit; its
    trials are recorded in the study's history as `user`'s."""
    if strategy not in model_design.STRATEGIES:
        raise model_design.DesignError(
            f"strategy {strategy!r}: expected one of {', '.join(model_design.STRATEGIES)}"
        )
    model_design.check_counts(
        per_instrument=per_instrument, catch_per_kind=catch_per_kind, practice=practice
    )
    clips = model_design.catalogue_clip_ids(catalogue)
    params = {
        "strategy": strategy, "per_instrument": per_instrument, "seed": seed,
        "practice": practice, "catch_per_kind": catch_per_kind, "clips": clips,
    }  # fmt: skip
    job = _new_job(
        Job.Kind.DESIGN, study, user, catalogue=catalogue, params=params, total=len(clips)
    )
    if not job.is_finished:
        progress.queue_on_commit(job, design_from_model)
    return job
