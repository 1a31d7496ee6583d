"""Every clip that becomes ready is embedded by a worker once its transaction commits
(settings.CSN_AUTO_EMBED); the embed task skips clips already embedded with the checkpoint, so a
clip saved again costs one query.

Clips saved in one transaction are queued together, in batches, by the first on_commit callback
that runs; so are clips saved one by one inside `batched()` (a dataset import, an upload of
several files: each clip commits alone), once the block ends. Nothing is queued when no
checkpoint file exists yet (the demo before training): an ingest job
(evalsite/stimuli/tasks.queue_ingest) embeds them later.
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
    the outermost block ends (after their commits), even if it ends by an exception: those saved
    are committed. Without it, clips saved outside a transaction queue one task each."""
    _pending.batching = getattr(_pending, "batching", 0) + 1
    try:
        yield
    finally:
        _pending.batching -= 1
        if not _pending.batching and getattr(_pending, "ids", None):
            transaction.on_commit(_flush, robust=True)


def _flush() -> None:
    from evalsite.stimuli.tasks import embed_clips

    ids, batch = sorted(getattr(_pending, "ids", set())), settings.CSN_EMBED_BATCH
    _pending.ids = set()
    for i in range(0, len(ids), batch):
        embed_clips.delay(ids[i : i + batch])


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
    if not hasattr(_pending, "ids"):
        _pending.ids = set()
    _pending.ids.add(instance.pk)
    if getattr(_pending, "batching", 0):  # batched() queues them as it ends
        return
    # Every clip registers the callback; the first to run after the commit takes them all.
    # robust: a broker that is down is logged and never fails the save (ingest jobs catch up).
    transaction.on_commit(_flush, robust=True)
