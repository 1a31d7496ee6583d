"""Embeddings of catalogue clips, one version per model checkpoint.

A `ModelVersion` is a checkpoint's identity (Embedder.checkpoint_id: sha256 prefix of the file)
with what the web process needs to cut vectors into instrument subspaces without loading the
model. An `Embedding` is one clip's full D-dim vector (all five subspaces) under one version,
unique per (clip, version): re-embedding with the same checkpoint is a no-op, a new checkpoint
adds a new version beside the old one.
"""

from __future__ import annotations

import numpy as np
from django.db import models

from evalsite.stimuli.models import Clip


class ModelVersion(models.Model):
    checkpoint_id = models.CharField(max_length=32, unique=True)
    path = models.CharField(max_length=1024, help_text="Where the checkpoint was loaded from.")
    model_name = models.CharField(max_length=64, blank=True)
    dim = models.PositiveIntegerField()
    sample_rate = models.PositiveIntegerField()
    conditions = models.JSONField(default=list)
    # condition -> {"slice": [start, stop]} for fixed block masks, or {"mask": [D floats]} for
    # learned masks, where a subspace is the masked full vector.
    subspaces = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.model_name or 'model'} {self.checkpoint_id}"

    def subspace(self, vectors: np.ndarray, condition: str) -> np.ndarray:
        """(N, D) -> (N, d) vectors of one condition's subspace."""
        if condition not in self.subspaces:
            raise ValueError(
                f"condition {condition!r}: not a subspace of checkpoint {self.checkpoint_id}; "
                f"expected one of {', '.join(self.conditions)}"
            )
        spec = self.subspaces[condition]
        if "slice" in spec:
            start, stop = spec["slice"]
            return np.ascontiguousarray(vectors[:, start:stop], dtype=np.float32)
        return np.ascontiguousarray(vectors * np.asarray(spec["mask"], dtype=np.float32))


class Embedding(models.Model):
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="embeddings")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="embeddings")
    vector = models.BinaryField()  # float32 little-endian, `version.dim` values
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["clip", "version"], name="embedding_clip_version")
        ]

    def __str__(self) -> str:
        return f"embedding of clip {self.clip_id} ({self.version_id})"

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype="<f4")


def to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


class IndexSnapshot(models.Model):
    """The generation of a catalogue's saved search rows under one checkpoint (see
    evalsite/retrieval/snapshot.py): the file of that generation is the one a web process may
    load. Kept in the database, beside the rows it copies, so that a file from another database
    (restored, recreated, another deployment's media) is never read as this one's."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="snapshots")
    catalogue = models.ForeignKey(
        "stimuli.Catalogue", on_delete=models.CASCADE, related_name="index_snapshots"
    )
    generation = models.CharField(max_length=32)
    rows = models.PositiveIntegerField()
    written_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "catalogue"], name="snapshot_scope")
        ]

    def __str__(self) -> str:
        return f"snapshot {self.generation} of catalogue {self.catalogue_id} ({self.version_id})"
