"""The study page's note on main trials a participant cannot get: the reason it gives is the
true one, a trial set smaller than `trials_per_participant` or the piece rule (review diffp,
finding 3)."""

from __future__ import annotations

import pytest

from evalsite.studies import design
from evalsite.studies.experimenter import main_shortfalls
from tests.evalsite.studies.conftest import make_study

pytestmark = pytest.mark.django_db
NO_CATCH = {"identical": 0, "attention": 0, "repeat": 0}


def test_it_says_the_study_has_fewer_main_trials_than_the_setting_asks_for(
    experimenter, listening_catalogue
):
    # 3 per instrument on 6 pieces: no reference recurs, no rule costs a trial
    study = make_study(experimenter, listening_catalogue, 3, practice_trials=0,
                       trials_per_participant=10, catch=NO_CATCH)  # fmt: skip
    assert design.most_main_total(study) == 6
    (line,) = main_shortfalls(study)
    assert line.startswith("The study has 6 main trials, fewer than the 10 per participant")
    assert "reference" not in line and "share" not in line  # the piece rule is not the reason


def test_it_blames_recurring_references_only_where_they_cost_trials(
    experimenter, listening_catalogue
):
    # 8 per instrument on 6 pieces: references recur, each participant gets 6 per instrument
    study = make_study(experimenter, listening_catalogue, 8, practice_trials=0, catch=NO_CATCH)
    most, total = design.most_main_trials(study), design.most_main_total(study)
    assert total < 16
    (line,) = main_shortfalls(study)
    each = ", ".join(f"{i} {n}" for i, n in most.items())
    if total < sum(most.values()):  # drums and guitar trials on one piece sharing a candidate
        each = f"per instrument at most {each}"
    assert line.startswith(
        f"Each participant gets at most {total} main trials ({each}), not all 16"
    )
    assert "of one instrument whose references are of one piece" in line


def test_it_says_nothing_where_each_participant_gets_what_the_setting_asks_for(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, 8, practice_trials=0,
                       trials_per_participant=4, catch=NO_CATCH)  # fmt: skip
    assert main_shortfalls(study) == []


def test_it_gives_both_reasons_where_both_cost_trials(experimenter, listening_catalogue):
    study = make_study(experimenter, listening_catalogue, 8, practice_trials=0,
                       trials_per_participant=20, catch=NO_CATCH)  # fmt: skip
    small, rule = main_shortfalls(study)
    assert small.startswith("The study has 16 main trials, fewer than the 20 per participant")
    total = design.most_main_total(study)
    assert rule.startswith(f"Each participant gets at most {total} main trials (")
    assert "not all 16 of the study's" in rule


def test_it_blames_the_model_only_for_a_study_designed_by_it(experimenter, listening_catalogue):
    # a random draw, 8 per instrument on 6 pieces: references recur, candidates are random
    study = make_study(experimenter, listening_catalogue, 8, practice_trials=0, catch=NO_CATCH)
    assert design.most_main_total(study) == sum(design.most_main_trials(study).values()) == 12
    (line,) = main_shortfalls(study)
    assert line.startswith("Each participant gets at most 12 main trials (drums 6, guitar 6)")
    assert "of one instrument whose references are of one piece" in line
    assert "model" not in line and "share a candidate" not in line  # no model chose them
    study.trials.filter(is_catch=False).update(model_designed=True)  # as the model designs
    (line,) = main_shortfalls(study)
    assert "would share a candidate, the model's choice" in line
