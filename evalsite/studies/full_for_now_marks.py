"""Marking the participants the code before `flow.turn_away` put at the study-full step at
"Start" on the instructions, while the trials left were only reserved, the way `turn_away` marks
them now (`FULL_FOR_NOW`), so that `flow.resume` takes them back once a newcomer would get a trial.
Migration studies 0018 runs it with its historical models; `manage.py mark_full_for_now` with the
current ones, for those a process still on the earlier code turned away after `migrate`.

Told apart from what is stored (0018's docstring says how): consented, at `full` unmarked,
holding no slot, with no trial taken out and no answer, in a study whose answers alone do not fill
every main trial, and sent to `full` (`finished_at`) after studies 0017 was applied. Before 0017
the code recorded no trial it took out of a returning participant's list, so one it emptied in its
trials looks the same and may have heard a trial that is free again: those stay at `full`."""

from __future__ import annotations

from typing import Any

from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Count, Exists, Func, JSONField, OuterRef, Value

FULL_FOR_NOW = "full_for_now"  # flow.FULL_FOR_NOW, as it is written at migration 0018
TURNED_AWAY_AT = "instructions"  # "Start", where assignment at the instructions found no trial
TAKEN_OUT_RECORDED = ("studies", "0017_participant_taken_out_trials")


class _WithKey(Func):
    """A JSON object with one key set to a string, the rest kept: one UPDATE for many rows."""

    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra):
        obj, key, value = (compiler.compile(e) for e in self.source_expressions)
        sql = f"({obj[0]} || jsonb_build_object({key[0]}::text, {value[0]}::text))"
        return sql, (*obj[1], *key[1], *value[1])

    def as_sqlite(self, compiler, connection, **extra):
        obj, key, value = (compiler.compile(e) for e in self.source_expressions)
        return f"json_set({obj[0]}, '$.' || {key[0]}, {value[0]})", (*obj[1], *key[1], *value[1])


def _answered_full(apps: Any, study: Any) -> bool:
    """design_fill.answered_full at migration 0018: no main trial, or every main trial with at
    least its target of answers from participants who are not previews."""
    from evalsite.studies.models import DEFAULT_SETTINGS  # a plain dict, not a model

    Trial, Answer = apps.get_model("studies", "Trial"), apps.get_model("studies", "Answer")
    main = list(
        Trial.objects.filter(study=study, is_practice=False, is_catch=False).values_list(
            "id", flat=True
        )
    )
    default = DEFAULT_SETTINGS["target_answers_per_trial"]
    target = int((study.settings or {}).get("target_answers_per_trial", default))
    counts = dict(
        Answer.objects.filter(trial_id__in=main, participant__is_preview=False)
        .values("trial_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("trial_id", "n")
    )
    return not main or all(counts.get(t, 0) >= target for t in main)


def mark_turned_away_at_start(apps: Any, connection: Any) -> int:
    """Mark them (one UPDATE per study) in `apps` (a migration's historical models, or
    django.apps.apps) on `connection`; the number marked. None before 0017 is applied."""
    recorded = MigrationRecorder(connection).migration_qs.filter(
        app=TAKEN_OUT_RECORDED[0], name=TAKEN_OUT_RECORDED[1]
    )
    since = recorded.values_list("applied", flat=True).first()
    if since is None:
        return 0
    Participant, Study = (
        apps.get_model("studies", "Participant"),
        apps.get_model("studies", "Study"),
    )
    mine = {"participant_id": OuterRef("pk")}
    at_start = (
        Participant.objects.filter(step="full", consented_at__isnull=False, finished_at__gt=since)
        .exclude(state__has_key=FULL_FOR_NOW)
        .exclude(Exists(apps.get_model("studies", "Assignment").objects.filter(**mine)))
        .exclude(Exists(apps.get_model("studies", "TakenOutTrial").objects.filter(**mine)))
        .exclude(Exists(apps.get_model("studies", "Answer").objects.filter(**mine)))
    )
    marked = 0
    for study in Study.objects.filter(pk__in=at_start.values("study_id")).order_by("pk"):
        if not _answered_full(apps, study):
            mark = _WithKey("state", Value(FULL_FOR_NOW), Value(TURNED_AWAY_AT))
            marked += at_start.filter(study=study).update(state=mark)
    return marked
