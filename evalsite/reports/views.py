"""Report pages and downloads. Every view reads the latest stored ReportSnapshot: nothing heavy
is computed in a request. Login required; only the study's owner and the users it is shared with
(Study.visible_to) see it; anyone else gets 404, which does not reveal that the study exists."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.rendering import notes as report_notes
from evalsite.reports.rendering.summary import config_level, note, rounded, table_names, title
from evalsite.reports.study_config import by_earlier_version, changes_since
from evalsite.reports.tasks import queue_failure, recomputing_since, schedule_report
from evalsite.studies.models import Answer, Study

if TYPE_CHECKING:
    import pandas as pd

NO_ANSWERS = (
    "This study has no answers yet (practice answers are not counted); its report is computed "
    "once participants answer."
)

PLOT_TITLES = {  # display order (the JSON field does not keep key order)
    "consent": "Consent per instrument against chance and the noise ceiling",
    "psychometric": "Consent against the model's margin",
    "position_bias": "Position bias: share choosing screen position A",
    "fatigue": "Consent along the session (trial-index bins)",
}


def _study(request: HttpRequest, key: str) -> Study:
    # isdigit alone also accepts digits int() rejects ("²"): a 500 instead of a 404.
    lookup: dict[str, int | str] = (
        {"pk": int(key)} if key.isascii() and key.isdigit() else {"slug": key}
    )
    study = get_object_or_404(Study, **lookup)
    if not study.visible_to(request.user):
        raise Http404("no such study")
    return study


def _latest(study: Study) -> ReportSnapshot | None:
    return ReportSnapshot.objects.filter(study=study).order_by("-computed_at").first()


def _has_answers(study: Study) -> bool:
    """Whether the study has an answer the report reads (its export leaves practice out)."""
    return Answer.objects.filter(participant__study=study, trial__is_practice=False).exists()


def _snapshot_or_404(study: Study) -> ReportSnapshot:
    """The latest snapshot; none while the study has no answers, so figures computed from
    answers since withdrawn are not served in the moments before the recomputation replaces
    them (the page shows the no-answers notice instead)."""
    snap = _latest(study)
    if snap is None:
        raise Http404("no report computed yet")
    if not _has_answers(study):
        raise Http404("the study has no answers")
    return snap


def _frame(snap: ReportSnapshot, name: str) -> pd.DataFrame:
    if name not in snap.tables:
        raise Http404("no such table")
    # Loads pandas: on a table's page or download, not when the site starts.
    from evalsite.reports.analysis.result import table_frame

    return table_frame(snap.tables[name], snap.columns.get(name))


@login_required
def report_page(request: HttpRequest, key: str) -> HttpResponse:
    study = _study(request, key)
    snap = _latest(study)
    state = ReportState.objects.filter(study=study).first()
    no_answers = not _has_answers(study)
    # Computed by an earlier version of the site (after an upgrade): recomputed without anyone
    # having to press Recompute on every study, once: not again on a reload while that run is
    # queued or computing (the page asks for a reload).
    earlier = bool(snap and not no_answers and by_earlier_version(snap))
    if earlier and snap and not recomputing_since(state, snap.computed_at):
        schedule_report(study.pk, countdown=0)
        state = ReportState.objects.filter(study=study).first()
    recomputing = bool(snap and recomputing_since(state, snap.computed_at))
    tables = []
    if snap is not None:
        frames = {name: _frame(snap, name) for name in snap.tables}
        level_text = config_level(snap.config)
        for name in table_names(frames):
            frame = frames[name]
            tables.append(
                {
                    "name": name,
                    "title": title(name, level_text),
                    "note": note(name),
                    "columns": list(frame.columns),
                    "rows": rounded(frame),
                }
            )
    under, top_warnings = (
        report_notes.placed_warnings(snap.messages, [str(t["name"]) for t in tables])
        if snap
        else ({}, [])
    )
    for t in tables:
        t["warnings"] = under.get(str(t["name"]), [])
    context = {
        "study": study,
        "snap": snap,
        # Waiting for answers is no error: the page says so in place of the snapshot's error.
        "no_answers": no_answers,
        # What the study changed since (its trials, rules...): shown until a recomputation.
        "outdated": changes_since(study, snap) if snap and not no_answers else [],
        "earlier_version": earlier,
        "no_answers_text": NO_ANSWERS,
        "pending": bool(state and state.pending),
        # queued, or computing since the snapshot's read: it will replace this snapshot
        "recomputing": recomputing,
        "failed": state if state and state.failed_at else None,  # the report may be stale
        "tables": tables,
        # SVG made by matplotlib in our worker from numbers and our own labels.
        "plots": [
            (name, title, mark_safe(snap.plots[name]))  # noqa: S308
            for name, title in PLOT_TITLES.items()
            if snap and name in snap.plots
        ],
        "downloads": sorted(snap.tables) if snap else [],
        # Errors in view above the results; the notes counted there, listed in a disclosure.
        "errors": report_notes.errors(snap.messages) if snap else [],
        "notes_line": report_notes.count_line(snap.messages) if snap else "",
        "note_groups": (
            report_notes.note_groups(snap.messages, [str(t["name"]) for t in tables])
            if snap
            else []
        ),
        # Warnings also in view: under their part's first table, or at the top without one.
        "top_warnings": top_warnings,
    }
    return render(request, "reports/report.html", context)


@login_required
@require_POST
def recompute(request: HttpRequest, key: str) -> HttpResponse:
    study = _study(request, key)
    latest = _latest(study)
    # Nothing to analyse and nothing stale to replace (a snapshot holding answers since withdrawn
    # is recomputed): computing would only store a "no answers" error.
    if not _has_answers(study) and (latest is None or latest.n_answers == 0):
        messages.info(request, NO_ANSWERS)
        return redirect("reports:page", key=key)
    since = timezone.now()
    # Published at its commit, before it returns; at once even inside the back-off window after
    # a failed publish: the experimenter asked for it and is told whether it was queued.
    queued = schedule_report(study.pk, countdown=0, backoff=False)
    if reason := queue_failure(study.pk, since):
        messages.error(request, f"Could not queue the recomputation: {reason}")
    elif queued:
        messages.info(request, "Recomputation queued; reload the page in a moment.")
    else:
        messages.info(request, "A recomputation is already queued.")
    return redirect("reports:page", key=key)


@login_required
def table_download(request: HttpRequest, key: str, name: str, fmt: str) -> HttpResponse:
    snap = _snapshot_or_404(_study(request, key))
    frame = _frame(snap, name)
    filename = f"study-{snap.study_id}-{name}.{fmt}"
    if fmt == "csv":
        response = HttpResponse(frame.to_csv(index=False), content_type="text/csv")
    elif fmt == "json":
        # Rows with keys in column order (PostgreSQL's jsonb does not keep key order).
        rows = [{c: r.get(c) for c in frame.columns} for r in snap.tables[name]]
        response = HttpResponse(json.dumps(rows, indent=1), content_type="application/json")
    else:
        raise Http404("expected .csv or .json")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def report_json(request: HttpRequest, key: str) -> JsonResponse:
    snap = _snapshot_or_404(_study(request, key))
    return JsonResponse(
        {
            "study": snap.study_id,
            "computed_at": snap.computed_at.isoformat(),
            "error": snap.error,
            "tables": snap.tables,
            "columns": snap.columns,
            "messages": snap.messages,
            "meta": snap.meta,
            "timings": snap.timings,
            "config": snap.config,
        }
    )


@login_required
def bundle(request: HttpRequest, key: str) -> HttpResponse:
    snap = _snapshot_or_404(_study(request, key))
    if not snap.bundle:
        raise Http404("this report has no bundle")
    response = HttpResponse(bytes(snap.bundle), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="report-study-{snap.study_id}.zip"'
    return response


@login_required
def plot(request: HttpRequest, key: str, name: str) -> HttpResponse:
    snap = _snapshot_or_404(_study(request, key))
    if name not in snap.plots:
        raise Http404("no such plot")
    return HttpResponse(snap.plots[name], content_type="image/svg+xml")
