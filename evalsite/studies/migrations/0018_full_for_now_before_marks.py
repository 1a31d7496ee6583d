"""Mark the participants the code before `flow.turn_away` put at the study-full step at "Start"
on the instructions, while the trials left were only reserved, the way `turn_away` marks them
now (`FULL_FOR_NOW`: the step they were turned away at), so that `flow.resume` takes them back
once a newcomer would get a trial (findings_rupg.md, 3). Without the mark they stayed turned away
for good, while a newcomer was let in.

That code sent a participant to `full` in three ways, told apart here from what is stored:
- at the study link, when the answers alone gave every main trial its target (for good, as
  `turn_away` decides now): not consented yet (`consented_at` empty); left unmarked;
- at "Start", when assignment found no trial (answers plus live reservations): consented, and
  assignment stored no slot, so it holds none and had none taken out; marked, unless the answers
  alone give every main trial its target now (then `turn_away` would not mark it either);
- in its trials, its list emptied on a return (docs/site.md, Design rules, "Returns"): it keeps
  the slots it answered (practice, checks), and the trials taken out of its list are recorded
  (`TakenOutTrial`); it stays at `full` for good, as now; left unmarked.
`resume` checks again, when the participant comes back, that the study is open and a newcomer
would get a trial. (A database that already ran `turn_away` may hold a participant it turned
away at "Start" for good, unmarked; it is marked here only if the answers no longer fill the
study, e.g. a participant was deleted since, when a newcomer would be let in too.) Reversed, nothing is undone: the mark is what the code after this migration
writes too, and the code before it ignores it."""

from __future__ import annotations

from django.db import migrations
from django.db.models import Count, Exists, OuterRef

FULL_FOR_NOW = "full_for_now"  # flow.FULL_FOR_NOW, as it is written at this migration
TURNED_AWAY_AT = "instructions"  # "Start", where assignment at the instructions found no trial


def _answered_full(apps, study) -> bool:
    """design_fill.answered_full at this migration: no main trial, or every main trial with at
    least its target of answers from participants who are not previews."""
    from evalsite.studies.models import DEFAULT_SETTINGS  # a plain dict, not a model

    Trial, Answer = apps.get_model("studies", "Trial"), apps.get_model("studies", "Answer")
    main = list(
        Trial.objects.filter(study=study, is_practice=False, is_catch=False).values_list(
            "id", flat=True
        )
    )
    target = int((study.settings or {}).get("target_answers_per_trial",
                                            DEFAULT_SETTINGS["target_answers_per_trial"]))  # fmt: skip
    counts = dict(
        Answer.objects.filter(trial_id__in=main, participant__is_preview=False)
        .values("trial_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("trial_id", "n")
    )
    return not main or all(counts.get(t, 0) >= target for t in main)


def mark_turned_away_at_start(apps, schema_editor):
    Participant = apps.get_model("studies", "Participant")
    Study = apps.get_model("studies", "Study")
    Assignment = apps.get_model("studies", "Assignment")
    TakenOutTrial = apps.get_model("studies", "TakenOutTrial")
    Answer = apps.get_model("studies", "Answer")
    mine = {"participant_id": OuterRef("pk")}
    at_start = (
        Participant.objects.filter(step="full", consented_at__isnull=False)
        .exclude(state__has_key=FULL_FOR_NOW)
        .exclude(Exists(Assignment.objects.filter(**mine)))
        .exclude(Exists(TakenOutTrial.objects.filter(**mine)))
        .exclude(Exists(Answer.objects.filter(**mine)))
    )
    for study in Study.objects.filter(pk__in=at_start.values("study_id")).order_by("pk"):
        if _answered_full(apps, study):
            continue
        for p in at_start.filter(study=study).only("pk", "state"):
            p.state = {**(p.state or {}), FULL_FOR_NOW: TURNED_AWAY_AT}
            p.save(update_fields=["state"])


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0017_participant_taken_out_trials"),
    ]

    operations = [
        migrations.RunPython(mark_turned_away_at_start, migrations.RunPython.noop),
    ]
