"""Experimenter pages for a study's trials: the list, four ways to add trials (one by form,
a CSV file, a random draw from the catalogue, A/B-swapped repeats), and deleting all of a
draft's trials (`trial_removal`).

Each form posts to its own view, which redirects to the trials page when it added trials and
shows the page again with the form's errors (400) when it did not.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from evalsite.studies import history, practice_clips, trial_identity, trial_removal, trial_saving
from evalsite.studies.experimenter import (
    editable,
    lock_editable,
    main_shortfalls,
    see_other,
    study_catalogue,
)
from evalsite.studies.forms import RandomTrialsForm, RepeatsForm, TrialForm, study_clips
from evalsite.studies.permissions import get_visible_study
from evalsite.studies.random_design import DesignError, add_repeats, build_random_trials
from evalsite.studies.trials_csv import TrialCSVForm, shown_errors


@login_required
def trials(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_study(request.user, pk)
    return _trials_page(request, study)


def _trials_page(
    request, study, *, form=None, csv_form=None, random_form=None, repeats_form=None, status=200
):
    context = {
        "study": study,
        "form": form or TrialForm(study=study, user=request.user),
        "csv_form": csv_form or TrialCSVForm(study=study, user=request.user),
        "random_form": random_form or RandomTrialsForm(),
        "repeats_form": repeats_form or RepeatsForm(),
        "trials": study.trials.select_related("reference", "candidate_a", "candidate_b"),
        "n_clips": study_clips(study, request.user).count(),
        "may_delete": not trial_removal.refusal(study),
        "practice_warnings": practice_clips.page_lines(study),
    }
    return render(request, "studies/experimenter/trials.html", context, status=status)


def _trials_form(request, pk: int, make_form, page_key: str):
    """(study, bound form, None) for a POST that adds trials, or (study, form, the response to
    give instead): back to the trials of a closed study, or the page with the form's errors."""
    study = get_visible_study(request.user, pk)
    if not editable(request, study):
        return study, None, redirect("studies:trials", pk=study.pk)
    form = make_form(study)
    if not form.is_valid():
        return study, form, _trials_page(request, study, **{page_key: form}, status=400)
    return study, form, None


@login_required
@require_POST
def trial_add(request: HttpRequest, pk: int) -> HttpResponse:
    make = lambda study: TrialForm(request.POST, study=study, user=request.user)  # noqa: E731
    study, form, refused = _trials_form(request, pk, make, "form")
    if refused:
        return refused
    trial = form.save(commit=False)
    with transaction.atomic():
        if not lock_editable(request, study):  # closed since the first check
            return redirect("studies:trials", pk=study.pk)
        same = trial_saving.repeated(trial)
        if same is None:
            trial_saving.save(trial, request.user, "form")
    if same is not None:  # a double click, or a second tab: refused under the lock
        form.add_error(None, trial_saving.refusal(trial, same, "added"))
        return _trials_page(request, study, form=form, status=400)
    messages.success(request, f"Trial {trial.pk} added.")
    _warn_practice(request, study, [trial])
    return redirect("studies:trials", pk=study.pk)


@login_required
@require_POST
def trials_csv(request: HttpRequest, pk: int) -> HttpResponse:
    make = lambda study: TrialCSVForm(request.POST, request.FILES, study=study, user=request.user)  # noqa: E731
    study, form, refused = _trials_form(request, pk, make, "csv_form")
    if refused:
        return refused
    made = form.cleaned_data["csv_file"]
    upload = request.FILES.get("csv_file")
    if upload is None:  # the form is valid, so the file is there
        raise ValueError("trials_csv: no csv_file upload after a valid form")
    with transaction.atomic():
        if not lock_editable(request, study):  # closed since the first check
            return redirect("studies:trials", pk=study.pk)
        if not (there := trial_identity.already_there(study, form.rows)):
            for trial in made:
                trial.save()
            what = {"added": len(made), "how": "csv", "file": upload.name}
            history.record(study, request.user, history.Kind.TRIALS, what)
    if there:  # sent twice (a double click), or rows added by hand meanwhile: nothing added
        form.add_error("csv_file", shown_errors(there))
        return _trials_page(request, study, csv_form=form, status=400)
    messages.success(request, f"{len(made)} trial(s) added from CSV.")
    _warn_practice(request, study, made)
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
    try:
        # The draw, its history and the catalogue made for it (with its own history entry) at
        # once, under the study's lock: a refused draw leaves the study as it was.
        with transaction.atomic():
            made = build_random_trials(
                study,
                study_catalogue(study, request.user),
                per_instrument=data["per_instrument"],
                seed=data["seed"],
                practice=study.setting("practice_trials"),
                catch_per_kind=data["catch_per_kind"],
            )
            # Checked under the lock the draw took (held until this block ends): closed since
            # the first check, the draw and any catalogue made for it are undone.
            if not lock_editable(request, study):
                transaction.set_rollback(True)
                return redirect("studies:trials", pk=study.pk)
            what = {"added": len(made), "how": "random", **data}
            history.record(study, request.user, history.Kind.TRIALS, what)
    except DesignError as exc:
        study.refresh_from_db(fields=["catalogue"])  # a catalogue set for the draw is undone
        form.add_error(None, str(exc))
        return _trials_page(request, study, random_form=form, status=400)
    messages.success(request, f"{len(made)} trial(s) drawn at random (seed {data['seed']}).")
    for note in [*study.design.get("practice_notes", []), *main_shortfalls(study)]:
        messages.warning(request, note)
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
            if not lock_editable(request, study):  # closed since the first check
                return redirect("studies:trials", pk=study.pk)
            made = add_repeats(study, **form.cleaned_data)
            what = {"added": len(made), "how": "repeats", **form.cleaned_data}
            history.record(study, request.user, history.Kind.TRIALS, what)
    except DesignError as exc:
        form.add_error(None, str(exc))
        return _trials_page(request, study, repeats_form=form, status=400)
    messages.success(request, f"{len(made)} repeat trial(s) added.")
    return redirect("studies:trials", pk=study.pk)


@login_required
@require_POST
def trials_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete all of a draft's trials: a POST without `confirm=yes` shows what it deletes."""
    study = get_visible_study(request.user, pk)
    if why := trial_removal.refusal(study):
        messages.error(request, why)
    elif request.POST.get("confirm") != "yes":
        context = {
            "study": study,
            "n_trials": study.trials.count(),
            "n_previews": study.participants.filter(is_preview=True).count(),
        }
        return render(request, "studies/experimenter/trials_delete.html", context)
    else:
        try:
            shown = request.POST.get("n_trials", "")
            expected = int(shown) if shown.isdigit() else -1  # what the confirmation listed
            what = trial_removal.delete_trials(study, request.user, expected)
        except trial_removal.TrialsKept as exc:  # opened or answered meanwhile
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{what['deleted']} trial(s) deleted; the clips are kept.")
    return see_other("studies:trials", pk=study.pk)


def _warn_practice(request, study, added) -> None:
    """After trials are added by hand or CSV: that some added practice trials are never shown
    (the setting's line), and the practice warnings that name one of them."""
    ids = {t.pk for t in added}
    lines = (
        practice_clips.setting_lines(study)
        if ids & set(practice_clips.shown_and_not(study)[1])
        else []
    )
    for line in [*lines, *practice_clips.warnings(study, involving=ids)]:
        messages.warning(request, line)
