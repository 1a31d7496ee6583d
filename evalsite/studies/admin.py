from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext_lazy

from evalsite.studies import flow_screening, flow_withdraw, history, trial_removal, trial_saving
from evalsite.studies.experimenter import locked_study
from evalsite.studies.models import (
    Answer,
    Assignment,
    ConsentVersion,
    Participant,
    Study,
    StudyEvent,
    Trial,
)

# Django's own action's label (its msgid, so Django's translations of it apply).
DELETE_SELECTED = gettext_lazy("Delete selected %(verbose_name_plural)s")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows shown, never added, edited or deleted one by one in the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TakesRecordAdmin(admin.ModelAdmin):
    """Rows whose deletion takes the record's rows (answers, history) with it: the admin checks
    the delete permission of every cascaded model, which `ReadOnlyAdmin` refuses to all so that
    those rows are not deleted one by one; here they go with their participant or study."""

    def get_deleted_objects(self, objs, request):
        to_delete, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed -= {m._meta.verbose_name for m in (Answer, StudyEvent, ConsentVersion)}
        return to_delete, counts, perms_needed, protected


class StudyAdminForm(forms.ModelForm):
    """The study's raw settings JSON, refused where the settings page would refuse the change
    participants under way depend on (the loudness target: `flow_screening`)."""

    class Meta:
        model = Study
        fields = "__all__"  # noqa: DJ007  (the admin shows every field, status read-only)

    def clean_settings(self):
        value = self.cleaned_data["settings"]
        if isinstance(value, dict) and "loudness_target_lufs" in value:
            target = value["loudness_target_lufs"]
        else:  # left out: the default, as Study.setting reads it
            target = Study(settings={}).setting("loudness_target_lufs")
        if why := flow_screening.loudness_target_refusal(self._locked(), target):
            raise forms.ValidationError(f"loudness_target_lufs: {why}")
        return value

    def _locked(self) -> Study:
        """The study as stored now, its row locked until the admin's Save commits (the admin
        validates and saves in one transaction), as the settings page's Save locks it: the
        target is compared with the one stored, not the one this page read (the settings page
        may have changed it since, and participants calibrated at the new one)."""
        if not self.instance.pk:
            return self.instance
        with transaction.atomic():  # a savepoint in the admin's; alone, a lock released at once
            return Study.objects.select_for_update().get(pk=self.instance.pk)


@admin.register(Study)
class StudyAdmin(TakesRecordAdmin):
    form = StudyAdminForm
    list_display = ("name", "owner", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "slug")
    filter_horizontal = ("shared_with",)
    # Status changes go through the study's dashboard only: it follows TRANSITIONS and deletes
    # preview participants as a draft opens or closes (experimenter.study_status).
    readonly_fields = ("status",)


class TrialAdminForm(forms.ModelForm):
    """A trial typed in the admin, checked as the Trials page's form is (`trial_saving`): under
    the study's lock, refused for a closed study or where the study already has the same trial.
    The lock is taken here, once the form has built the trial, and held until the admin's
    transaction (`changeform_view` is atomic) ends, after `TrialAdmin.save_model` saved it."""

    class Meta:
        model = Trial
        fields = "__all__"  # noqa: DJ007  (the admin shows every field; study fixed once saved)

    def validate_unique(self) -> None:
        super().validate_unique()
        trial = self.instance
        if self.errors or trial.study_id is None:
            return
        study = locked_study(trial.study_id)
        if study.status == Study.Status.CLOSED:
            self.add_error(
                None, f"Study {study.name!r} is closed; its trials can no longer change."
            )
        elif (same := trial_saving.repeated(trial)) is not None:
            self.add_error(None, trial_saving.refusal(trial, same, "saved"))


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    form = TrialAdminForm
    list_display = ("id", "study", "instrument", "is_practice", "catch_kind", "model_choice")
    list_filter = ("study", "instrument", "is_practice", "is_catch")
    raw_id_fields = ("reference", "candidate_a", "candidate_b", "repeat_of")

    def get_readonly_fields(self, request, obj=None):
        # A trial stays in its study: moved, it would change two studies' trials (and answers).
        return ("study",) if obj is not None else ()

    # As the Trials page saves one: recorded in the history, which queues the report's
    # recomputation where the change alters what it reads (reports.signals).
    def save_model(self, request, obj, form, change) -> None:
        if change and not form.has_changed():
            return  # saved as it was: nothing changed, nothing to record
        trial_saving.save(obj, request.user, "admin")

    # As the Trials page deletes them (`trial_removal`): only a draft's trials, while no one but a
    # researcher's preview answered them (a trial's slots and answers go with it, and the export
    # must keep what participants were given), under the study's lock, recorded in the history.
    # (Not has_delete_permission: a study deleted in the admin takes its trials with it.)
    def delete_view(self, request, object_id, extra_context=None):
        trial = self.get_object(request, object_id)
        if trial is not None and (why := trial_removal.refusal(trial.study)):
            raise PermissionDenied(why)
        return super().delete_view(request, object_id, extra_context)

    # The list's "Delete selected": all the selected trials or none. Where a selected trial's
    # study keeps its trials, the action deletes nothing and says which study and why, on the
    # confirmation page's request and again on its confirmation (the study may have opened
    # between the two); before, it deleted trials one by one and stopped with a 403 at the first
    # refused, after the others were gone.
    actions = ["delete_selected"]

    @admin.action(permissions=["delete"], description=DELETE_SELECTED)
    def delete_selected(self, request, queryset):
        if why := _refusals(Study.objects.filter(pk__in=queryset.values("study_id"))):
            self.message_user(request, why, messages.ERROR)
            return None  # back to the list
        return admin_actions.delete_selected(self, request, queryset)

    def delete_queryset(self, request, queryset) -> None:
        """Every selected trial's study checked under its lock (taken in id order, so that two
        such deletes cannot deadlock) before any trial is deleted, all in one transaction;
        refused as a whole with a 403 where a study has left its draft since the action's
        check (`delete_selected`)."""
        with transaction.atomic():
            ids = sorted(set(queryset.values_list("study_id", flat=True)))
            if why := _refusals(locked_study(pk) for pk in ids):
                raise PermissionDenied(why)
            for trial in queryset.order_by("-id"):  # repeats (made after their originals) first
                if Trial.objects.filter(pk=trial.pk).exists():  # not gone with its original
                    self.delete_model(request, trial)

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            study = locked_study(obj.study_id)
            if why := trial_removal.refusal(study):
                raise PermissionDenied(why)
            pk, repeats = obj.pk, obj.repeats.count()
            obj.delete()  # its repeats with it
            what = {"deleted": 1 + repeats, "how": "admin", "trial": pk}
            history.record(study, request.user, history.Kind.TRIALS, what)


def _refusals(studies) -> str:
    """Why the selected trials of these studies may not be deleted, naming each study that keeps
    its trials (`trial_removal.refusal`); "" when all may."""
    refused = [f"study {s.name!r}: {why}" for s in studies if (why := trial_removal.refusal(s))]
    if not refused:
        return ""
    return "Nothing was deleted. " + " ".join(refused)


@admin.register(Participant)
class ParticipantAdmin(TakesRecordAdmin):
    list_display = ("id", "study", "quoted_id", "step", "started_at")
    list_filter = ("study", "step")
    # The participant ID the participant pages show (`quoted_id`, quoted in a deletion request):
    # a recruitment id, else the token's start. Matched exactly, case included (`=` and `^`
    # ignore case), so that a search finds the one participant, not those whose ID contains it.
    search_fields = ("prolific_pid__exact", "external_pid__exact", "token__startswith")
    # Participants are created by the study link and moved between steps by the flow; a final
    # step is final (design_fill.fill_counts adds such a participant's answers up once,
    # `StudyFold`).
    readonly_fields = ("study", "step", "seed")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="participant ID (as shown to them)")
    def quoted_id(self, obj: Participant) -> str:
        return obj.quoted_id

    # A deleted participant's answers leave the stored reports too, as a withdrawal's do.
    def delete_model(self, request, obj) -> None:
        flow_withdraw.delete_participants([obj])

    def delete_queryset(self, request, queryset) -> None:
        flow_withdraw.delete_participants(queryset)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("participant", "index", "trial", "displayed_first", "reserved_until")
    raw_id_fields = ("participant", "trial")


@admin.register(Answer)
class AnswerAdmin(ReadOnlyAdmin):
    """Answers are the study's record: shown, never added, edited or deleted one by one (they go
    with their participant or study)."""

    list_display = ("participant", "trial", "trial_index", "chosen", "response_ms", "created_at")
    list_filter = ("trial__study",)
    raw_id_fields = ("participant", "trial")


@admin.register(StudyEvent)
class StudyEventAdmin(ReadOnlyAdmin):
    """The study history, read-only: it is what the export says held when."""

    list_display = ("at", "study", "user", "kind")
    list_filter = ("kind",)


@admin.register(ConsentVersion)
class ConsentVersionAdmin(ReadOnlyAdmin):
    """The consent pages participants agreed to, read-only: what each agreement was to."""

    list_display = ("first_shown_at", "study", "language", "sha256")
    list_filter = ("language",)
    search_fields = ("=sha256",)  # participants.csv's consent_version, matched exactly
