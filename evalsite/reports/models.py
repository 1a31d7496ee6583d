"""Computed reports: one ReportSnapshot per computation (tables as JSON at full precision), and a
per-study ReportState that debounces recomputation requests."""

from __future__ import annotations

import json

from django.db import IntegrityError, models
from django.utils import timezone

from evalsite.studies.models import Study


def _number(literal: str) -> int | float:
    # PostgreSQL's jsonb writes a number without its exponent, so a float of 1e16 or more (an
    # interval bound of 5.9e+203) comes back as an integer literal of 17 digits or more. Python
    # writes every float from 1e16 up with an exponent, and no count in a report comes near
    # 10**16: such a literal is the float it was (float() of the digits gives it exactly).
    return float(literal) if len(literal.lstrip("-")) > 16 else int(literal)


class TableDecoder(json.JSONDecoder):
    """Reads stored tables back as they were written: floats stay floats (`_number`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parse_int", _number)
        super().__init__(*args, **kwargs)


# The version of the config a snapshot stores (study_config.report_config_for), raised with each
# change of the code that changes what that gives for an unchanged study (a field added, or one
# computed anew), so that the report page tells a report computed by an earlier version of the
# site from one whose study changed since, and queues its recomputation when viewed. 1: every
# snapshot stored before the field (migration 0005), some without listen_seconds_per_trial
# (added after d3f17c4) or with it as min_listen_share x the clips' durations (before 1e8f136).
# 2: listen_seconds_per_trial as the clips' full durations plus their renditions' silence.
# 3: design_main_trials as each instrument's mean share of a capped session (fractional), not
# the share rounded down.
REPORT_CONFIG_VERSION = 3


def current_config_version() -> int:
    return REPORT_CONFIG_VERSION


class ReportSnapshot(models.Model):
    """The report of a study computed by the worker from its answers as read at `computed_at`
    (taken before the read, so that the newest snapshot is the one of the newest answers even
    when an older computation finishes last).

    `tables[name]` is a list of row dicts (column order in `columns[name]`; JSON has no NaN or
    inf, so those and missing values are null). The per-instrument consent is
    `tables["consent"]`, one row per instrument with term=instrument, estimate, ci_low, ci_high
    (Wilson), n, plus "overall".
    `error` is empty when the report holds no error message. `config_version`: the
    REPORT_CONFIG_VERSION of the code that computed `config`.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="report_snapshots")
    computed_at = models.DateTimeField(default=timezone.now, db_index=True)
    error = models.TextField(blank=True)
    input_sha256 = models.CharField(max_length=64, blank=True)
    n_answers = models.PositiveIntegerField(default=0)
    config = models.JSONField(default=dict)
    config_version = models.PositiveSmallIntegerField(default=current_config_version)
    tables = models.JSONField(default=dict, decoder=TableDecoder)
    columns = models.JSONField(default=dict)
    messages = models.JSONField(default=list)
    meta = models.JSONField(default=dict)
    timings = models.JSONField(default=dict)
    plots = models.JSONField(default=dict)  # name -> SVG text
    bundle = models.BinaryField(blank=True, default=b"")  # reproducibility zip

    class Meta:
        ordering = ["-computed_at"]
        indexes = [models.Index(fields=["study", "-computed_at"])]

    def __str__(self) -> str:
        return f"report of study {self.study_id} at {self.computed_at:%Y-%m-%d %H:%M:%S}"


class ReportState(models.Model):
    """Debounce: `pending` while a recomputation is queued and has not started. `deletions`
    counts the withdrawals that deleted answers (studies.flow_withdraw._forget): a computation
    that read the answers before the latest one stores nothing. `failure` says why the latest
    request came to nothing ("queuing failed": the broker refused it; "the computation failed"),
    with its reason and time, until a recomputation runs: the report page shows it as possibly
    out of date."""

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="report_state")
    pending = models.BooleanField(default=False)
    requested_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    deletions = models.PositiveIntegerField(default=0)
    failure = models.CharField(max_length=40, blank=True)
    failure_reason = models.TextField(blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"report state of study {self.study_id}: {'pending' if self.pending else 'idle'}"

    @classmethod
    def lock(cls, study_id: int) -> ReportState:
        """The study's state, created if need be, its row locked until the transaction ends:
        requests, saves and deletions of answers of one study take turns on it."""
        try:
            return cls.objects.select_for_update().get_or_create(study_id=study_id)[0]
        except IntegrityError:  # created concurrently by another transaction
            return cls.objects.select_for_update().get(study_id=study_id)
