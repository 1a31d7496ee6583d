"""Deleting all of a draft study's trials (the Trials page's "Delete all trials"), so that a
researcher can draw or design them again, or take an instrument off the study's list.

Only a draft's: once a study was opened, participants may have been given its trials, and the
export must keep what they were given. A draft's participants are researchers' previews, whose
slots and answers point at the trials: they are deleted with them, with the fill and reports
counted from them, as when the draft opens (`experimenter.remove_previews`). Answers of anyone
else keep the trials. The clips stay in the catalogue. Recorded in the study's history.
"""

from __future__ import annotations

from django.db import transaction

from evalsite.studies import history
from evalsite.studies.experimenter import remove_previews
from evalsite.studies.models import Answer, Study, StudyFold


class TrialsKept(Exception):
    """The study's trials may not be deleted; the message says why, for the researcher."""


def refusal(study: Study) -> str:
    """Why the study's trials may not be deleted now ("" when they may)."""
    if study.status == Study.Status.CLOSED:  # a draft may be closed without being opened
        return (
            "Trials can be deleted only while the study is a draft; this one is closed, and a "
            "closed study is kept as it is."
        )
    if study.status != Study.Status.DRAFT:
        return (
            f"Trials can be deleted only while the study is a draft; this one is {study.status}, "
            "so participants may have been given its trials."
        )
    answers = Answer.objects.filter(trial__study=study, participant__is_preview=False).count()
    if answers:
        return (
            f"The study has {answers} answers from participants (not previews); trials with "
            "answers are kept."
        )
    return ""


def delete_trials(study: Study, user, expected: int) -> dict:
    """Delete every trial of the study, with its previews; the history entry's changes (e.g.
    {"deleted": 8, "preview participants": 1}). expected: how many trials the researcher was
    shown (nothing is deleted when the study has another number by now: a colleague or a design
    job added some). Under the study's lock, taken before the previews' and the report's as the
    status change takes them; raises TrialsKept."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if why := refusal(locked):
            raise TrialsKept(why)
        n = locked.trials.count()
        if n != expected:
            raise TrialsKept(
                f"The study now has {n} trials, not the {expected} the confirmation showed; "
                "nothing was deleted. Look at them and delete again if you still mean it."
            )
        what: dict = {"deleted": n}
        if removed := remove_previews(locked):
            what["preview participants"] = removed
        locked.trials.all().delete()  # repeats with their originals
        StudyFold.objects.filter(study=locked).delete()  # counts per trial id: made again
        locked.report_snapshots.all().delete()
        locked.design = {}  # it described the trials deleted
        locked.save(update_fields=["design", "updated_at"])
        history.record(locked, user, history.Kind.TRIALS, what)
    return what
