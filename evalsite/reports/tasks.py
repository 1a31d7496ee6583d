"""Report tasks (queue "cpu", routed by name "reports.*" in evalsite/celery.py).

- recompute_report(study_id): compute and store a ReportSnapshot; idempotent (same answers and
  config: the latest snapshot is kept, no new row).
- schedule_report(study_id): debounced request, to call when what the report reads changes (a
  participant finished or withdrew, a study edit; below). At most one
  recomputation per study is queued at a time; it runs REPORT_DEBOUNCE_S seconds after the first
  request of a burst and, because `pending` is cleared when it starts, answers that arrive while
  it runs queue exactly one more. Queued only after the caller's transaction commits.

A request that comes to nothing is recorded on the study's ReportState (`failure`, its reason
and time) and shown on the report page until a recomputation runs: a publish the broker refused
("queuing failed"; the Recompute button says so at once) and a computation that failed ("the
computation failed", after one retry of a transient database error).

After a failed publish, requests skip the broker for REPORT_QUEUE_BACKOFF_S seconds (the
Recompute button excepted): a broker that never answers holds each publish for its timeouts
(about 10 s), which every participant whose answer queues the report would otherwise wait for.
Their answers are stored all the same, and the first request after the window queues a
recomputation that reads every answer.

Where the site calls it: when a participant finishes the study (`flow_trials`, once per
finished participant rather than per answer, inside the view's transaction: a study's first
report waits for its first finished participant, or for the Recompute button), when one
withdraws (`flow_withdraw`), when a study edit changes `report_settings` or what the report
plans at (`experimenter`, `reports.signals`), and when the report page shows a report computed
by an earlier version of the site (`reports.views`); see docs/statistics.md.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from evalsite.jobs.failures import RetryingTask, describe, without_server_paths
from evalsite.reports.models import ReportState

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(minutes=15)  # a pending request older than this is queued again
# The study settings the report reads (study_config.report_config_for): a change recomputes it, as
# does a change of the study's instruments (report_settings).
REPORT_SETTINGS = ("exclusion", "screening", "report")
QUEUING_FAILED = "queuing failed"
COMPUTATION_FAILED = "the computation failed"


def report_settings(study) -> dict:
    """What the report reads of the study's settings (defaults filled in) and its instruments
    (the report names one without answers)."""
    read = {key: study.setting(key) for key in REPORT_SETTINGS}
    names = study.instruments or []
    return read | {"instruments": list(names) if isinstance(names, list) else names}


def debounce_seconds() -> float:
    return float(getattr(settings, "REPORT_DEBOUNCE_S", 30))


def queue_backoff_seconds() -> float:
    return float(getattr(settings, "REPORT_QUEUE_BACKOFF_S", 60))


def _backing_off(state: ReportState) -> bool:
    """A publish failed less than REPORT_QUEUE_BACKOFF_S ago (read from the row already locked:
    no query of its own)."""
    if state.failure != QUEUING_FAILED or state.failed_at is None:
        return False
    return timezone.now() - state.failed_at < timedelta(seconds=queue_backoff_seconds())


def _record_failure(study_id: int, failure: str, reason: str, **fields) -> None:
    """Store why (shown on the report page and by the Recompute button: no server paths)."""
    ReportState.objects.filter(study_id=study_id).update(
        failure=failure,
        failure_reason=without_server_paths(reason),
        failed_at=timezone.now(),
        **fields,
    )


class ReportTask(RetryingTask):
    """A computation that fails for good says so on the report page (ReportState.failure)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        study_id = args[0] if args else kwargs.get("study_id")
        _record_failure(study_id, COMPUTATION_FAILED, describe(exc))


@shared_task(
    name="reports.recompute_report",
    base=ReportTask,
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),  # the database, for a moment: once more
    max_retries=1,
    retry_backoff=5,
    retry_jitter=True,
)
def recompute_report(study_id: int) -> int | None:
    """Compute the study's report now; returns the id of the snapshot that holds it (the latest,
    None if there is none, when answers were withdrawn during the run, which queues another)."""
    from evalsite.reports.services import compute_snapshot

    ReportState.objects.filter(study_id=study_id).update(
        pending=False, started_at=timezone.now(), failure="", failure_reason="", failed_at=None
    )
    snap = compute_snapshot(study_id)
    return snap.pk if snap else None


def _enqueue(study_id: int, countdown: float) -> None:
    try:
        recompute_report.apply_async((study_id,), countdown=countdown)
    except Exception as exc:  # broker down: clear the flag; a request tries again (`_backing_off`)
        log.exception("could not queue the report of study %s", study_id)
        _record_failure(study_id, QUEUING_FAILED, str(exc), pending=False)


def queue_failure(study_id: int, since) -> str:
    """Why the study's recomputation could not be queued at or after `since` ("" if it was)."""
    state = ReportState.objects.filter(
        study_id=study_id, failure=QUEUING_FAILED, failed_at__gte=since
    ).first()
    return state.failure_reason if state else ""


def recomputing_since(state: ReportState | None, read_at) -> bool:
    """Whether a recomputation that will read the answers after `read_at` (a snapshot's read) is
    on its way: one is queued (`pending`), or one started at or after it has neither failed nor
    run past STALE_AFTER (a worker lost mid-run does not hold the report back for good). A run
    clears `pending` as it starts, so `pending` alone misses the one now computing."""
    if state is None:
        return False
    if state.pending:
        return True
    started = state.started_at
    if started is None or started < read_at or timezone.now() - started > STALE_AFTER:
        return False
    return state.failed_at is None or state.failed_at < started


def schedule_report(study_id: int, countdown: float | None = None, backoff: bool = True) -> bool:
    """Queue a debounced recomputation; False when one is already pending for this study, or
    when a publish failed less than REPORT_QUEUE_BACKOFF_S ago and `backoff` (False where
    someone asked for it and is told the outcome: the Recompute button)."""
    countdown = debounce_seconds() if countdown is None else countdown
    with transaction.atomic():
        state = ReportState.lock(study_id)
        stale = state.requested_at and timezone.now() - state.requested_at > STALE_AFTER
        if state.pending and not stale:  # a lost message must not block reports forever
            return False
        if backoff and _backing_off(state):  # the failure stays shown on the report page
            log.info("report of study %s not queued: the broker failed at %s", study_id,
                     state.failed_at)  # fmt: skip
            return False
        state.pending, state.requested_at = True, timezone.now()
        state.save(update_fields=["pending", "requested_at"])
        transaction.on_commit(lambda: _enqueue(study_id, countdown))
    return True
