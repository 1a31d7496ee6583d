"""The "random" design strategy: trials drawn from a catalogue without a model.

Main trials: a reference mix and two candidate mixes from three different pieces. Catch trials:
"identical" (one candidate is the reference itself), "attention" (from the catalogue's attention
sets: the "same" candidate shares the judged instrument's stem with the reference, the
"different" one shares everything else), and "repeat" (a main trial again, positions swapped by
the design). Practice trials are attention sets (or identical ones), with the expected answer,
with no candidate of an identical or attention catch trial (practice_clips: the feedback names
the answer); what the catalogue could not give is said in Study.design["practice_notes"].
The model strategy (model_design.py) fills the same fields, plus model_choice and model_margin.
"""

from __future__ import annotations

import random
from collections import Counter

from django.db import transaction

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies import practice_clips
from evalsite.studies.design_fill import lock_study
from evalsite.studies.models import Study, Trial


class DesignError(ValueError):
    pass


def _mixes(catalogue: Catalogue) -> list[Clip]:
    clips = catalogue.clips.filter(status=Clip.Status.READY).order_by("id")
    return [c for c in clips if not c.meta]


def _attention_sets(catalogue: Catalogue, instrument: str) -> list[tuple[Clip, Clip, Clip]]:
    """(reference, same, different) triples of the catalogue for one judged instrument."""
    groups: dict[str, dict[str, Clip]] = {}
    for clip in catalogue.clips.filter(status=Clip.Status.READY, meta__kind="attention"):
        if clip.meta.get("condition") == instrument:
            groups.setdefault(clip.meta["group"], {})[clip.meta["role"]] = clip
    sets = []
    for group in sorted(groups):
        g = groups[group]
        if not {"same", "different"} <= set(g):
            continue
        ref = Clip.objects.filter(pk=g["same"].meta["reference"]).first()
        if ref is not None:
            sets.append((ref, g["same"], g["different"]))
    return sets


def _trial(study, instrument, ref, a, b, **fields) -> Trial:
    return Trial.objects.create(
        study=study, instrument=instrument, reference=ref, candidate_a=a, candidate_b=b, **fields
    )


def _catch_attention(study, instrument, triple, rng, **fields) -> Trial:
    ref, same, different = triple
    if rng.random() < 0.5:
        return _trial(study, instrument, ref, same, different, expected="a", **fields)
    return _trial(study, instrument, ref, different, same, expected="b", **fields)


def _catch_identical(study, instrument, ref, other, rng, **fields) -> Trial:
    if rng.random() < 0.5:
        return _trial(study, instrument, ref, ref, other, expected="a", **fields)
    return _trial(study, instrument, ref, other, ref, expected="b", **fields)


def _refuse_trials(study: Study) -> None:
    if study.trials.exists():  # shown on the Trials page, under the draw form
        raise DesignError(
            "Draw adds trials to a study without trials: delete the existing trials first "
            "(Trials page) or add more by form or CSV."
        )


def build_random_trials(
    study: Study,
    catalogue: Catalogue,
    per_instrument: int,
    seed: int = 0,
    practice: int = 2,
    catch_per_kind: int = 2,
) -> list[Trial]:
    """Create the study's trials; replaces none (raises DesignError on a study with trials).
    Under the study's lock: of two draws sent at once, the second waits and is refused. Call it
    in the transaction that records the draw in the study's history."""
    _refuse_trials(study)  # before the catalogue's check: the first thing to fix
    mixes = _mixes(catalogue)
    pieces = {c.piece_key for c in mixes}
    if len(pieces) < 3:
        raise DesignError(
            f"catalogue {catalogue.name!r}: {len(pieces)} pieces with ready mix clips; "
            "expected at least 3"
        )
    rng = random.Random(seed)
    made: list[Trial] = []
    with transaction.atomic():
        lock_study(study.pk)
        _refuse_trials(study)  # again under the lock: a draw sent at once committed meanwhile
        as_ref: Counter = Counter()  # pieces drawn as any instrument's reference
        for instrument in study.instruments:
            main = []
            here: Counter = Counter()  # pieces and clips drawn as this instrument's reference
            for _ in range(per_instrument):
                ref, a, b = _main_trio(mixes, rng, here, as_ref)
                main.append(_trial(study, instrument, ref, a, b))
            made += main
            for original in rng.sample(main, min(catch_per_kind, len(main))):
                made.append(
                    _trial(
                        study, instrument, original.reference, original.candidate_a,
                        original.candidate_b, is_catch=True, catch_kind="repeat",
                        repeat_of=original,
                    )
                )  # fmt: skip
            sets = _attention_sets(catalogue, instrument)
            rng.shuffle(sets)
            for triple in sets[:catch_per_kind]:
                made.append(
                    _catch_attention(study, instrument, triple, rng, is_catch=True,
                                     catch_kind="attention")
                )  # fmt: skip
            for _ in range(catch_per_kind):
                ref, other, _ = _three_pieces(mixes, rng)
                made.append(
                    _catch_identical(study, instrument, ref, other, rng, is_catch=True,
                                     catch_kind="identical")
                )  # fmt: skip
        practised, notes = _practice(study, catalogue, mixes, practice, rng, made)
        made += practised
        study.design = {"strategy": "random", "seed": seed, "by": "random_design",
                        "per_instrument": per_instrument, "catalogue": catalogue.pk,
                        "practice_notes": notes}  # fmt: skip
        study.catalogue = catalogue
        study.save(update_fields=["design", "catalogue", "updated_at"])
    return made


def add_repeats(study: Study, per_instrument: int, seed: int = 0) -> list[Trial]:
    """Repeat catch trials for trials made any way (uploaded, CSV, by hand): per instrument, up to
    `per_instrument` main trials without a repeat yet, chosen by `seed`, each again with the same
    clips (positions are swapped when assigned, `design_order.balance_positions`; a participant
    gets a repeat only with its original). The model's choice and margin are copied. Raises
    DesignError when no main trial is left to repeat."""
    rng = random.Random(seed)
    made: list[Trial] = []
    with transaction.atomic():
        # The study's lock: a second submission waits, then sees these repeats and adds others.
        lock_study(study.pk)
        repeated = set(
            study.trials.filter(catch_kind="repeat").values_list("repeat_of_id", flat=True)
        )
        for instrument in study.instruments:
            main = [t for t in study.trials.filter(instrument=instrument, is_practice=False,
                                                  is_catch=False).order_by("id")
                    if t.pk not in repeated]  # fmt: skip
            for original in rng.sample(main, min(per_instrument, len(main))):
                made.append(
                    _trial(
                        study, instrument, original.reference, original.candidate_a,
                        original.candidate_b, is_catch=True, catch_kind="repeat",
                        repeat_of=original, model_choice=original.model_choice,
                        model_margin=original.model_margin,
                    )
                )  # fmt: skip
    if not made:
        raise DesignError(
            f"study {study.pk}: no main trial without a repeat; expected at least one to repeat"
        )
    return made


def _main_trio(
    mixes: list[Clip], rng: random.Random, here: Counter, as_ref: Counter
) -> tuple[Clip, Clip, Clip]:
    """A main trial's reference and two candidates from three pieces. The reference is a mix of
    the pieces least drawn as this instrument's reference (`here`), then least drawn as any
    reference (`as_ref`), a clip of it least drawn here: each piece once before any twice, as the
    model design's plan_trials. A participant gets one main trial per instrument and reference
    piece (design.select_trials), so each needless recurrence would cost every participant a
    trial; the other clip of a recurring piece varies what is heard, it does not spare a trial.
    Counts the reference in both."""
    key = lambda c: (here[c.piece_key], as_ref[c.piece_key], here[c.pk])  # noqa: E731
    least = min(key(c) for c in mixes)
    ref = rng.choice([c for c in mixes if key(c) == least])
    here[ref.piece_key] += 1
    here[ref.pk] += 1
    as_ref[ref.piece_key] += 1
    others = [c for c in mixes if c.piece_key != ref.piece_key]
    while True:
        a, b = rng.sample(others, 2)
        if a.piece_key != b.piece_key:
            return ref, a, b


def _three_pieces(mixes: list[Clip], rng: random.Random) -> tuple[Clip, Clip, Clip]:
    while True:
        trio = rng.sample(mixes, 3)
        if len({c.piece_key for c in trio}) == 3:
            return trio[0], trio[1], trio[2]


def _practice(study, catalogue, mixes, n, rng, others) -> tuple[list[Trial], list[str]]:
    """n practice trials, and notes for the experimenter on what was made instead. A practice
    trial's feedback names the right candidate, so none has a candidate of an identical or
    attention catch trial among `others` (practice_clips): an attention set, those on clips no
    catch trial, then no trial, uses first; else an identical candidate on two such mixes; else
    fewer practice trials."""
    taken, cost = practice_clips.answered_candidates(others), practice_clips.clip_cost(others)
    spare, notes = {}, []
    for instrument in study.instruments:
        sets = _attention_sets(catalogue, instrument)
        free = [s for s in sets if not taken & {s[1].pk, s[2].pk}]
        rng.shuffle(free)
        free.sort(key=lambda s: sum(cost(c.pk) for c in s))
        spare[instrument] = free
        if sets and not free and n:
            notes.append(
                f"{instrument}: practice trials use an identical candidate, since all "
                f"{len(sets)} attention set(s) for it are used by catch trials (practice feedback "
                "would give them away); add attention sets to the catalogue for practice on it."
            )
    made: list[Trial] = []
    practised: set[int] = set()  # mixes of identical practice trials: the next on others first
    allowed = [c for c in mixes if c.pk not in taken]

    def key(pk: int) -> tuple[int, bool]:
        return cost(pk), pk in practised

    for i in range(n):
        instrument = study.instruments[i % len(study.instruments)]
        if free := spare[instrument]:
            triple = free[(i // len(study.instruments)) % len(free)]
            made.append(_catch_attention(study, instrument, triple, rng, is_practice=True))
        elif pair := _spare_mixes(allowed, key, rng):
            made.append(_catch_identical(study, instrument, *pair, rng, is_practice=True))
            practised |= {c.pk for c in pair}
    if len(made) < n:
        notes.append(
            f"{len(made)} of {n} practice trials: the catalogue has no two mixes of different "
            "pieces that are not candidates of identical or attention catch trials; add clips or "
            "attention sets for practice."
        )
    return made, notes


def _spare_mixes(allowed, cost, rng) -> tuple[Clip, Clip] | None:
    """Two mixes of different pieces, of the lowest `cost` (a key) that has two."""
    for most in sorted({cost(c.pk) for c in allowed}):
        pool = [c for c in allowed if cost(c.pk) <= most]
        if len({c.piece_key for c in pool}) >= 2:
            ref = rng.choice(pool)
            other = rng.choice([c for c in pool if c.piece_key != ref.piece_key])
            return ref, other
    return None
