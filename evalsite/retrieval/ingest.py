"""Ingest: make clips ready (validate, decode, measure loudness, transcode) and embed them.

Plain functions the Celery tasks call. Idempotent: a ready clip is not processed again, a clip
that already has an embedding for the checkpoint is not embedded again, and the (clip, version)
unique constraint makes a concurrent or redelivered insert a no-op. A clip that cannot be
processed or embedded ends `failed` with an error naming the clip and what was expected. A clip
whose stored file cannot be read (missing, permissions, an I/O error) is not failed: that says
nothing about its audio and may pass, so it is reported as unreadable for the caller to retry.
A vector that is not finite (NaN or infinity: a checkpoint whose training diverged) is never
stored: embed_clips raises NonFiniteEmbeddings naming the checkpoint and the clips, which stay
ready, since their audio is not at fault.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from evalsite.jobs.failures import without_server_paths
from evalsite.retrieval import snapshot
from evalsite.retrieval.embedder import get_embedder, shown_path, version_for
from evalsite.retrieval.models import Embedding, ModelVersion, to_bytes
from evalsite.stimuli.models import Clip


@dataclass
class IngestReport:
    embedded: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # already embedded with this checkpoint
    failed: dict[int, str] = field(default_factory=dict)  # clip id -> error
    unreadable: dict[int, str] = field(default_factory=dict)  # clip id -> error; not failed


class UnreadableClips(OSError):
    """Clips whose stored files could not be read; an OSError, so the tasks retry it.
    clip_errors: clip id -> the error naming the clip (never the server path)."""

    def __init__(self, clip_errors: dict[int, str]):
        super().__init__("; ".join(clip_errors.values()))
        self.clip_errors = clip_errors

    def __reduce__(self):  # pickled by the worker pool with its own argument, not the message
        return type(self), (self.clip_errors,)


class NonFiniteEmbeddings(ValueError):
    """The model gave vectors that are not finite: a broken checkpoint, not bad audio. Not
    retried (a ValueError). clip_errors: clip id -> the error naming the clip and checkpoint."""

    def __init__(self, message: str, clip_errors: dict[int, str]):
        super().__init__(message)
        self.clip_errors = clip_errors

    def __reduce__(self):  # pickled by the worker pool with its own arguments
        return type(self), (str(self), self.clip_errors)


def _non_finite(version: ModelVersion, clips: list[Clip]) -> NonFiniteEmbeddings:
    where = f"checkpoint {version.checkpoint_id} ({shown_path(version.path)})"
    why = (
        "expected finite values: the checkpoint is broken (a training run that diverged?), not "
        "the audio; deploy a working checkpoint and embed again"
    )
    names = ", ".join(clip_label(c) for c in clips[:5]) + (", ..." if len(clips) > 5 else "")
    return NonFiniteEmbeddings(
        f"{where} gave non-finite embeddings (NaN or infinity) for {len(clips)} clip(s): {names}; "
        f"nothing stored for them; {why}",
        {c.pk: f"{clip_label(c)}: {where} gave a non-finite embedding; {why}" for c in clips},
    )


def clip_label(clip: Clip) -> str:
    """The clip as researchers know it (the name the job page lists)."""
    return clip.name or clip.piece or f"clip {clip.pk}"


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


def mark_unreadable(clip_errors: dict[int, str]) -> None:
    """Leave each error on its clip once retries are spent (mark_unembedded)."""
    mark_unembedded(clip_errors)


def mark_unembedded(clip_errors: dict[int, str]) -> None:
    """Leave each error on its clip: the clip stays ready (its audio is not at fault) and the
    jobs that count it list it as failed until it is embedded."""
    for clip_id, error in clip_errors.items():
        Clip.objects.filter(pk=clip_id, status=Clip.Status.READY).update(error=error)


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
    """Embed a chunk; on an error, embed clip by clip to find the culprits: a clip whose audio
    cannot be embedded is failed, one whose file cannot be read is reported unreadable."""
    from csn_model.inference import EmbedError

    try:
        return clips, list(embedder.embed_files([Path(c.file.path) for c in clips]))
    except (EmbedError, OSError):
        pass
    good, vectors = [], []
    for clip in clips:
        path = clip.file.path
        try:
            vectors.append(embedder.embed_files([Path(path)])[0])
            good.append(clip)
        except EmbedError as exc:  # the message names the path: name the clip instead
            message = without_server_paths(str(exc).replace(path, clip_label(clip)))
            fail_clip(clip, message)
            report.failed[clip.pk] = message
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            report.unreadable[clip.pk] = (
                f"{clip_label(clip)}: audio file missing or unreadable ({reason}); "
                "expected its stored WAV"
            )
    return good, vectors


def embed_clips(
    clip_ids: list[int], embedder=None, batch: int | None = None, pause_s: float | None = None
) -> IngestReport:
    """Embed the ready clips among clip_ids that have no embedding for the checkpoint yet, in
    model calls of `batch` clips (settings.CSN_EMBED_BATCH: amortises the model, bounds memory).
    NonFiniteEmbeddings at the first call that gives a vector that is not finite, after storing
    that call's finite ones."""
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
        good, vectors = _embed_chunk(embedder, todo[i : i + batch], report)
        finite = [bool(np.isfinite(v).all()) for v in vectors]  # a NaN is the model's fault
        bad = [c for c, ok in zip(good, finite) if not ok]
        good = [c for c, ok in zip(good, finite) if ok]
        vectors = [v for v, ok in zip(vectors, finite) if ok]
        if good:
            ids = [c.pk for c in good]
            upsert_embeddings(version, ids, np.stack(vectors))
            report.embedded += ids
            # An earlier embedding task's error (it failed for good) no longer holds.
            Clip.objects.filter(pk__in=ids, status=Clip.Status.READY).exclude(error="").update(
                error=""
            )
        if bad:
            raise _non_finite(version, bad)
        if pause_s:  # test hook: widens the window in which a worker can be killed mid-task
            time.sleep(pause_s)
    if report.embedded:  # a web process's first search of the catalogue then loads one file
        snapshot.refresh_catalogues(version, report.embedded)
    return report


def ingest_clips(clip_ids: list[int], embedder=None, batch: int | None = None) -> IngestReport:
    """prepare_clips then embed_clips, in one process (eager use and the CLI)."""
    errors = prepare_clips(clip_ids)
    report = embed_clips(clip_ids, embedder=embedder, batch=batch)
    report.failed.update(errors)
    return report


def vectors_for(version: ModelVersion, clip_ids: list[int]) -> dict[int, np.ndarray]:
    """clip id -> full vector (D,) for the clips embedded under version; a vector that is not
    finite (embed_clips refuses them, migration 0002 deleted older ones: a row written
    otherwise) is left out, as if the clip had none, so no model choice or design is made from
    it."""
    rows = Embedding.objects.filter(version=version, clip_id__in=clip_ids)
    vectors = {e.clip_id: e.as_array() for e in rows}
    return {c: v for c, v in vectors.items() if np.isfinite(v).all()}
