"""Background jobs the experimenter can watch: what was asked, how far it got, what went wrong.

Progress is derived from the database state of the job's objects (clips embedded or failed) or,
for model choices, stored by the task as the absolute counts of its run, never from counters the
tasks increment: a task redelivered after a worker crash runs again without counting anything
twice. See evalsite/jobs/progress.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from evalsite.jobs.failures import without_server_paths
from evalsite.stimuli.models import Catalogue
from evalsite.studies.models import Study


class Job(models.Model):
    class Kind(models.TextChoices):
        INGEST = "ingest", "embed clips"  # as the model-work page's button
        MODEL_CHOICE = "model_choice", "model choices"
        DESIGN = "design", "design from the model"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, null=True, blank=True, related_name="jobs"
    )
    catalogue = models.ForeignKey(
        Catalogue, on_delete=models.CASCADE, null=True, blank=True, related_name="jobs"
    )
    # Who queued it: a job that changes the study records the change in its history as theirs.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    checkpoint_id = models.CharField(max_length=32, blank=True)
    params = models.JSONField(default=dict, blank=True)  # e.g. {"clips": [ids]} or design args
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # [{"clip": id, "name": "...", "error": "..."}] or [{"error": "..."}] for job-level errors
    errors = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job {self.pk} ({self.status})"

    @property
    def waiting_for(self) -> str:
        """The kind of worker a queued job waits for ("" unless queued): an ingest job "cpu"
        until its fan-out (stimuli.ingest_catalogue, a cpu task) has queued its batches
        (params["queued"]), then "gpu", as model choices and designs from the start. A job
        turns running only when a gpu task starts on it, so a job no gpu worker takes says so
        instead of "running 0 / N"."""
        if self.status != self.Status.QUEUED:
            return ""
        fanned_out = self.params.get("queued", 0) > 0
        return "cpu" if self.kind == self.Kind.INGEST and not fanned_out else "gpu"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}

    def fail(self, message: str) -> None:
        """Mark the whole job failed with a message the experimenter sees: without server paths
        (a broker's or a checkpoint's error names files on the server)."""
        self.status = self.Status.FAILED
        self.message = without_server_paths(message)
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "message", "finished_at", "updated_at"])
