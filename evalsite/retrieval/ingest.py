"""Ingest: make clips ready (validate, decode, measure loudness, transcode) and embed them.

Plain functions the Celery tasks call. Idempotent: a ready clip is not processed again, a clip
that already has an embedding for the checkpoint is not embedded again, and the (clip, version)
unique constraint makes a concurrent or redelivered insert a no-op. A clip that cannot be
processed or embedded ends `failed` with an error naming the file and what was expected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from evalsite.retrieval.embedder import get_embedder, version_for
from evalsite.retrieval.models import Embedding, ModelVersion, to_bytes
from evalsite.stimuli.models import Clip


@dataclass
class IngestReport:
    embedded: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # already embedded with this checkpoint
    failed: dict[int, str] = field(default_factory=dict)  # clip id -> error


def prepare_clips(clip_ids: list[int]) -> dict[int, str]:
    """Validate, measure and transcode pending clips (stimuli.audio.process_clip); returns the
    errors of the clips that are failed afterwards."""
    from evalsite.retrieval.signals import suppressed
    from evalsite.stimuli.audio import process_clip

    errors = {}
    for clip in Clip.objects.filter(pk__in=clip_ids).order_by("id"):
        if clip.status == Clip.Status.PENDING:
            with suppressed():
                process_clip(clip)
        if clip.status == Clip.Status.FAILED:
            errors[clip.pk] = clip.error
    return errors


def fail_clip(clip: Clip, message: str) -> None:
    clip.status = Clip.Status.FAILED
    clip.error = message
    clip.save(update_fields=["status", "error"])


def upsert_embeddings(version: ModelVersion, clip_ids: list[int], vectors: np.ndarray) -> int:
    """Store vectors (N, D) for clips; existing (clip, version) rows are kept. Returns how many
    rows the table has for these clips and this version afterwards."""
    if vectors.shape != (len(clip_ids), version.dim):
        raise ValueError(
            f"vectors of shape {vectors.shape}; expected ({len(clip_ids)}, {version.dim})"
        )
    Embedding.objects.bulk_create(
        [
            Embedding(clip_id=cid, version=version, vector=to_bytes(v))
            for cid, v in zip(clip_ids, vectors)
        ],
        ignore_conflicts=True,
    )
    return Embedding.objects.filter(version=version, clip_id__in=clip_ids).count()


def _embed_chunk(embedder, clips: list[Clip], report: IngestReport) -> tuple[list[Clip], list]:
    """Embed a chunk; on a decoding error, retry clip by clip to find and fail the culprit."""
    from csn_model.inference import EmbedError

    try:
        return clips, list(embedder.embed_files([Path(c.file.path) for c in clips]))
    except EmbedError:
        if len(clips) == 1:
            raise
    good, vectors = [], []
    for clip in clips:
        try:
            vectors.append(embedder.embed_files([Path(clip.file.path)])[0])
            good.append(clip)
        except EmbedError as exc:
            fail_clip(clip, str(exc))
            report.failed[clip.pk] = str(exc)
    return good, vectors


def embed_clips(
    clip_ids: list[int], embedder=None, batch: int | None = None, pause_s: float | None = None
) -> IngestReport:
    """Embed the ready clips among clip_ids that have no embedding for the checkpoint yet, in
    model calls of `batch` clips (settings.CSN_EMBED_BATCH: amortises the model, bounds memory)."""
    from csn_model.inference import EmbedError

    embedder = embedder or get_embedder()
    batch = batch or settings.CSN_EMBED_BATCH
    version = version_for(embedder)
    pause_s = settings.CSN_EMBED_PAUSE_S if pause_s is None else pause_s
    report = IngestReport()
    done = set(
        Embedding.objects.filter(version=version, clip_id__in=clip_ids).values_list(
            "clip_id", flat=True
        )
    )
    todo = []
    for clip in Clip.objects.filter(pk__in=clip_ids).order_by("id"):
        if clip.pk in done:
            report.skipped.append(clip.pk)
        elif clip.status != Clip.Status.READY:
            report.failed[clip.pk] = clip.error or f"clip {clip.pk}: status {clip.status}"
        elif not clip.file:
            fail_clip(clip, f"clip {clip.pk}: no audio file; expected a stored file")
            report.failed[clip.pk] = clip.error
        else:
            todo.append(clip)
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        try:
            good, vectors = _embed_chunk(embedder, chunk, report)
        except EmbedError as exc:
            fail_clip(chunk[0], str(exc))
            report.failed[chunk[0].pk] = str(exc)
            continue
        if good:
            upsert_embeddings(version, [c.pk for c in good], np.stack(vectors))
            report.embedded += [c.pk for c in good]
        if pause_s:  # test hook: widens the window in which a worker can be killed mid-task
            time.sleep(pause_s)
    return report


def ingest_clips(clip_ids: list[int], embedder=None, batch: int | None = None) -> IngestReport:
    """prepare_clips then embed_clips, in one process (eager use and the CLI)."""
    errors = prepare_clips(clip_ids)
    report = embed_clips(clip_ids, embedder=embedder, batch=batch)
    report.failed.update(errors)
    return report


def vectors_for(version: ModelVersion, clip_ids: list[int]) -> dict[int, np.ndarray]:
    """clip id -> full vector (D,) for the clips embedded under version."""
    rows = Embedding.objects.filter(version=version, clip_id__in=clip_ids)
    return {e.clip_id: e.as_array() for e in rows}
