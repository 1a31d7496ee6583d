"""Which clips a practice trial may use without giving a later trial away.

A practice trial's feedback names the right candidate (flow_trials.practice_feedback). Had a
practice trial a candidate of an identical or attention catch trial, that catch trial could be
answered by remembering the clip ("it was the right one in practice"), testing memory instead of
listening; had it the clip set of a main trial (or of a repeat of one), the participant would be
told an answer to a trial whose answer is theirs to give. So the designs (random_design._practice,
also used by model_design) never make such a practice trial, and prefer clips no catch trial
uses, then clips no trial uses; trials added by form or CSV are checked here and the experimenter
is warned (`warnings`). This rule is the project's own: the paper does not say how practice
trials are chosen.
"""

from __future__ import annotations

from collections.abc import Iterable

from evalsite.studies.models import Study, Trial

ANSWERED_KINDS = ("identical", "attention")  # catch trials with a right answer to give away


def clip_ids(t: Trial) -> frozenset[int]:
    return frozenset((t.reference_id, t.candidate_a_id, t.candidate_b_id))


def _answered(t: Trial) -> bool:
    return t.is_catch and t.catch_kind in ANSWERED_KINDS


def answered_candidates(trials: Iterable[Trial]) -> set[int]:
    """Candidates of the catch trials with a right answer: never a practice trial's candidate."""
    return {c for t in trials if _answered(t) for c in (t.candidate_a_id, t.candidate_b_id)}


def clip_cost(trials: Iterable[Trial]):
    """A key for a clip id, lowest first: used by no catch trial, then by no trial at all."""
    trials = list(trials)
    caught = {c for t in trials if t.is_catch for c in clip_ids(t)}
    shown = {c for t in trials for c in clip_ids(t)}
    return lambda clip_id: (clip_id in caught) + (clip_id in shown)


def warnings(study: Study, involving: set[int] | None = None) -> list[str]:
    """Each practice trial of the study that could give another trial away, said plainly; only
    the pairs with a trial of `involving` (ids) when it is given."""
    trials = list(study.trials.order_by("id"))
    others = [t for t in trials if not t.is_practice]
    lines = []
    for p in (t for t in trials if t.is_practice):
        candidates = {p.candidate_a_id, p.candidate_b_id}
        for t in others:
            if involving is not None and not {p.pk, t.pk} & involving:
                continue
            kind = f"{t.catch_kind} catch" if t.is_catch else "main"
            if clip_ids(p) == clip_ids(t):
                lines.append(
                    f"Practice trial {p.pk} has the clips of {kind} trial {t.pk}: its feedback "
                    "names a right answer for that trial; use other clips for practice."
                )
            elif _answered(t) and candidates & {t.candidate_a_id, t.candidate_b_id}:
                lines.append(
                    f"Practice trial {p.pk} shares a candidate with {kind} trial {t.pk}: its "
                    "feedback could give that check's answer away; use other clips for practice."
                )
    return lines


def page_lines(study: Study) -> list[str]:
    """What the design could not give practice (its notes), then `warnings`: for the trials and
    study pages."""
    return [*study.design.get("practice_notes", []), *warnings(study)]
