"""Experimenter pages for whole studies: dashboard, create/edit, overview, status, progress,
export; and what the other experimenter pages share (the study's catalogue, refusing changes to
a closed study, the redirect after a POST). Stimuli pages: `experimenter_stimuli`; trials pages:
`experimenter_trials`.

Every view needs a login, and every study is looked up through `permissions.get_visible_study`,
so a researcher who may not see a study gets the same 404 as for one that does not exist.
Progress uses a handful of aggregate queries; statistics live in the reports app.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from evalsite.reports.models import ReportState
from evalsite.reports.study_config import design_main_trials
from evalsite.reports.tasks import report_settings, schedule_report
from evalsite.stimuli import served_level
from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies import (
    design,
    edit_conflicts,
    entry_limit,
    flow,
    flow_prolific,
    flow_screening,
    history,
    practice_clips,
    progress,
)
from evalsite.studies.forms import StudyForm
from evalsite.studies.models import Answer, Study, StudyFold
from evalsite.studies.permissions import get_visible_study, is_owner, visible_studies


def preview_pid() -> str:
    """A new `pid` for "Preview as a participant" (refused once the study left draft)."""
    return f"{flow.PREVIEW_PREFIX}{secrets.token_hex(4)}"


HISTORY_SHOWN = 20  # latest changes on the overview; the export has them all

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


def editable(request: HttpRequest, study: Study) -> bool:
    """Whether the study may still be changed; if not, says so in a message to show next."""
    if study.status == Study.Status.CLOSED:
        messages.error(request, f"Study {study.name!r} is closed; it can no longer be changed.")
        return False
    return True


def locked_study(pk: int) -> Study:
    """The study's row (status and name), locked until the transaction ends (closing takes the
    lock too)."""
    return Study.objects.select_for_update().only("status", "name").get(pk=pk)


def lock_editable(request: HttpRequest, study: Study) -> bool:
    """Take the study's row lock (`locked_study`) and say, from the locked row, whether the
    study may still be changed (`editable`): a change made under it never lands in a study
    closed since the page's first check."""
    return editable(request, locked_study(study.pk))


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
            if not request.user.is_authenticated:  # login_required lets no one else in
                raise PermissionDenied("log in to create a study")
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
    if request.method == "POST" and not editable(request, study):
        return redirect("studies:study_detail", pk=study.pk)
    # Validating a ModelForm writes the POST onto its instance: the form gets its own copy, so
    # the page around a refused form (title, breadcrumb) still shows the study as saved.
    edited = Study.objects.get(pk=study.pk)
    owner = is_owner(request.user, study)
    form = StudyForm(request.POST or None, instance=edited, is_owner=owner)
    status = 200
    if request.method == "POST" and form.is_valid():
        shown = _save_edit(request, form, owner)
        if shown is None:
            return redirect("studies:study_detail", pk=study.pk)
        form, status = shown
    elif request.method == "POST" and form.has_error("version", "missing"):
        status = 428  # Precondition Required: a write without its concurrency token (RFC 6585)
    closed = study.status == Study.Status.CLOSED
    if closed:  # shown, not offered: no field to type into, no Save to lose it with
        for field in form.fields.values():
            field.disabled = True
    context = {"form": form, "study": study, "closed": closed}
    return render(request, "studies/experimenter/study_form.html", context, status=status)


def _save_edit(request: HttpRequest, form: StudyForm, owner: bool) -> tuple[StudyForm, int] | None:
    """Save a valid edit under the study's row lock (a status change takes it too), or refuse
    it: with a message where the study was closed since the page's check (a Close that
    committed meanwhile stays in force; None, as for a Save); with the form shown again (409)
    where the study was changed since the page was loaded; with the form's refusal (200) where
    participants set their volume at the loudness target since the form checked it. Each is
    decided on the locked row, and the page shown again is built from it too. The form writes
    only its own columns, never the status, design or slug."""
    edited = form.instance
    with transaction.atomic():
        if not lock_editable(request, edited):
            return None
        locked = Study.objects.get(pk=edited.pk)
        # The form's settings and texts go onto those stored now (keys it does not show kept).
        edited.settings, edited.texts = locked.settings, locked.texts
        if found := edit_conflicts.conflict(form, locked):
            return _conflict_form(form, found, locked, owner), 409
        target = form.cleaned_data["loudness_target_lufs"]
        if why := flow_screening.loudness_target_refusal(locked, target):
            form.add_error("loudness_target_lufs", why)  # as the form's own check says it
            return form, 200
        before, read_before = history.state(locked), _report_reads(locked)
        form.save()
        edited.refresh_from_db()
        changed = history.changes(before, history.state(edited))
        history.record(edited, request.user, history.Kind.EDITED, changed)
        if _report_reads(edited) != read_before and _has_report_input(edited):
            schedule_report(edited.pk, countdown=0)  # queued once the edit commits
    messages.success(request, "Study saved.")
    return None


def _conflict_form(
    form: StudyForm, found: edit_conflicts.Conflict, locked: Study, owner: bool
) -> StudyForm:
    """The settings form shown again after a Save that met another's change: the user's input,
    the values saved meanwhile in the fields the user left alone, and the version, all from
    `locked`, the row the conflict was found on (still locked). A Save committing after the
    lock is released is then not in the page's version, so the page's next Save meets it
    instead of writing the page's stale value over it."""
    fresh = StudyForm(instance=locked, is_owner=owner)
    data = edit_conflicts.refreshed_data(form, fresh, found)
    shown = StudyForm(data, instance=locked, is_owner=owner)
    shown.full_clean()
    shown.add_error(None, edit_conflicts.message(found, fresh.labels()))
    return shown


def _report_reads(study: Study) -> tuple[dict, dict]:
    """What the report reads of the study that a settings edit can change: its report settings
    and the main trials per participant its power plan plans at (trials_per_participant caps
    them). Not the listening per trial the plan's minutes add: the clips' full durations, which
    min_listen_share does not change (the page waits for the clips to end)."""
    return report_settings(study), design_main_trials(study)


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
        # Ready clips are what trials use; failed ones (a worker's refusal, listed with its
        # error on the Clips page) are counted apart. A refused upload is not kept at all.
        "clip_counts": study_catalogue_clips(study).aggregate(
            ready=Count("id", filter=Q(status=Clip.Status.READY)),
            failed=Count("id", filter=Q(status=Clip.Status.FAILED)),
        ),
        "trial_counts": trials.aggregate(
            main=Count("id", filter=Q(is_practice=False, is_catch=False)),
            practice=Count("id", filter=Q(is_practice=True)),
            catch=Count("id", filter=Q(is_catch=True)),
        ),
        "actions": [a for a, (src, _) in TRANSITIONS.items() if study.status in src],
        "settings": study.full_settings(),
        "is_owner": is_owner(request.user, study),
        "events": history.events(study)[-HISTORY_SHOWN:][::-1],
        "preview_url": f"{participant_url(request, study)}?pid={preview_pid()}",
        "n_previews": study.participants.count() if study.status == Study.Status.DRAFT else 0,
        # a design warning only matters while the design can still change
        "shortfalls": (
            []
            if study.status == Study.Status.CLOSED
            else main_shortfalls(study) + catch_shortfalls(study)
        ),
        "practice_warnings": (
            [] if study.status == Study.Status.CLOSED else practice_clips.page_lines(study)
        ),
        # languages whose consent page would show only the site's paragraph on stopping and leaving
        "no_consent": [] if study.status == Study.Status.CLOSED else no_consent(study),
        "consent_not_translated": (
            [] if study.status == Study.Status.CLOSED else consent_not_translated(study)
        ),
        "consent_versions": consent_versions_agreed(study),
        "completion_problem": (
            ""
            if study.status == Study.Status.CLOSED
            else flow_prolific.study_completion_problem(study)
        ),
        "completion_code": flow_prolific.completion_code(study),
        "quiet_clips": None if study.status == Study.Status.CLOSED else quiet_clips(study),
        "peak_unknown": (
            None
            if study.status == Study.Status.CLOSED
            else served_level.peak_unknown(study_catalogue_clips(study))
        ),
        "shortfall_lu": served_level.SHORTFALL_LU,
    }
    return render(request, "studies/experimenter/study_detail.html", context)


def quiet_clips(study: Study) -> dict | None:
    """The ready clips of the study's catalogue whose peaks keep them played more than
    `served_level.SHORTFALL_LU` under its loudness target: how many of the clips its trials
    use (`n`, which it can leave out of them) and the most LU under among them (`most`), and
    how many others of the catalogue, in none of its trials (`others`, `others_most`), which a
    trial added later would play that quiet. None if none."""
    target = study.setting("loudness_target_lufs")
    played = served_level.under_target_in(study_catalogue_clips(study), target)
    if not played:
        return None
    used: set[int] = set()
    for row in study.trials.values_list("reference_id", "candidate_a_id", "candidate_b_id"):
        used.update(row)
    in_trials = [v for pk, v in played.items() if pk in used]
    others = [v for pk, v in played.items() if pk not in used]
    return {
        "n": len(in_trials),
        "most": target - min(in_trials, default=target),
        "others": len(others),
        "others_most": target - min(others, default=target),
    }


def _offered(study: Study) -> list[str]:
    # as the participant pages read it (participant_render): no languages means English
    return study.setting("languages") or ["en"]


def _language_name(code: str) -> str:
    return f"{dict(settings.LANGUAGES).get(code, code)} ({code})"


def no_consent(study: Study) -> list[str]:
    """'<Language> (<code>)' for each language the study offers whose participants would read no
    consent text: neither one of its own (Texts per language) nor the Consent text field."""
    return [
        _language_name(code)
        for code in _offered(study)
        if not study.text("consent_text", code).strip()
    ]


def consent_not_translated(study: Study) -> list[str]:
    """'<Language> (<code>)' for each language the study offers after its first (whose
    participants read the Consent text field) with no consent text of its own: its participants
    would read the Consent text field, in another language. Languages that would read none at
    all (the field is empty too) are `no_consent`'s."""
    if not study.consent_text.strip():
        return []
    return [
        _language_name(code)
        for code in _offered(study)[1:]
        if not ((study.texts or {}).get(code) or {}).get("consent_text", "").strip()
    ]


def consent_versions_agreed(study: Study) -> list[tuple[str, int]]:
    """('<Language> (<code>)', n) for each language whose participants agreed to more than one
    version of the consent page (it was edited while they took part). Per language: each
    language's page is a version of its own, so two languages are not an edit."""
    names = dict(settings.LANGUAGES)
    agreed = (
        study.consent_versions.filter(participants__isnull=False)
        .values_list("language")
        .annotate(n=Count("id", distinct=True))
        .order_by("language")
    )
    return [(f"{names.get(code, code)} ({code})", n) for code, n in agreed if n > 1]


def main_shortfalls(study: Study) -> list[str]:
    """Said, with its true reason, when each participant gets fewer main trials than the study
    asks for (`trials_per_participant`, else all its main trials): a trial set smaller than the
    setting, or the piece rule (`design.select_trials`: one main trial per instrument and
    reference piece, and no two on one reference piece that share a candidate piece where the
    model chose the candidates, Trial.model_designed)."""
    main = study.trials.filter(is_practice=False, is_catch=False).count()
    asked = study.setting("trials_per_participant")
    lines = []
    if asked and main < asked:
        lines.append(
            f"The study has {main} main trials, fewer than the {asked} per participant the "
            f"settings ask for: each participant gets at most {main}."
        )
    wanted_n = min(asked, main) if asked else main
    most, total = design.most_main_trials(study), design.most_main_total(study)
    if total < wanted_n:
        by_model = study.trials.filter(model_designed=True).exists()
        lines.append(_piece_rule_shortfall(most, total, wanted_n, asked, main, by_model))
    return lines


def _piece_rule_shortfall(
    most: dict, total: int, wanted_n: int, asked, main: int, by_model: bool
) -> str:
    """The line for main trials the piece rule keeps from each participant, naming the part of
    the rule that does (`main_shortfalls`); the model only where it chose candidates
    (`by_model`: a design from the model), as only then does a shared candidate hold its
    choice."""
    wanted = f"the {asked} the settings ask for" if asked and asked <= main else (
        f"all {main} of the study's")  # fmt: skip
    each = ", ".join(f"{instrument} {n}" for instrument, n in most.items())
    if total < sum(most.values()):  # the counts per instrument add up to more than one gets
        each = f"per instrument at most {each}"
    reasons = []
    if sum(most.values()) < wanted_n:
        reasons.append(
            "main trials of one instrument whose references are of one piece go to different "
            "participants, as the two would share a candidate, the model's choice"
            if by_model
            else "main trials of one instrument whose references are of one piece go to "
            "different participants, as the two would share the reference's song and link each "
            "other"
        )
    if total < sum(most.values()):
        reasons.append(
            "main trials on one reference piece that share a candidate piece go to different "
            "participants where the model chose the candidates, whatever their instruments, as "
            "the candidate that recurs would tell which one the model chose"
        )
    return (
        f"Each participant gets at most {total} main trials ({each}), not {wanted}: "
        f"{'; and '.join(reasons)}. More participants are needed to reach the target."
    )


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
    elif action == "open" and (why := flow_prolific.study_completion_problem(study)):
        messages.error(request, f"Not opened. {why} Fix it in Settings.")
    elif action == "close" and request.POST.get("confirm") != "yes":
        return _close_confirmation(request, study)  # closing is final: asked before it is done
    else:
        before, study.status = study.status, TRANSITIONS[action][1]
        with transaction.atomic():
            locked = Study.objects.select_for_update().only("status").get(pk=study.pk)
            if locked.status != before:  # changed by another request meanwhile
                messages.error(request, f"The study is already {locked.status}.")
                return redirect("studies:study_detail", pk=study.pk)
            study.save(update_fields=["status", "updated_at"])
            what: dict[str, list] = {"status": [before, study.status]}
            if before == Study.Status.DRAFT:
                if removed := remove_previews(study):
                    what["preview participants"] = [removed, 0]
            if not study.is_open:  # paused or closed: no new participant to count addresses for
                entry_limit.clear_study(study)
            history.record(study, request.user, history.Kind.STATUS, what)
        messages.success(request, f"Study is now {study.status}.")
    return redirect("studies:study_detail", pk=study.pk)


def _close_confirmation(request: HttpRequest, study: Study) -> HttpResponse:
    """The page asking to confirm closing (what it means), from a Close without `confirm`."""
    context = {
        "study": study,
        "n_previews": study.participants.filter(is_preview=True).count()
        if study.status == Study.Status.DRAFT
        else 0,
        "can_pause": study.status in TRANSITIONS["pause"][0],
    }
    return render(request, "studies/experimenter/study_close.html", context)


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
    if study.catalogue is None:  # set above, or already
        raise ValueError(f"study {study.pk}: no catalogue after setting one")
    return study.catalogue


def study_catalogue_clips(study: Study):
    if study.catalogue_id is None:
        return Clip.objects.none()
    return Clip.objects.filter(catalogue_id=study.catalogue_id)


@login_required
@never_cache
def study_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress page; with ?fragment=figures only its figures, which the page's script
    fetches to update them in place (a reload would move a reader's position to the top)."""
    study = get_visible_study(request.user, pk)
    context = {"study": study, "as_of": timezone.now(), **progress.summary(study)}
    if request.GET.get("fragment") == "figures":
        return render(request, "studies/experimenter/_progress_figures.html", context)
    refresh_s = settings.CSN_PROGRESS_REFRESH_S
    context.update(refresh_s=refresh_s, refresh_ms=round(refresh_s * 1000))
    return render(request, "studies/experimenter/progress.html", context)


@login_required
def export_index(request: HttpRequest, pk: int) -> HttpResponse:
    from evalsite.studies import export  # loads pandas: on this page, not at start-up

    study = get_visible_study(request.user, pk)
    files = list(export.EXPORT_FILES)
    return render(request, "studies/experimenter/export.html", {"study": study, "files": files})


@login_required
def export_download(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    from evalsite.studies import export  # loads pandas: on a download, not at start-up

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
