"""What the demo's simulated listeners decide (`demo_simulate.decide`), on plain slots."""

from __future__ import annotations

import random
from types import SimpleNamespace

from evalsite.demo_simulate import (
    SIMULATED_PID_PREFIX,
    Outcome,
    decide,
    simulated_prefix,
    simulation_summary,
)

ALWAYS = {"piano": 1.0}  # agrees with the model on every main trial


def _slot(displayed_first: str, **trial) -> SimpleNamespace:
    fields = {"is_practice": False, "is_catch": False, "expected": "", "catch_kind": "",
              "repeat_of_id": None, "instrument": "piano", "model_choice": "a",
              "candidate_a_id": 11, "candidate_b_id": 12} | trial  # fmt: skip
    return SimpleNamespace(displayed_first=displayed_first, trial=SimpleNamespace(**fields))


def _repeat(displayed_first: str) -> SimpleNamespace:
    return _slot(displayed_first, is_catch=True, catch_kind="repeat", repeat_of_id=1)


def test_it_answers_a_repeat_with_the_clip_it_chose_on_the_original_trial():
    for seed in range(20):
        rng = random.Random(seed)
        # chose clip 12 (candidate b) before; b is shown as A or as B on the repeat
        assert decide(_repeat("b"), ALWAYS, rng, earlier=12) == "A"
        assert decide(_repeat("a"), ALWAYS, rng, earlier=12) == "B"
        assert decide(_repeat("a"), ALWAYS, rng, earlier=11) == "A"


def test_it_answers_a_repeat_shown_before_its_original_as_a_main_trial():
    # model_choice "a" shown second: a listener always agreeing with the model picks B
    assert {decide(_repeat("b"), ALWAYS, random.Random(s)) for s in range(20)} == {"B"}


def test_it_passes_catch_trials_with_a_correct_answer():
    slot = _slot("b", is_catch=True, catch_kind="identical", expected="b", model_choice=None)
    assert {decide(slot, ALWAYS, random.Random(s)) for s in range(20)} == {"A"}


def test_it_gives_each_seed_and_set_of_rates_its_own_participant_ids():
    given = {"drums": 0.9, "bass": 0.7}
    same = {"bass": 0.7, "drums": 0.9}  # the same rates in another order
    assert simulated_prefix(1, given) == simulated_prefix(1, same)
    assert simulated_prefix(1, given).startswith(SIMULATED_PID_PREFIX)
    assert simulated_prefix(1, given) != simulated_prefix(1, {"drums": 0.1, "bass": 0.7})
    assert simulated_prefix(1, given) != simulated_prefix(2, given)


def test_it_counts_participants_simulated_now_apart_from_those_done_earlier():
    outcomes = [Outcome("sim-1-x-0000", "done", 30, earlier=True),
                Outcome("sim-1-x-0001", "done", 30, earlier=False),
                Outcome("sim-1-x-0002", "screened_out", 0, earlier=False)]  # fmt: skip
    assert simulation_summary(outcomes) == (
        "3 participants: 2 simulated now (done, screened_out), 1 done earlier with these "
        "options; 60 answers"
    )
