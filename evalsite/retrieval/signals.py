"""Every clip that becomes ready is embedded by a worker once its transaction commits
(settings.CSN_AUTO_EMBED); the embed task skips clips already embedded with the checkpoint, so a
clip saved again costs one query.

A clip joins the thread's pending set only in an on_commit callback of its save, so a save that
is rolled back (the whole transaction, or the savepoint it was made in) never queues it. Clips
saved inside `batched()` (a dataset import, an upload of several files: each clip commits alone)
are queued together, in batches, once the block ends and its transaction commits; any other
clip is queued by its own commit. Nothing is queued when no checkpoint file exists yet (the demo
before training): an ingest job (evalsite/stimuli/tasks.queue_ingest) embeds them later.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from evalsite.stimuli.models import Clip

_pending = threading.local()


@contextmanager
def suppressed():
    """No auto-embed for clips saved inside (the ingest pipeline embeds them itself)."""
    _pending.off = getattr(_pending, "off", 0) + 1
    try:
        yield
    finally:
        _pending.off -= 1


@contextmanager
def batched():
    """Clips that become ready inside are queued together, in batches of CSN_EMBED_BATCH, when
    the outermost block ends and its transaction commits (at once outside a transaction), even
    if it ends by an exception: those committed are queued. Without it, each clip queues a task of
    its own when it commits."""
    _pending.batching = getattr(_pending, "batching", 0) + 1
    try:
        yield
    finally:
        _pending.batching -= 1
        if not _pending.batching:  # after the callbacks of the clips saved inside
            transaction.on_commit(_flush, robust=True)


def _flush() -> None:
    from evalsite.stimuli.tasks import embed_clips

    ids, batch = sorted(getattr(_pending, "ids", set())), settings.CSN_EMBED_BATCH
    _pending.ids = set()
    for i in range(0, len(ids), batch):
        embed_clips.delay(ids[i : i + batch])


def _committed(clip_id: int, in_batch: bool) -> None:
    """The save of a ready clip committed: pending, and queued now unless saved in batched()."""
    if not hasattr(_pending, "ids"):
        _pending.ids = set()
    _pending.ids.add(clip_id)
    if not in_batch:
        _flush()


@receiver(post_save, sender=Clip, dispatch_uid="retrieval_auto_embed")
def queue_ready_clip(sender, instance: Clip, **kwargs) -> None:
    if instance.status != Clip.Status.READY or not settings.CSN_AUTO_EMBED or kwargs.get("raw"):
        return
    if getattr(_pending, "off", 0):
        return
    from evalsite.retrieval.embedder import CheckpointMissing, checkpoint_path

    try:
        checkpoint_path()
    except CheckpointMissing:
        return
    clip_id, in_batch = instance.pk, bool(getattr(_pending, "batching", 0))

    def committed() -> None:  # not a functools.partial: robust's error log reads __qualname__
        _committed(clip_id, in_batch)  # in batched(), queued as the block ends

    # Discarded with the transaction or savepoint if the save is rolled back. robust: a broker
    # that is down is logged and never fails the save (ingest jobs catch up).
    transaction.on_commit(committed, robust=True)
