"""Compute and store a study's report (called by the worker task). The statistics themselves are
the Django-free evalsite.reports.analysis; this module only loads rows and saves the result."""

from __future__ import annotations

import hashlib
import io
import json
import logging

import pandas as pd
from django.db import transaction
from django.utils import timezone

from evalsite.reports.analysis import build_report
from evalsite.reports.analysis.__main__ import read_answers
from evalsite.reports.analysis.report import Report, ReportConfig
from evalsite.reports.bundle import make_bundle
from evalsite.reports.models import REPORT_CONFIG_VERSION, ReportSnapshot, ReportState
from evalsite.reports.rendering.plots import plot_makers
from evalsite.reports.study_config import report_config_for
from evalsite.reports.tasks import schedule_report
from evalsite.studies.db_snapshot import read_snapshot
from evalsite.studies.design import realised_design
from evalsite.studies.export import to_csv
from evalsite.studies.export_answers import answers_dataframe
from evalsite.studies.export_provenance import config_snapshot
from evalsite.studies.models import Study

log = logging.getLogger(__name__)

KEEP_BUNDLES = 3


def answers_csv(study: Study) -> bytes:
    return to_csv(answers_dataframe(study))


def compute(study: Study, csv: bytes, read: tuple[ReportConfig, list[str]] | None = None) -> Report:
    """The report from the answers as CSV text: exactly what the bundle and the CSV command read,
    so the page, the downloads and `python -m evalsite.reports.analysis` agree to full precision.
    `read`: the study's config and its notes (`report_config_for`) as read with the answers
    (`compute_snapshot`'s snapshot); read now when not given."""
    config, notes = read or report_config_for(study)
    answers = read_answers(io.BytesIO(csv)) if csv.strip() else pd.DataFrame()
    report = build_report(answers, config, source=f"answers.csv of study {study.pk}")
    for text in notes:
        report.note("warning", "config", text)
    return report


def compute_snapshot(study_id: int) -> ReportSnapshot | None:
    """Compute and store; if the latest snapshot was made from the same answers and config, holds
    no error and still has its bundle, return it instead, stamped with this read's time
    (`_read_again`; idempotent: a repeated task does no harm).

    The snapshot is stamped with the time the answers were read, not saved: of two computations
    that overlap, the one that read later is served whichever finishes last, and one that finds
    a newer read saved meanwhile stores nothing and returns that one. One that read answers a
    withdrawal deleted meanwhile stores nothing either (they would live on in its tables and
    bundle), queues a recomputation and returns the latest snapshot, if any."""
    read_at = timezone.now()  # before reading: a later read gets a later time
    deletions = _deletions(study_id)  # before reading too: a withdrawal after it is noticed
    # What the report and its bundle hold is read as of one moment (answers, design, the study's
    # config), so the bundle's files agree while participants answer; the computation after it.
    with read_snapshot():
        study = Study.objects.get(pk=study_id)
        csv = answers_csv(study)
        config, notes = report_config_for(study)
        digest = hashlib.sha256(
            csv + json.dumps(config.to_dict(), sort_keys=True).encode()
        ).hexdigest()
        latest = ReportSnapshot.objects.filter(study=study).order_by("-computed_at").first()
        # Not one whose bundle a withdrawal emptied (flow_withdraw._forget): with the answers
        # unchanged (one who left before answering, whose trial list and seed the bundle's
        # design.csv held) the digest is the same, and reusing it would serve a page whose bundle
        # link 404s for good.
        # Nor one computed by an earlier version of the site (REPORT_CONFIG_VERSION): the page
        # would keep saying so, and queue it again on every view.
        same = (
            latest
            and latest.input_sha256 == digest
            and not latest.error
            and latest.bundle
            and latest.config_version == REPORT_CONFIG_VERSION
        )
        if not same:
            design = realised_design(study)
            study_config = config_snapshot(study)
    if same and latest is not None:  # after the read: its transaction is read-only
        return _read_again(latest, read_at)
    # The config read with the answers, not read again: a trial added meanwhile would change
    # the design_main_trials that report.json holds, not report_config.json or the digest.
    report = compute(study, csv, (config, notes))
    plots = draw_plots(report)  # before to_dict: it may add warnings
    data = report.to_dict()
    errors = [m["text"] for m in report.messages if m["level"] == "error"]
    bundle = make_bundle(
        study, csv, report, config, plots, design=design, study_config=study_config
    )
    with transaction.atomic():
        state = ReportState.lock(study_id)  # withdrawals wait for it (flow_withdraw._forget)
        if state.deletions != deletions:
            log.info("report of study %s: answers withdrawn while computing; not stored", study_id)
            schedule_report(study_id)
            return ReportSnapshot.objects.filter(study=study).order_by("-computed_at").first()
        newer = ReportSnapshot.objects.filter(study=study, computed_at__gte=read_at)
        if newest := newer.order_by("-computed_at").first():
            log.info("report of study %s: a newer read was saved meanwhile; not stored", study_id)
            return newest
        snap = ReportSnapshot.objects.create(
            study=study,
            computed_at=read_at,
            error="; ".join(errors),
            input_sha256=digest,
            n_answers=report.meta.get("n_answers", 0),
            config=config.to_dict(),
            tables=data["tables"],
            columns=data["columns"],
            messages=data["messages"],
            meta=data["meta"],
            timings=data["timings"],
            plots=plots,
            bundle=bundle,
        )
        _prune_bundles(study)
    return snap


def _read_again(snap: ReportSnapshot, read_at) -> ReportSnapshot:
    """`snap`, which a read at `read_at` gave again (same answers and config): stamped with that
    read's time, as it is its report too. The report page names what changed the input since a
    snapshot's read (study_config.changes_since: an answered trial edited, model choices
    computed again); a change that left the input as it was is then no longer named for ever."""
    ReportSnapshot.objects.filter(pk=snap.pk, computed_at__lt=read_at).update(computed_at=read_at)
    snap.computed_at = max(snap.computed_at, read_at)
    return snap


def draw_plots(report: Report) -> dict[str, str]:
    """The report's plots; one that fails is left out with a warning on the report, so that a
    plotting bug costs that plot, not the whole snapshot (which would leave an older report served
    as current while the pending flag is already cleared)."""
    plots = {}
    for name, make in plot_makers(report).items():
        try:
            svg = make()
        except Exception as exc:
            log.exception("report plot %r failed", name)
            report.note("warning", "plots", f"plot {name} not drawn: {type(exc).__name__}: {exc}")
            continue
        if svg:
            plots[name] = svg
    return plots


def _deletions(study_id: int) -> int:
    found = ReportState.objects.filter(study_id=study_id).values_list("deletions", flat=True)
    return found.first() or 0


def _prune_bundles(study: Study) -> None:
    """Bundles hold every answer: keep them on the latest few snapshots of the study only."""
    keep = list(
        ReportSnapshot.objects.filter(study=study)
        .order_by("-computed_at")
        .values_list("pk", flat=True)[:KEEP_BUNDLES]
    )
    ReportSnapshot.objects.filter(study=study).exclude(pk__in=keep).exclude(bundle=b"").update(
        bundle=b""
    )
