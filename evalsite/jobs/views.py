"""Job progress for experimenters: a page per study, an includable HTML fragment, JSON, and the
buttons that queue model work (ingest the catalogue, model choices, design from the model).
All three need the model: without a CSN_CHECKPOINT file the page says so before any click,
disables them, and refuses their POST without creating a job. Model choices and a design change
the study: the page refuses them (and does not offer them) where the study's other edit pages
would refuse a change (`refusal`), and their tasks record what they changed in the study's
history. The page is one of the study's tabs (studies/experimenter/layout.html).

URLs: /jobs/study/<pk>/ (page), /jobs/study/<pk>/fragment (the job table and the count of clips
without an embedding, which the page polls: static/jobs/study-jobs.js), /jobs/study/<pk>.json,
POST /jobs/study/<pk>/{ingest,model-choices,design}.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from evalsite.jobs import progress
from evalsite.jobs.models import Job
from evalsite.retrieval.embedder import CheckpointMissing, checkpoint_id, missing_checkpoint
from evalsite.studies.experimenter import editable
from evalsite.studies.model_design import STRATEGIES, DesignError
from evalsite.studies.models import MAX_PRACTICE_TRIALS, Answer, Study
from evalsite.studies.permissions import get_visible_study

ACTIONS = ("ingest", "model-choices", "design")
STUDY_CHANGES = ("model-choices", "design")  # refused as the study's other edits are


def study_jobs(study):
    """The study's jobs and those of its catalogue, newest first, with fresh counts."""
    jobs = Job.objects.filter(Q(study=study) | Q(catalogue_id=study.catalogue_id, study=None))
    jobs = list(jobs.order_by("-created_at", "-id")[:20])
    for job in jobs:
        if not job.is_finished:
            progress.refresh(job)
    return jobs


def _context(study) -> dict:
    no_checkpoint = missing_checkpoint()
    return {
        "study": study, "jobs": study_jobs(study), "strategies": STRATEGIES,
        "closed": study.status == Study.Status.CLOSED, "n_trials": study.trials.count(),
        "n_answers": Answer.objects.filter(trial__study=study).count(),
        "practice": shown_practice(study), "max_practice": MAX_PRACTICE_TRIALS,
        "no_checkpoint": no_checkpoint,
        "unembedded": None if no_checkpoint else unembedded_clips(study),
    }  # fmt: skip


def unembedded_clips(study: Study) -> dict | None:
    """How many of the study's ready clips have no embedding with the current checkpoint (None
    without a catalogue or checkpoint): clips added while the broker was down are never
    embedded until "Embed clips" queues them, and the page says so."""
    if study.catalogue_id is None:
        return None
    try:
        ckpt = checkpoint_id()
    except CheckpointMissing:  # gone since the page checked
        return None
    missing, ready = progress.unembedded(study.catalogue_id, ckpt)
    return {"missing": missing, "ready": ready, "checkpoint": ckpt}


def shown_practice(study: Study) -> int:
    """How many practice trials a participant of the study sees (its practice_trials setting):
    the model design's default, as the random design's."""
    return int(study.setting("practice_trials") or 0)


def refusal(study: Study, action: str, post) -> str:
    """Why the study's rules refuse the job that changes it ("" when they allow it), as the
    other edit pages do: nothing on a closed study (`experimenter.editable`, checked first);
    a design only for a study without trials; model choices of a study with answers only when
    the researcher confirms that the export's model columns will change."""
    if action == "design" and (n := study.trials.count()):
        return (
            f"The study already has {n} trial(s); the model designs only a study without trials "
            "(a draft's trials can be deleted on the Trials page: Delete all trials)."
        )
    if action == "model-choices" and post.get("confirm_answers") != "on":
        if answers := Answer.objects.filter(trial__study=study).count():
            return (
                f"The study has {answers} answer(s): recomputing the model choices changes the "
                "model_choice, model_margin and agree columns of their export. Tick the box to "
                "confirm."
            )
    return ""


@login_required
def study_page(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    return render(request, "jobs/study.html", _context(study))


@login_required
def study_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    return render(request, "jobs/_study_fragment.html", _context(study))


@login_required
def study_json(request: HttpRequest, pk: int) -> JsonResponse:
    study = get_visible_study(request.user, pk)
    fields = ("id", "kind", "status", "total", "done", "failed", "errors", "message")
    rows = [
        {f: getattr(j, f) for f in fields}
        | {
            "checkpoint_id": j.checkpoint_id,
            "created_at": j.created_at.isoformat(),
            "waiting_for": j.waiting_for,
        }  # fmt: skip
        for j in study_jobs(study)
    ]
    return JsonResponse({"study": study.pk, "jobs": rows})


@login_required
@require_POST
def queue(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    from evalsite.stimuli.tasks import queue_ingest
    from evalsite.studies.tasks import queue_design, queue_model_choices

    study = get_visible_study(request.user, pk)
    if action not in ACTIONS:  # a typo must not look like a queued job
        raise Http404(f"action {action!r}: expected one of {', '.join(ACTIONS)}")
    post, job = request.POST, None
    # Embedding adds to the catalogue, not to the study: the other two change the study.
    if action in STUDY_CHANGES and not editable(request, study):
        return redirect("jobs:study", pk=study.pk)
    if no_checkpoint := missing_checkpoint():  # what the page says; no failed job to read
        messages.error(request, no_checkpoint)
    elif action in STUDY_CHANGES and (refused := refusal(study, action, post)):
        messages.error(request, refused)
    elif action in ("ingest", "design") and study.catalogue is None:
        messages.error(request, "The study has no catalogue yet; add clips first.")
    elif action == "ingest" and study.catalogue is not None:  # None: the message above
        job = queue_ingest(study.catalogue, study=study)
    elif action == "model-choices":
        confirmed = post.get("confirm_answers") == "on"
        job = queue_model_choices(study, request.user, answers_confirmed=confirmed)
    elif action == "design":
        try:  # queue_design checks the ranges (per_instrument >= 1, 0 <= practice <= 20, ...)
            job = queue_design(
                study, study.catalogue, post.get("strategy", ""),
                _int_param(post, "per_instrument", 10), _int_param(post, "seed", 0),
                practice=_int_param(post, "practice", shown_practice(study)),
                catch_per_kind=_int_param(post, "catch_per_kind", 2), user=request.user,
            )  # fmt: skip
        except DesignError as exc:
            messages.error(request, str(exc))
    # failed at once: the checkpoint went since the check above, or the broker refused the task
    # (queued after the commit, which is now: requests run in autocommit)
    if job is not None and job.status == Job.Status.FAILED:
        messages.error(request, f"The {job.get_kind_display()} job failed: {job.message}")
    return redirect("jobs:study", pk=study.pk)


def _int_param(post, name: str, default: int) -> int:
    """The form field as an integer (default when left empty); DesignError naming it if not."""
    raw = post.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise DesignError(f"{name}={raw!r}: expected an integer") from None
