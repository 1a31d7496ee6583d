"""Live progress of a study from a few aggregate queries (no statistics: see the reports app).

Participants by outcome, answers per instrument and per main trial against the target, and
catch-trial pass rates. Repeats count as passed when the same clip was chosen as on the original.
A researcher's previews of a draft (`Participant.is_preview`) and their answers are left out of
every figure: they are counted apart (`n_previews`), and deleted when the study leaves draft.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from evalsite.studies import design
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial

IN_PROGRESS = "in progress"
COUNTED = Q(participant__is_preview=False)  # an answer from a participant, not a preview


def participant_counts(study: Study, now: datetime | None = None) -> dict[str, int]:
    """started (every entry), finished, screened_out, in_progress, other (declined, refused...),
    inactive (`inactive`) and early_answering: those who sent an answer sooner than its clips can
    be played (a script or a bot; the answer was refused). A draft's previews are in none of
    them."""
    now = now or timezone.now()
    final = {str(s) for s in Participant.FINAL_STEPS}
    rows = (
        Participant.objects.filter(study=study, is_preview=False)
        .values("step")
        .annotate(n=Count("id"), early=Count("id", filter=Q(early_answers__gt=0)))
        .order_by()
    )
    by_step = {r["step"]: r["n"] for r in rows}
    finished = by_step.get(Participant.Step.DONE, 0)
    screened = by_step.get(Participant.Step.SCREENED_OUT, 0)
    in_progress = sum(n for step, n in by_step.items() if step not in final)
    started = sum(by_step.values())
    return {
        "started": started,
        "finished": finished,
        "screened_out": screened,
        "in_progress": in_progress,
        "inactive": inactive(study, now),
        "other": started - finished - screened - in_progress,
        "early_answering": sum(r["early"] for r in rows),
    }


def inactive(study: Study, now: datetime) -> int:
    """Participants in progress whose unanswered trials are back in the pool (they can still
    come back and resume): those given trials with none of them unanswered and still reserved,
    judged by the slots' own reservations as the fill that assignment counts
    (`design_fill.fill_counts`), not by the study's reservation timeout, which may have changed
    since they were given; and those not given trials yet (before the instructions) not seen for
    longer than the timeout."""
    idle_since = now - timedelta(seconds=int(study.setting("reservation_timeout_s")))
    slots = Assignment.objects.filter(participant_id=OuterRef("pk"))
    answer = Answer.objects.filter(
        participant_id=OuterRef("participant_id"), trial_id=OuterRef("trial_id")
    )
    reserved = slots.filter(reserved_until__gt=now).exclude(Exists(answer))
    idle = Q(Exists(slots), ~Exists(reserved)) | Q(~Exists(slots), last_seen_at__lt=idle_since)
    under_way = Participant.objects.filter(study=study, is_preview=False).exclude(
        step__in=Participant.FINAL_STEPS
    )
    return under_way.filter(idle).count()


def answers_per_instrument(study: Study) -> list[dict]:
    rows = (
        Answer.objects.filter(COUNTED, trial__study=study, trial__is_practice=False)
        .values("trial__instrument")
        .annotate(
            main=Count("id", filter=Q(trial__is_catch=False)),
            catch=Count("id", filter=Q(trial__is_catch=True)),
        )
        .order_by("trial__instrument")
    )
    return [
        {"instrument": r["trial__instrument"], "main": r["main"], "catch": r["catch"]} for r in rows
    ]


@dataclass(frozen=True)
class TrialFill:
    """A main trial's answers against the study's target (a row of the progress page), and its
    slots reserved by participants under way that are not answered yet (`n_reserved`)."""

    pk: int
    instrument: str
    n_answers: int
    target: int
    fill: float  # n_answers / target, at most 1
    n_reserved: int = 0


def answers_per_trial(study: Study, now: datetime | None = None) -> list[TrialFill]:
    """Main trials with `n_answers` and `n_reserved`, least-answered first. Reserved: as the
    fill that assignment counts (`design_fill.fill_counts`), unanswered slots whose reservation
    has not run out."""
    now = now or timezone.now()
    target = study.setting("target_answers_per_trial")
    trials = (
        Trial.objects.filter(study=study, is_practice=False, is_catch=False)
        .annotate(n_answers=Count("answers", filter=Q(answers__participant__is_preview=False)))
        .order_by("n_answers", "id")
    )
    answer = Answer.objects.filter(
        participant_id=OuterRef("participant_id"), trial_id=OuterRef("trial_id")
    )
    live = (
        Assignment.objects.filter(trial__study=study, reserved_until__gt=now)
        .filter(participant__is_preview=False)
        .exclude(Exists(answer))
        .values("trial_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    reserved = {row["trial_id"]: row["n"] for row in live}
    return [
        TrialFill(
            t.pk,
            t.instrument,
            t.n_answers,
            target,
            min(t.n_answers / target, 1.0) if target else 1.0,
            reserved.get(t.pk, 0),
        )
        for t in trials
    ]


def capacity(study: Study, per_trial: list[TrialFill]) -> dict[str, int]:
    """How many more participants the study can take (docs/experimenter.md, "Progress"):
    `open_slots`, the answers still missing that no live reservation covers (per main trial,
    target - answers - reserved, at least 0, summed); `per_participant`, the main trials one
    participant is given (trials per participant, or all, at most what the one-per-reference
    rule lets one participant have: `design.most_main_total`); `places`, open_slots divided by
    per_participant, rounded up, and at least the most any one trial misses, since one
    participant gives a trial one answer at most. Exact when assignment can give each newcomer
    the trials missing the most (least-filled first, `design.select_trials`); a lower bound when
    the one-per-reference rule keeps it from that. Participants under way come on top; a slot
    they give up goes back to open_slots."""
    missing = [max(0, t.target - t.n_answers - t.n_reserved) for t in per_trial]
    open_slots = sum(missing)
    asked = int(study.setting("trials_per_participant") or 0) or len(per_trial)
    per_participant = min(asked, design.most_main_total(study)) if per_trial else 0
    places = max(-(-open_slots // per_participant), *missing) if per_participant else 0
    return {"open_slots": open_slots, "per_participant": per_participant, "places": places}


def catch_pass_rates(study: Study) -> list[dict]:
    """Per catch kind: answers, passed, rate (None without answers)."""
    keyed = (
        Answer.objects.filter(
            COUNTED, trial__study=study, trial__is_catch=True, trial__is_practice=False
        )
        .exclude(trial__expected="")
        .values("trial__catch_kind")
        .annotate(n=Count("id"), passed=Count("id", filter=Q(chosen=F("trial__expected"))))
    )
    rates = {r["trial__catch_kind"]: (r["n"], r["passed"]) for r in keyed}
    rates["repeat"] = _repeat_consistency(study)
    out = []
    for kind in ("identical", "attention", "repeat"):
        n, passed = rates.get(kind, (0, 0))
        out.append({"kind": kind, "n": n, "passed": passed, "rate": passed / n if n else None})
    return out


def _repeat_consistency(study: Study) -> tuple[int, int]:
    """(repeats whose original is answered, of which the same clip was chosen)."""
    rows = list(Answer.objects.filter(
        COUNTED, trial__study=study, trial__catch_kind="repeat", trial__repeat_of__isnull=False,
        trial__is_practice=False,
    ).values_list("participant_id", "trial__repeat_of_id", "chosen", "trial__candidate_a_id",
                  "trial__candidate_b_id"))  # fmt: skip
    if not rows:
        return 0, 0
    originals: dict[tuple[int, int | None], int] = {
        (p, t): (a if c == "a" else b)
        for p, t, c, a, b in Answer.objects.filter(
            participant_id__in={r[0] for r in rows}, trial_id__in={r[1] for r in rows}
        ).values_list(
            "participant_id", "trial_id", "chosen", "trial__candidate_a_id", "trial__candidate_b_id"
        )  # fmt: skip
    }
    n = passed = 0
    for participant, original, chosen, a, b in rows:
        first = originals.get((participant, original))
        if first is not None:
            n += 1
            passed += first == (a if chosen == "a" else b)
    return n, passed


def summary(study: Study) -> dict:
    return {
        "participants": participant_counts(study),
        "n_previews": Participant.objects.filter(study=study, is_preview=True).count(),
        "per_instrument": answers_per_instrument(study),
        "per_trial": (per_trial := answers_per_trial(study)),
        "capacity": capacity(study, per_trial),
        "catch": catch_pass_rates(study),
        "n_answers": Answer.objects.filter(
            COUNTED, trial__study=study, trial__is_practice=False
        ).count(),
    }
