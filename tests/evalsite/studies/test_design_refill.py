"""A returning participant whose trials others took to their target while it was away gets trials
still below their target in their place (`design_refill`), as many as were taken out, under
the entry's rules; where none is left, it is treated as before
(test_design_return)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import combinations
from types import SimpleNamespace as T

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evalsite.studies import design_refill, design_return
from evalsite.studies.design_order import violations
from evalsite.studies.models import (
    Answer,
    Assignment,
    Participant,
    Study,
    TakenOutTrial,
    Trial,
)
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.form_pages import settings_page_values
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    finish,
    to_step,
    url,
)
from tests.evalsite.studies.return_steps import (
    answer_elsewhere,
    lapse,
    to_a_main_trial,
    to_main_trials,
)


def _mains(p: Participant) -> list[Trial]:
    slots = p.slots.order_by("index").select_related("trial")
    return [s.trial for s in slots if not (s.trial.is_practice or s.trial.is_catch)]


def _with_a_repeat_of_every_main_trial(study: Study) -> None:
    """The study's repeat checks cover every main trial, so a refilled trial has one to take."""
    repeated = set(study.trials.values_list("repeat_of_id", flat=True))
    for t in study.trials.filter(is_practice=False, is_catch=False).exclude(pk__in=repeated):
        Trial.objects.create(study=study, instrument=t.instrument, reference=t.reference,
                             candidate_a=t.candidate_b, candidate_b=t.candidate_a,
                             is_catch=True, catch_kind="repeat", repeat_of=t)  # fmt: skip


def _main_answers(study: Study) -> Counter:
    rows = Answer.objects.filter(trial__study=study, trial__is_practice=False,
                                 trial__is_catch=False)  # fmt: skip
    return Counter(rows.values_list("trial_id", flat=True))


@pytest.mark.django_db
def test_it_refills_a_returning_participants_session_with_trials_still_below_target(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1,
                       trials_per_participant=2)  # fmt: skip
    _with_a_repeat_of_every_main_trial(study)
    client = Client()
    p = to_step(client, enter(client, study, pid="away"), "practice")
    taken = _mains(p)
    assert len(taken) == 2
    lapse(p)
    answer_elsewhere(study, taken)  # both its main trials reached their target meanwhile
    now = timezone.now()
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 302  # read again
    refilled = _mains(p)
    assert len(refilled) == 2 and not set(refilled) & set(taken)
    assert all(Answer.objects.filter(trial=t).count() < 1 for t in refilled)
    slots = list(p.slots.order_by("index").select_related("trial"))
    assert [s.index for s in slots] == list(range(len(slots)))
    assert all(s.reserved_until > now for s in slots)
    (repeat,) = [s for s in slots if s.trial.catch_kind == "repeat"]  # the one taken out's
    assert repeat.trial.repeat_of in refilled
    original = next(s for s in slots if s.trial_id == repeat.trial.repeat_of_id)
    assert repeat.displayed_first != original.displayed_first  # shown the other way round
    p = finish(client, p)
    assert p.step == "done" and p.completion_code
    assert max(_main_answers(study).values()) == 1  # no trial over its target


@pytest.mark.django_db
def test_it_refills_as_many_main_trials_as_were_taken_out_after_those_it_answered(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1,
                       trials_per_participant=3,
                       catch={"identical": 0, "attention": 0, "repeat": 0})  # fmt: skip
    client = Client()
    p = to_main_trials(client, to_step(client, enter(client, study, pid="away"), "practice"))
    answered, _ = answer_current(client, p)
    lapse(p)
    rest = [t for t in _mains(p) if t.pk != answered.trial_id]
    answer_elsewhere(study, rest)
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    mains = _mains(p)
    assert len(mains) == 3 and mains[0].pk == answered.trial_id
    assert not set(mains) & set(rest)
    assert Assignment.objects.get(participant=p, trial_id=answered.trial_id).index == 2  # kept


@pytest.mark.django_db
def test_it_balances_the_positions_of_an_instruments_main_trials_with_those_it_kept(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, per_instrument=3,
                       target_answers_per_trial=1, trials_per_participant=4,
                       catch={"identical": 0, "attention": 0, "repeat": 0})  # fmt: skip
    client = Client()
    p = to_step(client, enter(client, study, pid="away"), "practice")
    lapse(p)
    taken = _mains(p)[:2]
    kept = [
        s for s in p.slots.select_related("trial") if _is_main(s.trial) and s.trial not in taken
    ]
    answer_elsewhere(study, taken)
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    slots = [s for s in p.slots.select_related("trial") if not s.trial.is_practice]
    assert len(slots) == 4
    new = [s for s in slots if s.pk not in {k.pk for k in kept}]
    for instrument in {s.trial.instrument for s in new}:
        # The refill evens out what it can: a return does not move the sides of the slots it
        # keeps (taking one out can leave two of an instrument on one side).
        before = _imbalance([s for s in kept if s.trial.instrument == instrument])
        added = sum(1 for s in new if s.trial.instrument == instrument)
        after = _imbalance([s for s in slots if s.trial.instrument == instrument])
        assert after <= max(1, before - added), (instrument, before, added, after)


def _is_main(trial: Trial) -> bool:
    return not (trial.is_practice or trial.is_catch)


def _imbalance(slots: list[Assignment]) -> int:
    sides = Counter(s.displayed_first for s in slots)  # a main trial's key is canonical "a"
    return abs(sides["a"] - sides["b"])


@pytest.mark.django_db
def test_it_still_tells_a_returning_participant_the_study_is_full_when_no_trial_is_left(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1,
                       trials_per_participant=2)  # fmt: skip
    client = Client()
    p = to_step(client, enter(client, study, pid="away"), "practice")
    lapse(p)
    answer_elsewhere(study, list(study.trials.filter(is_practice=False, is_catch=False)))
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    p.refresh_from_db()
    assert p.step == "full" and not p.slots.exists()


def _trial(id, instrument, reference, candidates, model=True, catch_kind="", repeat_of=None):
    return T(id=id, instrument=instrument, reference_piece=reference, is_practice=False,
             is_catch=bool(catch_kind), catch_kind=catch_kind, repeat_of_id=repeat_of,
             model_designed=model, candidate_pieces=frozenset(candidates), expected="")  # fmt: skip


def test_it_refills_with_no_trial_the_entrys_rules_keep_from_what_the_participant_held():
    held = [_trial(1, "drums", "P0", {"P1", "P2"})]  # taken out: its page may have been heard
    study = [
        *held,
        _trial(2, "drums", "P0", {"P3", "P4"}),  # its instrument on its reference piece
        _trial(3, "bass", "P0", {"P1", "P5"}),  # shares a model-chosen candidate piece there
        _trial(4, "bass", "P0", {"P6", "P7"}),
        _trial(5, "drums", "P1", {"P2", "P3"}),
        _trial(6, "bass", "P2", {"P0", "P1"}, catch_kind="repeat", repeat_of=9),
    ]
    counts = Counter({2: 0, 3: 0, 4: 0, 5: 0})
    chosen = design_refill.choose(study, held, counts=counts, target=1, mains=4, repeats=1,
                                  seed=7)  # fmt: skip
    assert {t.id for t in chosen} == {4, 5}


def test_it_refills_trials_below_target_only_and_no_more_than_were_taken_out():
    held = [_trial(1, "drums", "P0", {"P1", "P2"}), _trial(2, "bass", "P3", {"P4", "P5"})]
    study = [
        *held,
        _trial(3, "drums", "P6", {"P7", "P8"}),
        _trial(4, "bass", "P7", {"P8", "P9"}),
        _trial(5, "drums", "P8", {"P6", "P9"}),
        _trial(6, "drums", "P8", {"P6", "P9"}, catch_kind="repeat", repeat_of=5),
    ]
    counts = Counter({1: 2, 2: 0, 3: 2, 4: 1, 5: 0, 6: 0})  # 3 at its target of 2
    # 1 was taken out (with a repeat check of it), 2 is kept
    chosen = design_refill.choose(study, held, counts=counts, target=2, mains=1, repeats=1,
                                  seed=7)  # fmt: skip
    assert [t.id for t in chosen] == [5, 6]  # the least filled below target, and its repeat


def test_it_places_refilled_trials_after_the_last_slot_and_balances_their_positions():
    last, kept = _trial(1, "drums", "P8", {"P1"}), _trial(2, "drums", "P5", {"P1"})
    new = [_trial(3, "drums", "P8", {"P2"}), _trial(4, "drums", "P6", {"P2"}),
           _trial(6, "drums", "P4", {"P2"}),
           _trial(5, "drums", "P7", {"P2"}, catch_kind="repeat", repeat_of=3)]  # fmt: skip
    for seed in range(20):
        placed = design_refill.place(new, kept=[(kept, "a")], last=last, seed=seed)
        order = [t for t, _ in placed]
        assert sorted(t.id for t in order) == [3, 4, 5, 6]
        assert violations(order, before=last) == 0, (seed, [t.id for t in order])
        sides = dict((t.id, side) for t, side in placed)
        assert sides[5] != sides[3]  # a repeat shows its original's candidates swapped
        mains = ["a", sides[3], sides[4], sides[6]]  # the instrument's main trials, kept one too
        assert mains.count("a") == 2, (seed, sides)


def test_it_never_refills_two_trials_that_break_the_shared_candidate_rule_between_them():
    study = [_trial(i, instrument, "P0", {"P1", f"P{i + 1}"})
             for i, instrument in enumerate(["drums", "bass", "guitar"], start=2)]  # fmt: skip
    held = [_trial(1, "piano", "P9", {"P8", "P7"})]
    chosen = design_refill.choose([*held, *study], held, counts=Counter(), target=1, mains=3,
                                  repeats=0, seed=3)  # fmt: skip
    assert len(chosen) == 1
    for x, y in combinations(chosen, 2):
        assert not (x.reference_piece == y.reference_piece
                    and x.candidate_pieces & y.candidate_pieces)  # fmt: skip


def test_it_leaves_out_a_refilled_repeat_check_no_new_trial_can_sit_between_with_its_original():
    held = [_trial(1, "drums", "P0", {"P1", "P2"}),
            _trial(2, "drums", "P3", {"P4", "P5"}),
            _trial(9, "drums", "P3", {"P4", "P5"}, catch_kind="repeat", repeat_of=2)]  # fmt: skip
    new = [_trial(3, "drums", "P6", {"P7", "P8"}),
           _trial(4, "drums", "P6", {"P7", "P8"}, catch_kind="repeat", repeat_of=3)]  # fmt: skip
    for seed in range(50):
        placed = design_refill.place(new, kept=[(held[0], "a")], last=held[0], seed=seed)
        assert [t.id for t, _ in placed] == [3], seed  # its repeat would be next to it or before


def test_it_keeps_a_refilled_repeat_check_where_a_new_trial_sits_between_it_and_its_original():
    last = _trial(1, "drums", "P0", {"P1", "P2"})
    new = [_trial(3, "drums", "P6", {"P7", "P8"}), _trial(5, "bass", "P9", {"P7", "P8"}),
           _trial(4, "drums", "P6", {"P7", "P8"}, catch_kind="repeat", repeat_of=3)]  # fmt: skip
    for seed in range(50):
        order = [t for t, _ in design_refill.place(new, kept=[], last=last, seed=seed)]
        assert [t.id for t in order] == [3, 5, 4], seed  # the one order keeping the rules


@pytest.mark.django_db
def test_it_never_puts_a_refilled_repeat_check_next_to_or_before_its_original(
    experimenter, listening_catalogue
):
    """2 main trials and 1 repeat check per participant; the main trial with the repeat reaches
    its target meanwhile, and one main trial is refilled: its repeat cannot be spaced."""
    for k in range(8):
        study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1,
                           trials_per_participant=2, practice_trials=0,
                           catch={"identical": 0, "attention": 0, "repeat": 1})  # fmt: skip
        _with_a_repeat_of_every_main_trial(study)
        client = Client()
        p = to_step(client, enter(client, study, pid=f"away{k}"), "trials")
        (repeat,) = [s.trial for s in p.slots.select_related("trial") if s.trial.is_catch]
        lapse(p)
        answer_elsewhere(study, [repeat.repeat_of])  # the repeated main trial: at its target
        client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
        slots = list(p.slots.order_by("index").select_related("trial"))
        assert len(_mains(p)) == 2, k  # the one taken out is refilled
        where = {s.trial_id: s.index for s in slots}
        for s in slots:
            if s.trial.catch_kind == "repeat":
                assert where[s.trial_id] - where[s.trial.repeat_of_id] >= 2, (k, where)


def _reserve_for_another(study: Study, trial: Trial, seed: int) -> Assignment:
    """Another participant under way holds `trial` (a live slot)."""
    other = Participant.objects.create(study=study, seed=seed, step=Participant.Step.TRIALS)
    until = timezone.now() + timedelta(hours=1)
    return Assignment.objects.create(participant=other, trial=trial, index=0,
                                     displayed_first="a", reserved_until=until)  # fmt: skip


@pytest.mark.django_db
def test_it_never_gives_back_at_a_later_return_a_trial_taken_out_at_an_earlier_one(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1,
                       trials_per_participant=1, practice_trials=0,
                       catch={"identical": 0, "attention": 0, "repeat": 0})  # fmt: skip
    client = Client()
    p = to_step(client, enter(client, study, pid="away"), "trials")
    x = to_a_main_trial(client, p).trial  # its page opened: heard
    mains = list(study.trials.filter(is_practice=False, is_catch=False))
    held_elsewhere = _reserve_for_another(study, x, seed=5)  # x at its target while p is away
    lapse(p)
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)  # return 1: x out, y in
    (y,) = _mains(p)
    assert y != x
    # x is below its target again (the other's slot lapsed); every other trial but y is
    # answered elsewhere, and y is held by a third participant when p comes back again.
    held_elsewhere.reserved_until = timezone.now() - timedelta(seconds=1)
    held_elsewhere.save(update_fields=["reserved_until"])
    answer_elsewhere(study, [t for t in mains if t not in (x, y)])
    _reserve_for_another(study, y, seed=6)
    lapse(p)
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)  # return 2: y out
    assert x not in _mains(p)  # the trial whose page it had open before return 1
    p.refresh_from_db()
    assert p.step == "full"  # nothing else is below target: no trial to give


def _edit_settings(study: Study, **values: str) -> None:
    """The researcher saves the study's settings page with `values` typed in."""
    owner = Client()
    owner.force_login(study.owner)
    posted = settings_page_values(owner, study) | values
    assert owner.post(reverse("studies:study_edit", args=[study.pk]), posted).status_code == 302
    study.refresh_from_db()


@pytest.mark.parametrize("now_per_participant", [1, 6])
@pytest.mark.django_db
def test_it_refills_only_the_main_trials_taken_out_whatever_the_trials_per_participant_now(
    experimenter, listening_catalogue, now_per_participant
):
    study = make_study(experimenter, listening_catalogue, per_instrument=3,
                       target_answers_per_trial=1, trials_per_participant=2,
                       catch={"identical": 0, "attention": 0, "repeat": 0})  # fmt: skip
    client = Client()
    p = to_step(client, enter(client, study, pid="away"), "practice")
    entered = _mains(p)
    assert len(entered) == 2  # the session it entered (and was paid) for
    _edit_settings(study, trials_per_participant=str(now_per_participant))  # for those to come
    assert study.setting("trials_per_participant") == now_per_participant
    lapse(p)
    answer_elsewhere(study, entered[:1])  # one of its two trials reached its target meanwhile
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    now = _mains(p)
    assert len(now) == 2 and entered[1] in now and entered[0] not in now


@pytest.mark.django_db
def test_it_refills_no_repeat_check_where_none_was_taken_out(experimenter, listening_catalogue):
    study = make_study(experimenter, listening_catalogue, per_instrument=3,
                       target_answers_per_trial=1, trials_per_participant=3, practice_trials=0,
                       catch={"identical": 0, "attention": 0, "repeat": 0})  # fmt: skip
    _with_a_repeat_of_every_main_trial(study)
    client = Client()
    p = to_step(client, enter(client, study, pid="away"), "trials")
    entered = _mains(p)
    assert not p.slots.filter(trial__is_catch=True).exists()
    _edit_settings(study, catch_repeat="2")  # repeat checks for the participants to come
    lapse(p)
    answer_elsewhere(study, entered[:2])
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert len(_mains(p)) == 3  # two refilled, at least two new trials: a repeat could be spaced
    assert not p.slots.filter(trial__is_catch=True).exists()


@pytest.mark.django_db
def test_it_keeps_out_at_a_later_return_what_the_entrys_rules_keep_out_beside_a_trial_taken_out(
    experimenter, listening_catalogue
):
    m = list(listening_catalogue.clips.filter(meta={}).order_by("id"))
    study = make_study(
        experimenter,
        listening_catalogue,
        target_answers_per_trial=2,
        practice_trials=0,
        catch={"identical": 0, "attention": 0, "repeat": 0},
    )
    study.trials.all().delete()
    plan = {"x": ("drums", 0, 1, 2),  # taken out at an earlier return
            "same_pair": ("drums", 0, 1, 3),  # its instrument on its reference piece
            "shared": ("guitar", 0, 2, 4),  # a model-chosen candidate piece of it, there
            "free": ("bass", 1, 3, 4),
            "y": ("bass", 2, 4, 5)}  # fmt: skip
    t = {name: Trial.objects.create(study=study, instrument=i, reference=m[r], candidate_a=m[a],
                                    candidate_b=m[b], model_choice="a", model_designed=True)
         for name, (i, r, a, b) in plan.items()}  # fmt: skip
    p = Participant.objects.create(study=study, seed=1, step=Participant.Step.TRIALS)
    Assignment.objects.create(participant=p, trial=t["y"], index=0, displayed_first="a",
                              reserved_until=timezone.now())  # fmt: skip
    TakenOutTrial.objects.create(participant=p, trial=t["x"])
    slots = design_return._slots(p)  # y goes at this return
    counts = Counter(
        {t["y"].pk: 2, t["x"].pk: 0, t["same_pair"].pk: 0, t["shared"].pk: 0, t["free"].pk: 1}
    )  # the two it must not get are the least filled
    for seed in range(10):
        new = design_refill.choose_for(study, p.pk, seed, slots, slots, counts)
        assert [r.id for r in new] == [t["free"].pk], seed
