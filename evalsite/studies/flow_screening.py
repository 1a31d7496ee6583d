"""The participant's calibration and screening, without HTTP: which kinds it takes (fixed as it
begins), the trial its page shows and which draw of it, a counted view, a stored answer, and the
move on to the instructions or to `screened_out` once the answers decide. The sounds and answer
keys come from `screening`, from the participant's seed.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Q

from evalsite.studies import screening
from evalsite.studies.completion_codes import new_completion_code
from evalsite.studies.flow import advance
from evalsite.studies.models import Participant, Study

Step = Participant.Step


# A participant at one of these has set their volume at the study's loudness target (the
# calibration page plays its noise at it) and hears every clip after at it.
CALIBRATED_STEPS = (
    Step.CALIBRATION, Step.SCREENING, Step.INSTRUCTIONS, Step.PRACTICE, Step.TRIALS, Step.DONE,
    Step.SCREENED_OUT,
)  # fmt: skip


def calibrated_participants(study: Study) -> int:
    """How many participants of `study` (previews aside) set their volume at its current loudness
    target: those at the calibration or past it, and those who left with answers kept (heard at
    it). A new target would serve their trials at another level than they set their volume for."""
    calibrated = Q(step__in=CALIBRATED_STEPS) | Q(answers__isnull=False)
    return study.participants.filter(calibrated, is_preview=False).distinct().count()


def loudness_target_refusal(study: Study, value) -> str:
    """Why `study`'s loudness target may not become `value` ("" when it may): participants have
    set their volume at the current one (`calibrated_participants`), and the rest of their trials
    (a trial's clips loaded after the save) would play at another level, while the export records
    one target. The settings form (StudyForm) and the Django admin's raw settings refuse it."""
    current = float(study.setting("loudness_target_lufs"))
    if not study.pk or value == current:
        return ""
    n = calibrated_participants(study)
    if not n:
        return ""
    return (
        f"{n} participant{' has' if n == 1 else 's have'} set their volume at "
        f"{current:.1f} LUFS (the volume calibration): a new target would play the rest "
        "of their trials at another level than they set their volume for, and the "
        f"export could not tell which answers were heard at which. Keep {current:.1f}; "
        "for another target, make a new study with the new target (and close this one "
        "when you stop recruiting to it)."
    )


def reach_calibration(p: Participant, questionnaire: dict) -> bool:
    """Move p from the questionnaire to the calibration, where it sets its volume at the study's
    loudness target. On PostgreSQL the move first takes the study's row `FOR KEY SHARE`, which a
    settings Save holding the row `FOR UPDATE` (its check of the target and its write) makes it
    wait for: a move that reaches the row first is counted by the Save's check, and one that comes
    after that check commits after the Save, so its calibration plays the target saved."""
    with transaction.atomic():
        if connection.vendor == "postgresql":  # SQLite has no row locks
            table = Study._meta.db_table
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR KEY SHARE", [p.study_id])
        return advance(p, Step.QUESTIONNAIRE, Step.CALIBRATION, questionnaire=questionnaire)


def leave_calibration(p: Participant) -> None:
    """Go on to the screening, whose kinds are fixed now for this participant (in
    `p.screening["kinds"]`: a study edited meanwhile changes the screening of those who have not
    begun it), or to the instructions when the study has none."""
    kinds = screening_kinds(p.study)
    if kinds:
        advance(p, Step.CALIBRATION, Step.SCREENING, screening={**p.screening, "kinds": kinds})
    else:
        advance(p, Step.CALIBRATION, Step.INSTRUCTIONS)


def screening_kinds(study: Study) -> list[str]:
    """The screening a participant reaching it now takes (the study's current settings)."""
    kinds = ["antiphase"] if study.setting("screening") else []
    return kinds + (["huggins"] if study.setting("screening") and study.setting("huggins") else [])


def _kinds_of(given: dict, study: Study) -> list[str]:
    """The kinds of a participant's screening (its `screening`, `given`): those fixed when it
    began. One that began before they were kept has the kinds it answered, then the study's
    current ones (fixed at its next screening page, `view_screening`)."""
    if "kinds" in given:
        return given["kinds"]
    answered = [a["kind"] for a in given.get("answers", [])]
    return list(dict.fromkeys(answered + screening_kinds(study)))


def screening_position(p: Participant) -> tuple[str, int] | None:
    """(kind, number) of the screening trial to show next, None when all are answered."""
    done = len(p.screening.get("answers", []))
    sequence = screening.plan(_kinds_of(p.screening, p.study), screening.config())
    return sequence[done] if done < len(sequence) else None


def screening_draw(p: Participant) -> int:
    """Which draw of the current screening trial its page shows (screening.py: each view of the
    page draws the trial afresh; 0 before and at the first view)."""
    n = len(p.screening.get("answers", []))
    views = p.screening.get("views", [])
    return max(views[n] - 1, 0) if n < len(views) else 0


def screening_key(p: Participant) -> dict:
    """The answer key of the screening trial the participant's page shows now."""
    shown = screening_position(p)
    if shown is None:
        raise ValueError(f"participant {p.pk}: every screening trial answered; none shown")
    kind, i = shown
    return screening.answer_key(p.seed, kind, i, screening_draw(p))


def view_screening(p: Participant) -> int:
    """Count a view of the current screening page (each draws its trial afresh) and return the
    draw it shows; `p.screening` is updated in place (with its kinds, where not fixed yet)."""
    with transaction.atomic():
        locked = Participant.objects.select_for_update().only("screening").get(pk=p.pk)
        n = len(locked.screening.get("answers", []))
        views = list(locked.screening.get("views", []))
        views += [0] * (n + 1 - len(views))  # a trial answered unseen (a scripted POST) counts 0
        views[n] += 1
        kinds = _kinds_of(locked.screening, p.study)
        locked.screening = {**locked.screening, "views": views, "kinds": kinds}
        locked.save(update_fields=["screening"])
    p.screening = locked.screening
    return views[n] - 1


def record_screening(p: Participant, n: int, draw: int, choice: int, rt_ms: int | None) -> None:
    """Store a screening answer (only to the current trial number n, as drawn for the page
    shown last) and move on when the answers decide (`end_screening`)."""
    with transaction.atomic():
        p = Participant.objects.select_for_update().get(pk=p.pk)
        answers = p.screening.get("answers", [])
        if p.step != Step.SCREENING or n != len(answers):
            return  # stale or replayed POST
        position = screening_position(p)
        if position is not None and draw == screening_draw(p):  # else drawn before a reload
            kind, i = position  # (another tab): not what was heard
            key = screening.answer_key(p.seed, kind, i, draw)
            answers.append({"kind": kind, "i": i, "draw": draw, "choice": choice, "rt_ms": rt_ms,
                            "correct": choice == key["target"]})  # fmt: skip
            p.screening = {**p.screening, "answers": answers}
            p.save(update_fields=["screening"])
    end_screening(p)


def end_screening(p: Participant) -> bool:
    """Move p on from the screening once its answers decide: to `screened_out` as soon as a kind
    answered to its end scored below the pass mark, to the instructions once nothing is left to
    answer (passed; `screening_passed` stays unknown when nothing was answered: a participant
    that began the screening before its kinds were kept, whose study turned it off meanwhile).
    False when the screening goes on. Also for a page loaded between the last answer's commit
    and this (another tab), which finds nothing left to show."""
    cfg = screening.config()
    answers = p.screening.get("answers", [])
    answered = list(dict.fromkeys(a["kind"] for a in answers))
    finished = [k for k in answered if sum(a["kind"] == k for a in answers) >= cfg.trials]
    if any(screening.score(answers, kind) < cfg.pass_correct for kind in finished):
        code = p.study.setting("screen_out_code") or f"SO-{new_completion_code()}"
        advance(p, Step.SCREENING, Step.SCREENED_OUT, screening_passed=False, screen_out_code=code)
        return True
    if screening_position(p) is None:
        advance(p, Step.SCREENING, Step.INSTRUCTIONS, screening_passed=True if answers else None)
        return True
    return False
