"""Experimenter pages for a study's stimuli: upload clips, import a Slakh-layout dataset, remove
failed clips.

Upload and import put audio into the study's catalogue (`experimenter.study_catalogue`, made on
first use). A POST that did its work redirects (303) to the page, which shows its result once
from the session, so reloading the result sends neither the files nor the import again.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from csn_model.data.slakh import DataError, DuplicateSourcesError
from evalsite.datasets.catalog import datasets
from evalsite.retrieval.signals import batched
from evalsite.stimuli import served_level
from evalsite.stimuli.audio import MAX_UPLOAD_BYTES, clip_from_upload, playback_lufs
from evalsite.stimuli.models import Clip
from evalsite.stimuli.slakh_import import import_slakh
from evalsite.studies.clip_removal import (
    Removal,
    failed_clips,
    remove_failed_clips,
    used_by_trials,
)
from evalsite.studies.experimenter import (
    editable,
    see_other,
    study_catalogue,
    study_catalogue_clips,
)
from evalsite.studies.forms import ClipUploadForm, ImportForm
from evalsite.studies.models import Study
from evalsite.studies.permissions import get_visible_study

FAILED_SHOWN = 500  # failed clips listed with a Remove button; "Remove all" takes every one
OMIT_HINT = (
    "This dataset has tracks of one source MIDI in different splits (the error above). Choose "
    "'leave out all but one' to import it without them, or offer Slakh2100-redux."
)


@csrf_exempt  # checked by `_clips` once the body is read: see `_unreadable_upload`
@login_required
def clips(request: HttpRequest, pk: int) -> HttpResponse:
    """List the study catalogue's clips; upload several files at once, each validated.

    A valid upload redirects (303) back here, and the page shows each file's result once: a
    reload then asks for the page again instead of sending the files again. An upload Django
    will not read (too many files) gets this page (413) naming the limit; nothing of it is kept."""
    study = get_visible_study(request.user, pk)
    refused = _unreadable_upload(request)
    if refused is not None:
        messages.error(request, refused)
        return _clips_page(request, study, ClipUploadForm(), results=[], status=413)
    return _clips(request, study)


def _unreadable_upload(request: HttpRequest) -> str | None:
    """Why Django refuses to read this POST's body, or None. Read here, before the CSRF check:
    its token is in that body, so CsrfViewMiddleware would read it first and a refusal would end
    on Django's bare "Bad Request (400)" page. A refused body stores nothing, so showing the page
    in answer to it needs no token."""
    if request.method != "POST":
        return None
    try:
        _ = request.FILES  # parses the whole multipart body, files to memory or temporary files
    except TooManyFilesSent:
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return (
            f"Too many files in one upload: at most {limit} (CSN_UPLOAD_MAX_FILES); nothing was "
            f"stored. Upload them in batches of {limit} or fewer."
        )
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return (
            f"The form fields other than the files exceed {limit} bytes "
            f"(DATA_UPLOAD_MAX_MEMORY_SIZE); nothing was stored."
        )
    return None


@csrf_protect
def _clips(request: HttpRequest, study: Study) -> HttpResponse:
    form = ClipUploadForm(request.POST or None, request.FILES or None)
    shown = f"studies:upload-results:{study.pk}"  # session key: the last upload, shown once
    if request.method == "POST":
        if not editable(request, study):
            return see_other("studies:clips", pk=study.pk)
        if form.is_valid():
            target = study.setting("loudness_target_lufs")
            results = [upload_result(c, target) for c in _upload(request, study, form)]
            request.session[shown] = results
            return see_other("studies:clips", pk=study.pk)
    results = request.session.pop(shown, []) if request.method == "GET" else []
    return _clips_page(request, study, form, results)


def _clips_page(request, study, form, results, status=200) -> HttpResponse:
    context = {
        "study": study,
        "form": form,
        "results": results,
        "clips": _with_playback(
            study_catalogue_clips(study).order_by("-id")[:500],
            study.setting("loudness_target_lufs"),
        ),
        "target_lufs": study.setting("loudness_target_lufs"),
        "shortfall_lu": served_level.SHORTFALL_LU,
        "peak_unknown": served_level.peak_unknown(study_catalogue_clips(study)),
        "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
        "max_file_mb": round(MAX_UPLOAD_BYTES / 1e6),
        **_failed_context(study),
    }
    return render(request, "studies/experimenter/clips.html", context, status=status)


def _with_playback(clips, target_lufs: float) -> list[Clip]:
    """The clips, each with `playback` set (`_playback`) and, for one its peaks keep more than
    `served_level.SHORTFALL_LU` under the study's target, `played` (the loudness it is played
    at) and `under` (LU under the target), for the catalogue table."""
    clips = list(clips)
    quiet = served_level.under_target(clips, target_lufs)
    for clip in clips:  # shown, never saved
        clip.playback = _playback(clip)
        clip.played = quiet.get(clip.pk)
        clip.under = None if clip.played is None else target_lufs - clip.played
    return clips


def _playback(clip: Clip) -> float | None:
    """The loudness participants hear of `clip` (`playback_lufs`: a mono file as dual-mono),
    which normalisation aims at; its stored BS.1770 value shows a mono clip normalised to -23 at
    about -26. None until a worker measured it (or when the file was refused)."""
    if clip.loudness_lufs is None:
        return None
    return playback_lufs(clip.loudness_lufs, clip.channels or 0)


def _failed_context(study: Study) -> dict:
    """The failed clips the page lists, each marked with whether a trial uses it (kept, so not
    offered for removal), and how many could be removed."""
    clips = list(failed_clips(study).order_by("id")[:FAILED_SHOWN])
    used = used_by_trials([c.pk for c in clips])
    failed = [{"clip": c, "n_trials": used.get(c.pk, 0)} for c in clips]
    return {"failed": failed, "n_removable": sum(not f["n_trials"] for f in failed)}


@login_required
@require_POST
def clips_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Remove one failed clip (`clip`: its id) or all of them (`all`) from the study's catalogue,
    then redirect (303) to the Clips page, where a message says what was removed and what not."""
    study = get_visible_study(request.user, pk)
    if not editable(request, study):
        return see_other("studies:clips", pk=study.pk)
    try:
        asked = None if request.POST.get("all") else [int(request.POST["clip"])]
    except (KeyError, ValueError):
        clip = request.POST.get("clip", "")
        messages.error(request, f"Field 'clip' = {clip!r}: expected the id of a failed clip.")
        return see_other("studies:clips", pk=study.pk)
    _say(request, remove_failed_clips(study, asked), every=asked is None)
    return see_other("studies:clips", pk=study.pk)


def _say(request: HttpRequest, result: Removal, every: bool) -> None:
    """Messages for a removal: what went, why each clip asked for stayed, which were gone."""
    if len(result.removed) == 1:
        (clip,) = result.removed
        messages.success(request, f"Removed failed clip {clip.name!r} (id {clip.pk}).")
    elif result.removed:
        names = ", ".join(c.name or f"id {c.pk}" for c in result.removed)
        messages.success(request, f"Removed {len(result.removed)} failed clips: {names}.")
    elif every and not result.refused:
        messages.info(request, "No failed clips to remove.")
    for reason in result.refused:
        messages.error(request, reason)
    for gone in result.gone:
        messages.info(
            request, f"Clip id {gone} is already gone from this study's catalogue (or never in it)."
        )


def _upload(request: HttpRequest, study: Study, form: ClipUploadForm) -> list[Clip]:
    """Store each file of a valid upload form (refusing oversized ones); a message sums up."""
    catalogue = study_catalogue(study, request.user)
    target = study.setting("loudness_target_lufs")
    results = []
    with batched() as queuing:  # each file commits alone: their embeddings are queued together
        for upload in form.cleaned_data["files"]:
            if upload.size > MAX_UPLOAD_BYTES:  # refused before decoding; shown, not stored
                results.append(_oversized(upload))
                continue
            piece = form.cleaned_data["piece"] or ""
            results.append(clip_from_upload(upload, catalogue, target, piece=piece))
    known = sum(c.duplicate_of is not None for c in results)
    ok = sum(c.is_ready for c in results) - known
    if ok:
        messages.success(request, f"{ok} of {len(results)} file(s) added.")
    if known:
        messages.info(request, f"{known} file(s) already in the catalogue; not added again.")
    if ok + known < len(results):
        refused = len(results) - ok - known
        messages.error(request, f"{refused} file(s) refused; see the errors below.")
    if not_queued := queuing.message():  # the broker is down: nothing will embed them
        messages.warning(request, not_queued)
    return results


def upload_result(clip: Clip, target_lufs: float) -> dict:
    """What the clips page shows of one uploaded file, as the session keeps it (JSON): refused
    and already-known files are not in the catalogue to look up afterwards. `played`: the
    loudness a clip is played at where its peaks keep it more than `served_level.SHORTFALL_LU`
    under the study's target, else None."""
    known = clip.duplicate_of
    played = None if known else served_level.under_target([clip], target_lufs).get(clip.pk)
    return {
        "name": clip.name,
        "status": clip.status,
        "error": clip.error,
        "duplicate_of": None if known is None else {"pk": known.pk, "name": known.name},
        "duration_s": clip.duration_s,
        "sample_rate": clip.sample_rate,
        "loudness_lufs": clip.loudness_lufs,
        "playback_lufs": _playback(clip),
        "played": played,
        "under": None if played is None else target_lufs - played,
    }


def _oversized(upload) -> Clip:
    """An unsaved failed clip that reports a file over MAX_UPLOAD_BYTES."""
    error = (
        f"{upload.name}: {upload.size / 1e6:.0f} MB; expected at most "
        f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB (120 s of 96 kHz stereo float WAV)"
    )
    return Clip(name=upload.name, status=Clip.Status.FAILED, error=error)


@login_required
def dataset_import(request: HttpRequest, pk: int) -> HttpResponse:
    """Import a Slakh-layout split into the study's catalogue (synchronous; small datasets).

    An import that ran redirects (303) back here, which shows its result once; a reload asks for
    the page again instead of importing again."""
    study = get_visible_study(request.user, pk)
    form = ImportForm(request.POST or None)
    shown = f"studies:import-result:{study.pk}"  # session key: the last import, shown once
    if request.method == "POST":
        if not editable(request, study):
            return see_other("studies:dataset_import", pk=study.pk)
        if form.is_valid() and (report := _import(request, study, form)) is not None:
            request.session[shown] = report
            return see_other("studies:dataset_import", pk=study.pk)
    report = request.session.pop(shown, None) if request.method == "GET" else None
    context = {"study": study, "form": form, "report": report, "offered": datasets()}
    return render(request, "studies/experimenter/import.html", context)


def _import(request: HttpRequest, study: Study, form: ImportForm) -> dict | None:
    """Run the import a valid form asks for; what the page shows of it (JSON, for the session),
    or None with the reason added to the form."""
    data = form.cleaned_data
    root = {ref.slug: ref.root for ref in datasets()}.get(data["root"])
    try:
        if root is None:  # listed when the form was made, gone since
            raise DataError(f"dataset {data['root']!r} is no longer on this server")
        report = import_slakh(
            root,
            data["split"],
            lambda: study_catalogue(study, request.user),  # made once the dataset is read
            seconds=data["seconds"],
            attention=data["attention"],
            target_lufs=study.setting("loudness_target_lufs"),
            duplicates=data["duplicates"],
        )
    except (DataError, OSError) as exc:
        form.add_error("root", str(exc))
        if isinstance(exc, DuplicateSourcesError):  # the error names the CLI flag, not this form
            form.add_error("duplicates", OMIT_HINT)
        return None
    here = report.omitted_in(data["split"])
    left_out = f"; {len(here)} left out (same source MIDI)" if data["duplicates"] == "omit" else ""
    messages.success(
        request,
        f"Imported {len(report.mixes)} mix clips and {len(report.attention)} attention "
        f"sets; {len(report.skipped)} skipped; {len(report.existing)} already imported{left_out}.",
    )
    if report.not_queued:  # the broker is down: nothing will embed them
        messages.warning(request, report.not_queued)
    return {
        "mixes": len(report.mixes),
        "attention": len(report.attention),
        "existing": len(report.existing),
        "skipped": report.skipped,
        "duplicates": data["duplicates"],
        "split": data["split"],
        "omitted": here,
        "omitted_elsewhere": len(report.omitted_tracks) - len(here),
        "skipped_stems": report.skipped_stems,
        "stem_summary": report.stem_summary,
    }
