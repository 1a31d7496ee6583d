"""Removing failed clips from a study's catalogue (the Clips page's Remove buttons).

Only a failed clip can go: a ready one may be in use, and a pending one may be mid-validation in
a worker. A failed clip that a trial uses is kept too (Trial's clip keys PROTECT it; a clip that
was ready when a trial took it can fail later, in embedding). Uploads and imports are not
recorded in the study's history, so neither is this: it changes which clips the catalogue holds,
not what participants get.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q

from evalsite.stimuli.audio import delete_after_commit
from evalsite.stimuli.models import Clip
from evalsite.studies.models import Study, Trial


@dataclass
class Removal:
    """What a removal did: clips deleted, reasons for those kept (each naming its clip), and
    ids asked for that the catalogue does not hold (already removed, or never in it)."""

    removed: list[Clip] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)


def failed_clips(study: Study):
    """The study catalogue's failed clips, oldest first."""
    if study.catalogue_id is None:
        return Clip.objects.none()
    return Clip.objects.filter(catalogue_id=study.catalogue_id, status=Clip.Status.FAILED)


def used_by_trials(clip_ids) -> dict[int, int]:
    """{clip id: number of trials using it} for those of clip_ids that any study's trials use (a
    catalogue may serve several of its owner's studies)."""
    used: dict[int, int] = {}
    keys = ("reference_id", "candidate_a_id", "candidate_b_id")
    in_ids = Q(reference_id__in=clip_ids) | Q(candidate_a_id__in=clip_ids)
    for row in Trial.objects.filter(in_ids | Q(candidate_b_id__in=clip_ids)).values(*keys):
        for clip_id in {row[k] for k in keys} & set(clip_ids):
            used[clip_id] = used.get(clip_id, 0) + 1
    return used


def remove_failed_clips(study: Study, clip_ids: list[int] | None) -> Removal:
    """Delete the study catalogue's clips among clip_ids (None: all its failed clips) that are
    failed and used by no trial; each stored file is deleted once the delete commits, so a
    rolled-back removal keeps both row and file.

    The rows are locked first: of two removals of one clip (a double submit), the second finds
    it gone; a trial being added with the clip meanwhile waits for the lock, then fails on its
    foreign key, or commits first and is seen here."""
    result = Removal()
    if clip_ids is None:
        clips = failed_clips(study)
    elif study.catalogue_id is None:  # filtering on None would match catalogue-less clips
        clips = Clip.objects.none()
    else:
        clips = Clip.objects.filter(catalogue_id=study.catalogue_id, pk__in=clip_ids)
    with transaction.atomic():
        locked = list(clips.select_for_update().order_by("id"))
        found = {c.pk for c in locked}
        result.gone = [pk for pk in dict.fromkeys(clip_ids or []) if pk not in found]
        used = used_by_trials(found)
        for clip in locked:
            if reason := _refusal(clip, used.get(clip.pk, 0)):
                result.refused.append(reason)
            else:
                result.removed.append(clip)
        Clip.objects.filter(pk__in=[c.pk for c in result.removed]).delete()
        for clip in result.removed:
            if clip.file:  # a delete that fails leaves a logged stray file, never undoes this
                delete_after_commit(clip.file.storage, clip.file.name)
    return result


def _refusal(clip: Clip, n_trials: int) -> str | None:
    """Why `clip` may not be removed, naming it; None if it may."""
    if clip.status != Clip.Status.FAILED:
        return (
            f"Clip {clip.name!r} (id {clip.pk}) is {clip.status}; only failed clips can be removed."
        )
    if n_trials:
        return (
            f"Clip {clip.name!r} (id {clip.pk}) is used by {n_trials} trial(s); it is kept, as "
            "trials need their clips."
        )
    return None
