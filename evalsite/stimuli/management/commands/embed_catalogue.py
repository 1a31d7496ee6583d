"""manage.py embed_catalogue NAME [--owner USER]: queue the embedding of a catalogue's clips that
have no embedding under the deployed checkpoint (CSN_CHECKPOINT), the job the model-work page's
Embed clips queues. For a catalogue of no study (`import_slakh --catalogue NAME`), which has no
model-work page, after the checkpoint changed. Running it again queues nothing while that job is
unfinished or every clip has its embedding."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from evalsite.jobs import progress
from evalsite.jobs.models import Job
from evalsite.retrieval.embedder import CheckpointMissing, ModelUnavailable, check_checkpoint
from evalsite.stimuli.models import Catalogue
from evalsite.stimuli.tasks import queue_missing_embeddings


class Command(BaseCommand):
    help = (
        "Queue the embedding (a gpu worker's job) of a catalogue's clips that have none under "
        "the deployed checkpoint (CSN_CHECKPOINT); prints the job it queued, or why none."
    )

    def add_arguments(self, parser):
        parser.add_argument("catalogue", help="catalogue name")
        parser.add_argument("--owner", help="username owning it (where two owners use the name)")

    def handle(self, *args, **opts):
        catalogue = _catalogue(opts["catalogue"], opts["owner"])
        try:  # a file that is not a checkpoint would be queued, then failed by the worker
            check_checkpoint()
        except (CheckpointMissing, ModelUnavailable) as exc:
            raise CommandError(str(exc)) from None
        with _publish_failures_untold(opts["verbosity"]):
            job, said = queue_missing_embeddings(catalogue)
        if job is not None and job.status == Job.Status.FAILED:  # e.g. the broker refused it
            raise CommandError(f"{said}, but it failed at once: {job.message}")
        if job is None and "nothing to queue" not in said:  # no checkpoint deployed
            raise CommandError(said)
        self.stdout.write(said)
        if job is not None:
            self.stdout.write("A gpu worker embeds them; follow it with the job id in the admin.")


@contextmanager
def _publish_failures_untold(verbosity: int) -> Iterator[None]:
    """A broker that refuses the job is logged (progress.queue_on_commit) for the web and worker
    processes; here the command says it in its one CommandError line (the job's message), so
    the log's copy is kept off the terminal unless asked for with -v 2 or more."""
    if verbosity >= 2:
        yield
        return
    saved = progress.log.level
    progress.log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        progress.log.setLevel(saved)


def _catalogue(name: str, owner: str | None) -> Catalogue:
    found = Catalogue.objects.filter(name=name).select_related("owner")
    if owner is not None:
        if not get_user_model().objects.filter(username=owner).exists():
            raise CommandError(f"--owner {owner!r}: no such user")
        found = found.filter(owner__username=owner)
    matches = list(found)
    if not matches:
        where = f" owned by {owner!r}" if owner else ""
        raise CommandError(f"no catalogue named {name!r}{where}")
    if len(matches) > 1:
        owners = ", ".join(sorted(c.owner.get_username() for c in matches))
        raise CommandError(
            f"{len(matches)} catalogues are named {name!r} (owners {owners}); "
            "expected one: name its owner with --owner"
        )
    return matches[0]
