"""Experimenter-side clip audio: researchers listen to the clips of their catalogues and studies.

Participants never use these URLs (theirs are per-slot, see evalsite/studies/participant_audio.py).
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from evalsite.stimuli.models import Clip
from evalsite.stimuli.serving import serve_audio
from evalsite.studies.permissions import visible_studies


def can_listen(user, clip: Clip) -> bool:
    """Owner of the clip's catalogue, or a researcher who sees a study using it or its catalogue."""
    if user.is_superuser or (clip.catalogue is not None and clip.catalogue.owner_id == user.pk):
        return True
    studies = visible_studies(user)
    in_trials = (
        Q(trials__reference=clip) | Q(trials__candidate_a=clip) | Q(trials__candidate_b=clip)
    )
    return bool(clip.catalogue_id and studies.filter(catalogue_id=clip.catalogue_id).exists()) or (
        studies.filter(in_trials).exists()
    )


@login_required
def clip_audio(request: HttpRequest, token: str) -> HttpResponseBase:
    clip = Clip.objects.select_related("catalogue").filter(token=token).first()
    if clip is None or not clip.file or not can_listen(request.user, clip):
        raise Http404("No such clip.")
    return serve_audio(request, Path(clip.file.path))
