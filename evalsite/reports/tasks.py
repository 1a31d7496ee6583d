"""Report tasks (queue "cpu", routed by name "reports.*" in evalsite/celery.py).

- recompute_report(study_id): compute and store a ReportSnapshot; idempotent (same answers and
  config: the latest snapshot is kept, no new row).
- schedule_report(study_id): debounced request, to call whenever answers arrive. At most one
  recomputation per study is queued at a time; it runs REPORT_DEBOUNCE_S seconds after the first
  request of a burst and, because `pending` is cleared when it starts, answers that arrive while
  it runs queue exactly one more. Queued only after the caller's transaction commits.

Where the site calls it: after an answer is saved (evalsite/studies participant flow), e.g.
`schedule_report(participant.study_id)` inside the view's transaction, and when a study edit
changes `report_settings`; see docs/statistics.md.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evalsite.reports.models import ReportState

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(minutes=15)  # a pending request older than this is queued again
# The study settings the report reads (services.report_config_for): a change recomputes it.
REPORT_SETTINGS = ("exclusion", "screening", "report")


def report_settings(study) -> dict:
    """What the report reads of the study's settings (defaults filled in)."""
    return {key: study.setting(key) for key in REPORT_SETTINGS}


def debounce_seconds() -> float:
    return float(getattr(settings, "REPORT_DEBOUNCE_S", 30))


@shared_task(name="reports.recompute_report", acks_late=True)
def recompute_report(study_id: int) -> int | None:
    """Compute the study's report now; returns the id of the snapshot that holds it (the latest,
    None if there is none, when answers were withdrawn during the run, which queues another)."""
    from evalsite.reports.services import compute_snapshot

    ReportState.objects.filter(study_id=study_id).update(pending=False, started_at=timezone.now())
    snap = compute_snapshot(study_id)
    return snap.pk if snap else None


def _enqueue(study_id: int, countdown: float) -> None:
    try:
        recompute_report.apply_async((study_id,), countdown=countdown)
    except Exception:  # broker down: clear the flag so the next answer tries again
        log.exception("could not queue the report of study %s", study_id)
        ReportState.objects.filter(study_id=study_id).update(pending=False)


def schedule_report(study_id: int, countdown: float | None = None) -> bool:
    """Queue a debounced recomputation; False when one is already pending for this study."""
    countdown = debounce_seconds() if countdown is None else countdown
    with transaction.atomic():
        state = ReportState.lock(study_id)
        stale = state.requested_at and timezone.now() - state.requested_at > STALE_AFTER
        if state.pending and not stale:  # a lost message must not block reports forever
            return False
        state.pending, state.requested_at = True, timezone.now()
        state.save(update_fields=["pending", "requested_at"])
        transaction.on_commit(lambda: _enqueue(study_id, countdown))
    return True
