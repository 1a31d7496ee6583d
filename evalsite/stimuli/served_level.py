"""How loud a clip is played at a study's loudness target, where its peaks keep it under.

Normalisation never pushes a sample above the peak ceiling (`audio.normalise`), so a clip whose
peaks are high for its loudness (a click in silence, a sparse percussive excerpt) is played
quieter than the target, silently. This names such clips, with the level they are played at,
for the Clips page, the upload's result and the study overview.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from evalsite.stimuli.audio import DUAL_MONO_LU, PEAK_CEILING_DBFS, playback_lufs
from evalsite.stimuli.models import Clip

# A clip played more than this under the target is flagged. EBU R 128 allows +-1 LU around its
# target where exact normalisation is not achievable (live programmes), and about 1 dB is the
# smallest level difference listeners reliably hear between broadband sounds: under 1 LU, a
# clip counts as at the target.
SHORTFALL_LU = 1.0


def played_lufs(clip: Clip, target_lufs: float) -> float | None:
    """The playback loudness (`playback_lufs`) participants of a study with this target hear:
    the stored file's, plus the gain `audio.normalise` gives it toward the target, which the
    peak ceiling caps (as the served copy, `audio.normalised_path`, has it). From the clip's
    stored measurements (`Clip.peak_dbfs`, measured when it was stored): no file is read, so a
    page listing thousands of clips costs one query. None where the clip was never measured."""
    if clip.loudness_lufs is None or not clip.channels:
        return None
    stored = playback_lufs(clip.loudness_lufs, clip.channels)
    if abs(stored - target_lufs) < 0.1:  # served as stored
        return stored
    if clip.peak_dbfs is None:
        return None
    return stored + min(target_lufs - stored, PEAK_CEILING_DBFS - clip.peak_dbfs)


def under_target(clips: Iterable[Clip], target_lufs: float) -> dict[int, float]:
    """clip id -> the loudness it is played at, for each ready clip played more than
    SHORTFALL_LU under the target (the others reach the target whatever their peaks)."""
    out = {}
    for clip in clips:
        if clip.status != Clip.Status.READY or clip.loudness_lufs is None or not clip.channels:
            continue
        if playback_lufs(clip.loudness_lufs, clip.channels) >= target_lufs - SHORTFALL_LU:
            continue
        played = played_lufs(clip, target_lufs)
        if played is not None and target_lufs - played > SHORTFALL_LU:
            out[clip.pk] = played
    return out


# Clips without a peak named by name on a page; the others only counted (a page stays short and
# one query long with thousands of them, e.g. after an upgrade with the media volume away).
PEAK_UNKNOWN_NAMED = 10


def peak_unknown(clips: QuerySet[Clip]) -> dict | None:
    """The ready clips among `clips` whose peak was never measured, which `under_target` cannot
    judge: stored by a process still on the code before peaks were kept (between `migrate` and
    its restart), or whose file migration stimuli 0004 could not read. `manage.py
    measure_clip_peaks` measures them. {"n": how many, "names": the first PEAK_UNKNOWN_NAMED
    names, by id, "more": n minus those}; None if none. Reads no file: one query, two where
    more than PEAK_UNKNOWN_NAMED."""
    unknown = clips.filter(status=Clip.Status.READY, peak_dbfs__isnull=True).exclude(file="")
    names = list(unknown.order_by("pk").values_list("name", flat=True)[: PEAK_UNKNOWN_NAMED + 1])
    if not names:
        return None
    n = len(names) if len(names) <= PEAK_UNKNOWN_NAMED else unknown.count()
    return {"n": n, "names": names[:PEAK_UNKNOWN_NAMED], "more": n - PEAK_UNKNOWN_NAMED}


def under_target_in(clips: QuerySet[Clip], target_lufs: float) -> dict[int, float]:
    """`under_target` of a queryset of clips, loading only those stored more than
    SHORTFALL_LU under the target (a mono clip's playback loudness is +3.01 LU over its
    stored BS.1770 value)."""
    below = target_lufs - SHORTFALL_LU
    quiet = Q(channels=1, loudness_lufs__lt=below - DUAL_MONO_LU) | (
        Q(channels__gt=1, loudness_lufs__lt=below)
    )
    return under_target(clips.filter(quiet, status=Clip.Status.READY), target_lufs)
