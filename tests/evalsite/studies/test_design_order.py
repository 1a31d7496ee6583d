"""The order of a participant's trials and their A/B positions (`design_order`): seeded
shuffles, no reference piece twice in a row, catch trials spread, repeats after their originals,
positions balanced per instrument; and the same rules in the slots `design.assign` stores.
"""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace as T

import pytest
from django.utils import timezone

from evalsite.stimuli.models import piece_key
from evalsite.studies import design, design_order
from tests.evalsite.studies.conftest import make_study, participant


def own_piece(clip: int) -> tuple:
    """The piece key of a reference clip with no piece name: its own piece."""
    return piece_key(clip, None, "", "")


def trial(id, ref, is_catch=False, repeat_of_id=None, piece=None):
    """A hand-made trial; its reference clip `ref` is of `piece` (else its own piece)."""
    return T(id=id, reference_id=ref, reference_piece=piece or own_piece(ref), is_catch=is_catch,
             repeat_of_id=repeat_of_id, instrument="drums")  # fmt: skip


def items(n_main=12, n_catch=3, refs=4):
    main = [trial(i, i % refs) for i in range(n_main)]
    catch = [trial(100 + j, 50 + j, is_catch=True) for j in range(n_catch)]
    return main + catch


def test_it_shuffles_uniformly_with_fisher_yates():
    # 3 items have 6 orders; 6000 draws give ~1000 each. A chi-square test at 5 df: the 0.999
    # quantile is 20.5 (tables), so a correct shuffle fails this 1 time in 1000 (fixed seed here).
    rng = random.Random(7)
    counts = Counter(tuple(design_order.fisher_yates([1, 2, 3], rng)) for _ in range(6000))
    assert len(counts) == 6
    chi2 = sum((c - 1000) ** 2 / 1000 for c in counts.values())
    assert chi2 < 20.5


def test_it_orders_deterministically_per_seed():
    trials = items()
    a = [t.id for t in design_order.order_trials(trials, seed=3)]
    assert a == [t.id for t in design_order.order_trials(trials, seed=3)]
    assert a != [t.id for t in design_order.order_trials(trials, seed=4)]
    assert sorted(a) == sorted(t.id for t in trials)


@pytest.mark.parametrize("seed", range(20))
def test_it_never_puts_the_same_reference_back_to_back(seed):
    seq = design_order.order_trials(items(), seed)
    assert all(x.reference_id != y.reference_id for x, y in zip(seq, seq[1:]))


def test_it_does_not_start_with_the_reference_of_the_trial_before():
    # The last practice trial comes right before the ordered main and catch trials.
    trials = items(n_main=8, n_catch=2, refs=3)
    before = trial(300, 0)
    for seed in range(100):
        seq = design_order.order_trials(trials, seed, before=before)
        assert seq[0].reference_id != before.reference_id
        assert all(x.reference_id != y.reference_id for x, y in zip(seq, seq[1:]))


def test_it_never_puts_two_clips_of_one_piece_back_to_back():
    # Clips 0 and 1 are two mixes of one song (an upload names one piece for all its files):
    # a trial on one right after a trial on the other would play the song twice in a row.
    song = piece_key(0, 1, "uploads", "song")
    assert song == piece_key(1, 1, "uploads", "song")
    main = [trial(i, i % 6, piece=song if i % 6 < 2 else None) for i in range(12)]
    catch = [trial(100 + j, 50 + j, is_catch=True) for j in range(2)]
    before = trial(300, 1, piece=song)  # the last practice trial, on the song's other clip
    for seed in range(100):
        seq = design_order.order_trials(main + catch, seed, before=before)
        shown = [before, *seq]
        assert all(x.reference_piece != y.reference_piece for x, y in zip(shown, shown[1:]))
        assert design_order.violations(seq, before) == 0


@pytest.mark.parametrize(
    "seed, ids",
    [
        (3, [1, 102, 7, 10, 0, 6, 11, 100, 4, 5, 2, 101, 8, 9, 3, 200]),
        (11, [2, 101, 6, 0, 3, 100, 10, 8, 5, 102, 4, 11, 9, 200, 7, 1]),
    ],
)
def test_it_keeps_a_seeds_order_where_every_piece_has_one_clip(seed, ids):
    # The orders design_order gave at 05b33de, when the rule compared reference clips: where each
    # piece has one clip, comparing pieces must keep them, so existing studies' orders stay.
    trials = [*items(), trial(200, 0, is_catch=True, repeat_of_id=0)]
    assert [t.id for t in design_order.order_trials(trials, seed, before=trial(300, 0))] == ids


@pytest.mark.parametrize("seed", range(10))
def test_it_spreads_catch_trials_one_per_block(seed):
    seq = design_order.order_trials(items(n_main=12, n_catch=3), seed)
    where = [i for i, t in enumerate(seq) if t.is_catch]
    assert [i * 3 // len(seq) for i in where] == [0, 1, 2]  # one in each third


@pytest.mark.parametrize("seed", range(10))
def test_it_places_a_repeat_after_its_original_with_a_gap(seed):
    trials = items(n_main=8, n_catch=0)
    trials.append(trial(200, trials[0].reference_id, is_catch=True, repeat_of_id=0))
    seq = design_order.order_trials(trials, seed)
    pos = {t.id: i for i, t in enumerate(seq)}
    assert pos[200] - pos[0] >= 2


@pytest.mark.parametrize("n", [4, 5, 8])
def test_it_balances_positions_per_instrument(n):
    trials = [T(id=i, instrument="drums" if i % 2 else "guitar", repeat_of_id=None)
              for i in range(2 * n)]  # fmt: skip
    shown = design_order.balance_positions(trials, seed=1)
    for instrument in ("drums", "guitar"):
        sides = Counter(shown[t.id] for t in trials if t.instrument == instrument)
        assert abs(sides["a"] - sides["b"]) <= 1


@pytest.mark.parametrize("seed", range(50))
def test_it_balances_main_trials_apart_from_the_practice_and_checks_mixed_in(seed):
    trials = []
    for instrument in ("drums", "bass"):
        n = len(trials)
        trials += [T(id=n + i, instrument=instrument, is_practice=False, catch_kind="",
                     expected="") for i in range(4)]  # fmt: skip
        trials += [T(id=n + 4, instrument=instrument, is_practice=True, catch_kind="identical",
                     expected="a"),
                   T(id=n + 5, instrument=instrument, is_practice=False, catch_kind="identical",
                     expected="b"),
                   T(id=n + 6, instrument=instrument, is_practice=False, catch_kind="identical",
                     expected="b"),
                   T(id=n + 7, instrument=instrument, is_practice=False, catch_kind="attention",
                     expected="a")]  # fmt: skip
    shown = design_order.balance_positions(trials, seed)
    for instrument in ("drums", "bass"):
        mine = [t for t in trials if t.instrument == instrument]
        main = Counter(shown[t.id] for t in mine if not t.expected)
        assert main == {"a": 2, "b": 2}
        # the right answer of the two identical checks: once in A, once in B
        identical = [t for t in mine if t.catch_kind == "identical" and not t.is_practice]
        assert sorted(shown[t.id] == t.expected for t in identical) == [False, True]
        # key candidate (expected, else canonical a) in A: within one over the instrument
        key_in_a = [shown[t.id] == (t.expected or "a") for t in mine]
        assert abs(2 * sum(key_in_a) - len(key_in_a)) <= 1


def key_in_a_imbalance(trials, shown) -> int:
    """|#A - #B| of where the key candidate (expected, else canonical a) is shown."""
    key_in_a = [shown[t.id] == (t.expected or "a") for t in trials]
    return abs(2 * sum(key_in_a) - len(key_in_a))


@pytest.mark.parametrize("n_main, n_repeats", [(4, 2), (4, 1), (5, 2), (5, 3), (3, 3)])
def test_it_balances_every_slot_of_an_instrument_with_repeats_counted(n_main, n_repeats):
    # An original and its repeat show each side once; the unrepeated main trials must not then
    # lean to one side by two.
    def trial(id, catch_kind="", expected="", repeat_of_id=None, is_practice=False):
        return T(id=id, instrument="drums", is_practice=is_practice, catch_kind=catch_kind,
                 expected=expected, repeat_of_id=repeat_of_id)  # fmt: skip

    trials = [trial(i) for i in range(n_main)]
    trials += [trial(100 + i, "repeat", repeat_of_id=i) for i in range(n_repeats)]
    trials += [trial(200, is_practice=True, catch_kind="attention", expected="b"),
               trial(201, "identical", "a"), trial(202, "attention", "b")]  # fmt: skip
    for seed in range(300):
        shown = design_order.balance_positions(trials, seed)
        assert key_in_a_imbalance(trials, shown) <= 1, seed
        main = [t for t in trials if not t.catch_kind and not t.is_practice]
        assert key_in_a_imbalance(main, shown) <= 1, seed
        assert all(shown[100 + i] != shown[i] for i in range(n_repeats))
        assert shown == design_order.balance_positions(trials, seed)


def test_it_swaps_positions_on_a_repeat():
    trials = [T(id=1, instrument="drums", repeat_of_id=None),
              T(id=2, instrument="drums", repeat_of_id=None),
              T(id=3, instrument="drums", repeat_of_id=1)]  # fmt: skip
    for seed in range(10):
        shown = design_order.balance_positions(trials, seed)
        assert shown[3] != shown[1]


@pytest.mark.django_db
def test_it_never_puts_the_same_reference_back_to_back_after_the_practice(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1_000)
    now = timezone.now()
    for seed in range(20):
        p = participant(study, seed)
        assert design.assign(p, now)
        slots = p.slots.select_related("trial__reference").order_by("index")
        refs = [(s.trial.reference_id, s.trial.reference.piece_key) for s in slots]
        assert all(x[0] != y[0] and x[1] != y[1] for x, y in zip(refs, refs[1:])), (seed, refs)


@pytest.mark.django_db
def test_it_balances_the_stored_positions_of_each_instrument(experimenter, listening_catalogue):
    # Per instrument: 2 practice (one of them here), 3 main, one check of each kind, a repeat.
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1_000)
    now = timezone.now()
    for seed in range(20):
        p = participant(study, seed)
        assert design.assign(p, now)
        slots = list(p.slots.select_related("trial"))
        for instrument in study.instruments:
            mine = [s for s in slots if s.trial.instrument == instrument]
            shown = {s.trial_id: s.displayed_first for s in mine}
            assert key_in_a_imbalance([s.trial for s in mine], shown) <= 1, (seed, instrument)
