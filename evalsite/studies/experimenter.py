"""Experimenter pages: dashboard, study create/edit, stimuli, trials, status, progress, export.

Every view needs a login, and every study is looked up through `permissions.get_visible_study`,
so a researcher who may not see a study gets the same 404 as for one that does not exist.
Progress uses a handful of aggregate queries; statistics live in the reports app.
"""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from csn_model.data.slakh import DataError
from evalsite.datasets.catalog import datasets
from evalsite.reports.models import ReportState
from evalsite.reports.tasks import report_settings, schedule_report
from evalsite.stimuli.audio import clip_from_upload
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.stimuli.slakh_import import import_slakh
from evalsite.studies import design, export, history, progress
from evalsite.studies.forms import (
    ClipUploadForm,
    ImportForm,
    RandomTrialsForm,
    RepeatsForm,
    StudyForm,
    TrialForm,
    study_clips,
)
from evalsite.studies.models import Answer, Study, StudyFold
from evalsite.studies.permissions import get_visible_study, is_owner, visible_studies
from evalsite.studies.random_design import DesignError, add_repeats, build_random_trials
from evalsite.studies.trials_csv import TrialCSVForm

HISTORY_SHOWN = 20  # latest changes on the overview; the export has them all
MAX_UPLOAD_BYTES = 100_000_000  # above the longest clip audio.py accepts, in any format

# Allowed status changes: action -> (from states, to state).
TRANSITIONS = {
    "open": ({Study.Status.DRAFT, Study.Status.PAUSED}, Study.Status.OPEN),
    "pause": ({Study.Status.OPEN}, Study.Status.PAUSED),
    "close": ({Study.Status.OPEN, Study.Status.PAUSED, Study.Status.DRAFT}, Study.Status.CLOSED),
}


def participant_url(request: HttpRequest, study: Study) -> str:
    """The absolute entry link participants get (recruitment parameters are appended to it)."""
    try:
        path = reverse("studies:entry", args=[study.slug])
    except NoReverseMatch:  # participant flow not mounted (yet): the documented entry path
        path = f"/s/{study.slug}/"
    return request.build_absolute_uri(path)


def see_other(viewname: str, **kwargs) -> HttpResponseRedirect:
    """Redirect a POST that did its work to the page showing the result (303 See Other): the
    browser asks for it with a GET, so reloading that page does not send the POST again."""
    return HttpResponseRedirect(reverse(viewname, kwargs=kwargs), status=303)


def _editable(request: HttpRequest, study: Study) -> bool:
    if study.status == Study.Status.CLOSED:
        messages.error(request, f"Study {study.name!r} is closed; it can no longer be changed.")
        return False
    return True


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    studies = visible_studies(request.user).annotate(
        n_trials=Count("trials", distinct=True),
        n_participants=Count("participants", distinct=True),
    )
    return render(request, "studies/experimenter/dashboard.html", {"studies": studies})


@login_required
def study_create(request: HttpRequest) -> HttpResponse:
    form = StudyForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            study = form.save(commit=False)
            study.owner = request.user
            study.save()
            form.save_sharing(study)
            history.record(
                study, request.user, history.Kind.CREATED, history.changes({}, history.state(study))
            )
        messages.success(request, f"Study {study.name!r} created.")
        return redirect("studies:study_detail", pk=study.pk)
    return render(request, "studies/experimenter/study_form.html", {"form": form, "study": None})


@login_required
def study_edit(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    if request.method == "POST" and not _editable(request, study):
        return redirect("studies:study_detail", pk=study.pk)
    before = history.state(study)  # now: validating a ModelForm writes the POST onto `study`
    read_before = report_settings(study)
    form = StudyForm(request.POST or None, instance=study, is_owner=is_owner(request.user, study))
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            study.refresh_from_db()
            changed = history.changes(before, history.state(study))
            history.record(study, request.user, history.Kind.EDITED, changed)
            if report_settings(study) != read_before and _has_report_input(study):
                schedule_report(study.pk, countdown=0)  # queued once the edit commits
        messages.success(request, "Study saved.")
        return redirect("studies:study_detail", pk=study.pk)
    return render(request, "studies/experimenter/study_form.html", {"form": form, "study": study})


def _has_report_input(study: Study) -> bool:
    """Whether the study has a report to recompute: answers, or reports computed (from answers
    deleted since)."""
    return study.report_snapshots.exists() or Answer.objects.filter(trial__study=study).exists()


@login_required
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    trials = study.trials.all()
    context = {
        "study": study,
        "participant_url": participant_url(request, study),
        "n_clips": study_catalogue_clips(study).count(),
        "trial_counts": trials.aggregate(
            main=Count("id", filter=Q(is_practice=False, is_catch=False)),
            practice=Count("id", filter=Q(is_practice=True)),
            catch=Count("id", filter=Q(is_catch=True)),
        ),
        "actions": [a for a, (src, _) in TRANSITIONS.items() if study.status in src],
        "settings": study.full_settings(),
        "is_owner": is_owner(request.user, study),
        "events": history.events(study)[-HISTORY_SHOWN:][::-1],
        "preview_url": f"{participant_url(request, study)}?pid=preview-{secrets.token_hex(4)}",
        "n_previews": study.participants.count() if study.status == Study.Status.DRAFT else 0,
        "shortfalls": catch_shortfalls(study),
    }
    return render(request, "studies/experimenter/study_detail.html", context)


def catch_shortfalls(study: Study) -> list[str]:
    """The catch settings the study's trials cannot meet, said plainly: a participant gets at
    most as many checks of a kind as there are such trials (a repeat only with its original)."""
    have = dict(
        study.trials.filter(is_catch=True, is_practice=False)
        .values_list("catch_kind")
        .annotate(n=Count("id"))
    )
    lines = []
    for kind, wanted in study.setting("catch").items():
        if int(wanted or 0) > have.get(kind, 0):
            lines.append(
                f"Settings ask for {wanted} {kind} catch trial(s) per participant; the study "
                f"has {have.get(kind, 0)}, so participants get at most that many."
            )
    return lines


@login_required
@require_POST
def study_status(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    action = request.POST.get("action", "")
    if action not in TRANSITIONS:
        messages.error(request, f"Unknown action {action!r}; expected open, pause or close.")
    elif study.status not in TRANSITIONS[action][0]:
        messages.error(request, f"A {study.status} study cannot be changed by {action!r}.")
    elif action == "open" and not study.trials.filter(is_practice=False, is_catch=False).exists():
        messages.error(request, "Add main trials before opening the study.")
    else:
        before, study.status = study.status, TRANSITIONS[action][1]
        with transaction.atomic():
            locked = Study.objects.select_for_update().only("status").get(pk=study.pk)
            if locked.status != before:  # changed by another request meanwhile
                messages.error(request, f"The study is already {locked.status}.")
                return redirect("studies:study_detail", pk=study.pk)
            study.save(update_fields=["status", "updated_at"])
            what = {"status": [before, study.status]}
            if before == Study.Status.DRAFT:
                if removed := remove_previews(study):
                    what["preview participants"] = [removed, 0]
            history.record(study, request.user, history.Kind.STATUS, what)
        messages.success(request, f"Study is now {study.status}.")
    return redirect("studies:study_detail", pk=study.pk)


def remove_previews(study: Study) -> int:
    """Delete what researchers' previews of a draft study stored (`is_preview`), with the fill
    counted from them and the reports computed from them; the count removed. Run as the study
    leaves draft, so that no preview reaches its data."""
    previews = study.participants.filter(is_preview=True)
    removed = previews.count()
    if removed:
        # Their rows locked before the report lock, as a withdrawal takes them: the other order
        # deadlocks with a preview withdrawing meanwhile.
        design.lock_participants(previews.values_list("pk", flat=True))
        # Counted as a deletion under the report lock (as a withdrawal is): a report computation
        # that read the previews' answers before this stores nothing (reports.services).
        state = ReportState.lock(study.pk)
        state.deletions += 1
        state.save(update_fields=["deletions"])
        previews.delete()  # their slots and answers with them
        StudyFold.objects.filter(study=study).delete()  # made again at the next entry
        study.report_snapshots.all().delete()  # computed from previews only
    return removed


def study_catalogue(study: Study, user) -> Catalogue:
    """The study's catalogue, created (owned by the study's owner) on first use; setting it is a
    change to the study, recorded in its history as `user`'s. The study's row is locked while
    it is set, so two first uploads at once record it once."""
    if study.catalogue_id is None:
        with transaction.atomic():
            locked = Study.objects.select_for_update().get(pk=study.pk)
            if locked.catalogue_id is None:
                catalogue, _ = Catalogue.objects.get_or_create(
                    owner=study.owner, name=f"study {study.pk}: {study.name}"[:200]
                )
                study.catalogue = catalogue
                study.save(update_fields=["catalogue", "updated_at"])
                what = {"catalogue": [None, catalogue.pk]}
                history.record(study, user, history.Kind.EDITED, what)
            else:
                study.catalogue_id = locked.catalogue_id
    return study.catalogue


def study_catalogue_clips(study: Study):
    if study.catalogue_id is None:
        return Clip.objects.none()
    return Clip.objects.filter(catalogue_id=study.catalogue_id)


@login_required
def clips(request: HttpRequest, pk: int) -> HttpResponse:
    """List the study catalogue's clips; upload several files at once, each validated.

    A valid upload redirects (303) back here, and the page shows each file's result once: a
    reload then asks for the page again instead of sending the files again."""
    study = get_visible_study(request.user, pk)
    form = ClipUploadForm(request.POST or None, request.FILES or None)
    shown = f"studies:upload-results:{study.pk}"  # session key: the last upload, shown once
    if request.method == "POST":
        if not _editable(request, study):
            return see_other("studies:clips", pk=study.pk)
        if form.is_valid():
            request.session[shown] = [upload_result(c) for c in _upload(request, study, form)]
            return see_other("studies:clips", pk=study.pk)
    context = {
        "study": study,
        "form": form,
        "results": request.session.pop(shown, []) if request.method == "GET" else [],
        "clips": study_catalogue_clips(study).order_by("-id")[:500],
        "target_lufs": study.setting("loudness_target_lufs"),
    }
    return render(request, "studies/experimenter/clips.html", context)


def _upload(request: HttpRequest, study: Study, form: ClipUploadForm) -> list[Clip]:
    """Store each file of a valid upload form (refusing oversized ones); a message sums up."""
    catalogue = study_catalogue(study, request.user)
    target = study.setting("loudness_target_lufs")
    results = []
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
    return results


def upload_result(clip: Clip) -> dict:
    """What the clips page shows of one uploaded file, as the session keeps it (JSON): refused
    and already-known files are not in the catalogue to look up afterwards."""
    known = clip.duplicate_of
    return {
        "name": clip.name,
        "status": clip.status,
        "error": clip.error,
        "duplicate_of": None if known is None else {"pk": known.pk, "name": known.name},
        "duration_s": clip.duration_s,
        "sample_rate": clip.sample_rate,
        "loudness_lufs": clip.loudness_lufs,
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
        if not _editable(request, study):
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
            study_catalogue(study, request.user),
            seconds=data["seconds"],
            attention=data["attention"],
            target_lufs=study.setting("loudness_target_lufs"),
        )
    except (DataError, OSError) as exc:
        form.add_error("root", str(exc))
        return None
    messages.success(
        request,
        f"Imported {len(report.mixes)} mix clips and {len(report.attention)} attention "
        f"sets; {len(report.skipped)} skipped; {len(report.existing)} already imported.",
    )
    return {
        "mixes": len(report.mixes),
        "attention": len(report.attention),
        "existing": len(report.existing),
        "skipped": report.skipped,
    }


@login_required
def trials(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    return _trials_page(request, study)


def _trials_page(
    request, study, *, form=None, csv_form=None, random_form=None, repeats_form=None, status=200
):
    context = {
        "study": study,
        "form": form or TrialForm(study=study),
        "csv_form": csv_form or TrialCSVForm(study=study),
        "random_form": random_form or RandomTrialsForm(),
        "repeats_form": repeats_form or RepeatsForm(),
        "trials": study.trials.select_related("reference", "candidate_a", "candidate_b"),
        "n_clips": study_clips(study).count(),
    }
    return render(request, "studies/experimenter/trials.html", context, status=status)


def _trials_form(request, pk: int, make_form, page_key: str):
    """(study, bound form, None) for a POST that adds trials, or (study, form, the response to
    give instead): back to the trials of a closed study, or the page with the form's errors."""
    study = get_visible_study(request.user, pk)
    if not _editable(request, study):
        return study, None, redirect("studies:trials", pk=study.pk)
    form = make_form(study)
    if not form.is_valid():
        return study, form, _trials_page(request, study, **{page_key: form}, status=400)
    return study, form, None


@login_required
@require_POST
def trial_add(request: HttpRequest, pk: int) -> HttpResponse:
    make = lambda study: TrialForm(request.POST, study=study)  # noqa: E731
    study, form, refused = _trials_form(request, pk, make, "form")
    if refused:
        return refused
    with transaction.atomic():
        trial = form.save()
        history.record(study, request.user, history.Kind.TRIALS, {"added": 1, "how": "form"})
    messages.success(request, f"Trial {trial.pk} added.")
    return redirect("studies:trials", pk=study.pk)


@login_required
@require_POST
def trials_csv(request: HttpRequest, pk: int) -> HttpResponse:
    make = lambda study: TrialCSVForm(request.POST, request.FILES, study=study)  # noqa: E731
    study, form, refused = _trials_form(request, pk, make, "csv_form")
    if refused:
        return refused
    made = form.cleaned_data["csv_file"]
    with transaction.atomic():
        for trial in made:
            trial.save()
        what = {"added": len(made), "how": "csv", "file": request.FILES["csv_file"].name}
        history.record(study, request.user, history.Kind.TRIALS, what)
    messages.success(request, f"{len(made)} trial(s) added from CSV.")
    return redirect("studies:trials", pk=study.pk)


@login_required
@require_POST
def trials_random(request: HttpRequest, pk: int) -> HttpResponse:
    """Draw trials at random from the catalogue (the model-free design of random_design.py)."""
    study, form, refused = _trials_form(
        request, pk, lambda _: RandomTrialsForm(request.POST), "random_form"
    )
    if refused:
        return refused
    data = form.cleaned_data
    catalogue = study_catalogue(study, request.user)
    try:
        with transaction.atomic():  # the draw and its history at once, under the study's lock
            made = build_random_trials(
                study,
                catalogue,
                per_instrument=data["per_instrument"],
                seed=data["seed"],
                practice=study.setting("practice_trials"),
                catch_per_kind=data["catch_per_kind"],
            )
            what = {"added": len(made), "how": "random", **data}
            history.record(study, request.user, history.Kind.TRIALS, what)
    except DesignError as exc:
        form.add_error(None, str(exc))
        return _trials_page(request, study, random_form=form, status=400)
    messages.success(request, f"{len(made)} trial(s) drawn at random (seed {data['seed']}).")
    return redirect("studies:trials", pk=study.pk)


@login_required
@require_POST
def trials_repeats(request: HttpRequest, pk: int) -> HttpResponse:
    """Add A/B-swapped repeats of main trials (`random_design.add_repeats`)."""
    study, form, refused = _trials_form(
        request, pk, lambda _: RepeatsForm(request.POST), "repeats_form"
    )
    if refused:
        return refused
    try:
        with transaction.atomic():
            made = add_repeats(study, **form.cleaned_data)
            what = {"added": len(made), "how": "repeats", **form.cleaned_data}
            history.record(study, request.user, history.Kind.TRIALS, what)
    except DesignError as exc:
        form.add_error(None, str(exc))
        return _trials_page(request, study, repeats_form=form, status=400)
    messages.success(request, f"{len(made)} repeat trial(s) added.")
    return redirect("studies:trials", pk=study.pk)


@login_required
def study_progress(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    context = {"study": study, **progress.summary(study)}
    return render(request, "studies/experimenter/progress.html", context)


@login_required
def export_index(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    files = list(export.EXPORT_FILES)
    return render(request, "studies/experimenter/export.html", {"study": study, "files": files})


@login_required
def export_download(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    if name == "bundle.zip":
        content, content_type = export.export_zip(study), "application/zip"
    elif name in export.EXPORT_FILES:
        content, content_type = export.export_file(study, name), export.EXPORT_FILES[name][0]
    else:
        raise Http404(f"No export named {name!r}.")
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-{name}"'
    return response
