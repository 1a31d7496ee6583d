"""Which clips a practice trial may use without giving a later trial away.

A practice trial's feedback names the right candidate (flow_trials.practice_feedback). Had a
practice trial a candidate of an identical or attention catch trial, that catch trial could be
answered by remembering the clip ("it was the right one in practice"), testing memory instead of
listening; had it the clip set of a main trial (or of a repeat of one), the participant would be
told an answer to a trial whose answer is theirs to give. So the designs (random_design._practice,
also used by model_design) never make such a practice trial, and prefer clips no catch trial
uses, then clips no trial uses; trials added by form or CSV are checked here and the experimenter
is warned (`warnings`). Each participant gets only the study's first `practice_trials` (the
setting) practice trials by id (design.assign): the others give nothing away, and
`setting_lines` says which they are. This rule is the project's own: the paper does not say
how practice trials are chosen.
"""

from __future__ import annotations

from collections.abc import Iterable

from evalsite.studies.models import MAX_PRACTICE_TRIALS, Study, Trial

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


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in ids)


def shown_and_not(study: Study) -> tuple[list[int], list[int]]:
    """The ids of the practice trials each participant gets, and of those no one gets: the first
    `practice_trials` (the setting) by id are shown, as design.assign gives them."""
    n = int(study.setting("practice_trials") or 0)
    ids = list(study.trials.filter(is_practice=True).order_by("id").values_list("id", flat=True))
    return ids[:n], ids[n:]


def setting_lines(study: Study) -> list[str]:
    """Where the study's practice trials and its Practice trials setting differ, which ones
    participants get, said plainly; nothing for a study without trials yet."""
    n = int(study.setting("practice_trials") or 0)
    shown, unshown = shown_and_not(study)
    said = f"The Practice trials setting is {n}"
    if unshown:
        have = len(shown) + len(unshown)
        first = f"the first {n} practice trials" if n > 1 else "the first practice trial"
        get = f"{first} by id ({_ids(shown)})" if n else "no practice"
        which = "practice trials {} are" if len(unshown) > 1 else "practice trial {} is"
        how = (
            f"To show them, raise Practice trials to {have} in Settings"
            if have <= MAX_PRACTICE_TRIALS
            else f"A study shows at most {MAX_PRACTICE_TRIALS} practice trials"
        )
        return [
            f"{said}: participants get {get}; {which.format(_ids(unshown))} never shown. "
            f"{how}; a draft's trials can be deleted and added again without them."
        ]
    if len(shown) < n and study.trials.exists():
        get = f"only those {len(shown)}" if shown else "no practice"
        return [
            f"{said}, but the study has {len(shown)} practice trial(s): participants get {get}."
        ]
    return []


def warnings(study: Study, involving: set[int] | None = None) -> list[str]:
    """Each practice trial participants get (`shown_and_not`) that could give another trial
    away, said plainly; only the pairs with a trial of `involving` (ids) when it is given. One
    no one gets gives nothing away (`setting_lines` names it)."""
    trials = list(study.trials.order_by("id"))
    others = [t for t in trials if not t.is_practice]
    shown = set(shown_and_not(study)[0])
    lines = []
    for p in (t for t in trials if t.pk in shown):
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
    """What the design could not give practice (its notes), which practice trials participants
    get where the setting differs (`setting_lines`), then `warnings`: for the trials and study
    pages while the study can change (none once it is closed)."""
    if study.status == Study.Status.CLOSED:
        return []
    return [*study.design.get("practice_notes", []), *setting_lines(study), *warnings(study)]
