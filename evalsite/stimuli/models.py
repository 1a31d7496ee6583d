"""The stimulus catalogue: audio clips (validated, loudness-measured) grouped into catalogues.

Files are stored under MEDIA_ROOT with random names, and every clip has a random token, so nothing
a participant's browser sees (URL, file name) names the piece, the condition or the clip's id.
"""

from __future__ import annotations

import secrets
from pathlib import PurePath

from django.conf import settings
from django.db import models


def new_token() -> str:
    """An unguessable public identifier (128 bits, URL-safe) that does not start with "-": a
    participant's token begins the ID its pages show and participants.csv exports, and a CSV
    cell starting with "-" is written with a leading apostrophe (`export.FORMULA_START`), so
    1 in 64 IDs did not read back as the participant quotes them. Drawn again while it does (the
    token stays uniform over the rest: about 0.02 bits fewer)."""
    while (token := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return token


def clip_upload_to(instance: Clip, filename: str) -> str:
    """Random file name; keeps only the (lower-cased) extension of what was uploaded."""
    suffix = PurePath(filename).suffix.lower()[:8] or ".bin"
    return f"clips/{secrets.token_hex(16)}{suffix}"


class Catalogue(models.Model):
    """A named set of clips owned by one experimenter (an import, an upload batch)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="catalogues"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="catalogue_owner_name_unique")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Clip(models.Model):
    """One audio clip. `status` is pending until validated, then ready or failed (with `error`)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    catalogue = models.ForeignKey(
        Catalogue, on_delete=models.CASCADE, related_name="clips", null=True, blank=True
    )
    file = models.FileField(upload_to=clip_upload_to, max_length=255, blank=True)
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    name = models.CharField(max_length=255, blank=True, help_text="Original file name or label.")
    piece = models.CharField(max_length=255, blank=True, help_text="Source track name.")
    dataset = models.CharField(max_length=255, blank=True, default="")  # "" if unknown
    split = models.CharField(max_length=32, blank=True, default="")
    start_s = models.FloatField(null=True, blank=True, help_text="Excerpt start in the source.")
    # For clips built from stems: condition -> piece the stem came from (None: absent), e.g.
    # {"drums": "Track00002", "bass": "Track00001", ...}. Empty for plain mixes and uploads.
    parts = models.JSONField(default=dict, blank=True)
    # How a built clip is meant to be used, e.g. an attention-check candidate:
    # {"kind": "attention", "group": "<id>", "condition": "drums", "role": "same"|"different"}.
    meta = models.JSONField(default=dict, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    loudness_lufs = models.FloatField(null=True, blank=True)
    # The stored file's sample peak (dBFS), measured with its loudness: the gain a study's
    # loudness target gives it is capped by it (served_level), which pages show without reading
    # the file. None: not measured, or digital silence.
    peak_dbfs = models.FloatField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Not stored: set by audio.clip_from_upload on an upload it did not keep, the ready clip of
    # the same catalogue with the same WAV.
    duplicate_of: Clip | None = None

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or self.piece or f"clip {self.pk}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def piece_key(self) -> tuple[int | None, str, str]:
        """What tells this clip's piece from another: its name within its dataset and
        catalogue. A name alone is not enough: every Slakh-layout or `csn synth` dataset names
        its tracks Track00001..., so two datasets imported into one catalogue hold different
        pieces of one name, and uploads name pieces freely in each catalogue. A clip with no
        piece is its own piece."""
        return piece_key(self.pk, self.catalogue_id, self.dataset, self.piece)


def piece_key(pk: int, catalogue_id: int | None, dataset: str, piece: str):
    """Clip.piece_key from a clip's columns (for rows read with values_list)."""
    return (catalogue_id, dataset, piece or f"clip {pk}")
