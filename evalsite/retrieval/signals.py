"""Every clip that becomes ready is embedded by a worker once its transaction commits
(settings.CSN_AUTO_EMBED); the embed task skips clips already embedded with the checkpoint, so a
clip saved again costs one query.

A clip joins the thread's pending set only in an on_commit callback of its save, so a save that
is rolled back (the whole transaction, or the savepoint it was made in) never queues it. Clips
saved inside `batched()` (a dataset import, an upload of several files: each clip commits alone)
are queued together, in batches, once the block ends and its transaction commits; any other
clip is queued by its own commit. Nothing is queued when no checkpoint file exists yet (the demo
before training): an ingest job (evalsite/stimuli/tasks.queue_ingest) embeds them later.
A broker that refuses or does not answer is logged, and the clips not queued are listed in what
`batched()` yields (the upload and import pages say so); the Model work page counts every ready
clip without an embedding and its Embed clips button queues them.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from evalsite.jobs.failures import without_server_paths
from evalsite.stimuli.models import Clip

log = logging.getLogger(__name__)
_pending = threading.local()


@contextmanager
def suppressed():
    """No auto-embed for clips saved inside (the ingest pipeline embeds them itself)."""
    _pending.off = getattr(_pending, "off", 0) + 1
    try:
        yield
    finally:
        _pending.off -= 1


@dataclass
class Queuing:
    """What a batched() block's flush could not queue: the ready clips left without an
    embedding task, and why (the broker's error); empty while nothing failed."""

    not_queued: list[int] = field(default_factory=list)
    error: str = ""

    def message(self) -> str:
        """What the researcher is told ("" when everything was queued)."""
        if not self.not_queued:
            return ""
        return (
            f"{len(self.not_queued)} clip(s) added, but they could not be queued for embedding "
            f"({self.error}): press Embed clips on the study's Model work page once the broker "
            "is back."
        )


@contextmanager
def batched():
    """Clips that become ready inside are queued together, in batches of CSN_EMBED_BATCH, when
    the outermost block ends and its transaction commits (at once outside a transaction), even
    if it ends by an exception: those committed are queued. Without it, each clip queues a task of
    its own when it commits. Yields a Queuing that says, once that commit is done, which clips
    the broker did not take (a nested block yields the outermost block's)."""
    _pending.batching = getattr(_pending, "batching", 0) + 1
    if _pending.batching == 1:
        _pending.queuing = Queuing()
    queuing = _pending.queuing
    try:
        yield queuing
    finally:
        _pending.batching -= 1
        if not _pending.batching:  # after the callbacks of the clips saved inside

            def flush() -> None:  # not a lambda: robust's error log reads __qualname__
                _flush(queuing)

            transaction.on_commit(flush, robust=True)


def _flush(queuing: Queuing | None = None) -> None:
    """Queue the pending clips' embeddings in batches. A broker that refuses or does not answer
    (each batch would wait for its timeouts again) stops the flush: the clips not queued are
    logged and listed in `queuing`; the Model work page counts them as not embedded. Only those
    still ready clips are queued: a duplicate upload is saved ready, then deleted in the same
    transaction (`audio.clip_from_upload`), and was neither added nor needs an embedding."""
    from evalsite.stimuli.tasks import embed_clips

    pending: set[int] = getattr(_pending, "ids", set())
    _pending.ids, batch = set(), settings.CSN_EMBED_BATCH
    if not pending:
        return
    ready = Clip.objects.filter(pk__in=pending, status=Clip.Status.READY)
    ids = sorted(ready.values_list("pk", flat=True))
    for i in range(0, len(ids), batch):
        try:
            embed_clips.delay(ids[i : i + batch])
        except Exception as exc:  # whatever stopped the publish, no worker will embed them
            log.exception("could not queue the embedding of clips %s", ids[i:])
            if queuing is not None:
                queuing.not_queued += ids[i:]
                queuing.error = without_server_paths(str(exc))
            return


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

    # Discarded with the transaction or savepoint if the save is rolled back. robust: whatever
    # else goes wrong in it is logged and never fails the save.
    transaction.on_commit(committed, robust=True)
