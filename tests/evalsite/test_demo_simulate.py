"""What the demo's simulated listeners decide (`demo_simulate.decide`), on plain slots."""

from __future__ import annotations

import random
from types import SimpleNamespace

from evalsite.demo_simulate import decide

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
