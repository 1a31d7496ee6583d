"""The power plan under a `trials_per_participant` that caps the main trials over all instruments
(review rstat, finding 1): `select_trials` fills every participant to the cap, so some get the
floor of an instrument's share and some its ceiling. The plan plans each instrument at its
expected (fractional) share and counts the whole capped session in the minutes, checked against
the sessions the real `design.assign` gives."""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
import pytest
from django.utils import timezone

from evalsite.reports.analysis import power
from evalsite.reports.analysis.report import ReportConfig
from evalsite.reports.study_config import expected_shares, report_config_for
from evalsite.studies import design
from tests.evalsite.studies.conftest import make_catalogue, make_study, participant

pytestmark = pytest.mark.django_db
NO_CATCH = {"identical": 0, "attention": 0, "repeat": 0}
PER_TRIAL_S = 3.0


def _inputs() -> pd.DataFrame:
    return pd.DataFrame([{"term": i, "estimate": 0.7, "icc": 0.1, "trials_per_participant": 1.0,
                          "seconds_per_trial": PER_TRIAL_S, "n": 40, "n_participants": 20}
                         for i in ("drums", "guitar")])  # fmt: skip


def _sessions(study, participants: int) -> list[Counter]:
    now = timezone.now()
    sessions = []
    for seed in range(participants):
        p = participant(study, seed)
        assert design.assign(p, now)
        sessions.append(Counter(s.trial.instrument for s in p.slots.select_related("trial")))
    return sessions


@pytest.mark.parametrize("cap", [3, 5])
def test_it_plans_each_instrument_at_the_mean_share_the_capped_sessions_give(
    alice, settings, tmp_path, cap
):
    settings.MEDIA_ROOT = str(tmp_path / "media")  # the generated clips' files
    # 2 instruments x 3 reference pieces, a cap that does not split evenly between them
    study = make_study(alice, make_catalogue(alice), 3, practice_trials=0,
                       trials_per_participant=cap, catch=NO_CATCH,
                       target_answers_per_trial=50)  # fmt: skip
    config, _ = report_config_for(study)
    sessions = _sessions(study, 12)
    assert all(sum(s.values()) == cap for s in sessions)  # every one gets the whole cap
    given = sum(sessions, Counter())
    mean = {i: given[i] / len(sessions) for i in ("drums", "guitar")}
    assert config.design_main_trials == pytest.approx(mean) == {"drums": cap / 2, "guitar": cap / 2}


@pytest.mark.parametrize("cap", [3, 5])
def test_it_counts_the_whole_capped_session_in_the_design_rows_minutes(alice, cap):
    study = make_study(alice, make_catalogue(alice), 3, practice_trials=0,
                       trials_per_participant=cap, catch=NO_CATCH)  # fmt: skip
    config, _ = report_config_for(study)
    rows = power.plan(_inputs(), (1, 2, 3), design_trials=config.design_main_trials)
    share = cap / 2
    at = rows[rows.trials_per_participant == share]
    assert len(at) == 2 and at.within_design.all()
    # what select_trials gives every participant: the cap, not the shares rounded down
    assert at.minutes_per_participant.tolist() == pytest.approx([cap * PER_TRIAL_S / 60] * 2)
    # participants from the mean answers of the instrument each one gives
    assert (at.participants_for_power == (at.answers_for_power / share).apply(math.ceil)).all()


@pytest.mark.parametrize(
    ("cap", "within", "beyond"), [(3, {1, 1.5, 2}, {3}), (5, {1, 2, 2.5, 3}, set())]
)
def test_it_marks_rows_beyond_the_design_only_above_the_rounded_up_share(
    alice, cap, within, beyond
):
    # at cap 3 half the participants get 2 of an instrument: a row at 2 is one this design gives
    study = make_study(alice, make_catalogue(alice), 3, practice_trials=0,
                       trials_per_participant=cap, catch=NO_CATCH)  # fmt: skip
    config, _ = report_config_for(study)
    rows = power.plan(_inputs(), (1, 2, 3), design_trials=config.design_main_trials)
    drums = rows[rows.term == "drums"]
    assert set(drums[drums.within_design].trials_per_participant) == within
    assert set(drums[~drums.within_design].trials_per_participant) == beyond


def test_it_gives_an_instrument_at_its_reference_bound_no_more_and_the_rest_to_the_others():
    # drums has 6 main trials on 3 reference pieces: its proportional share of 5 (3.75) passes
    # the 3 a participant can get, so the 2 left go to guitar, whose bound is 2
    assert expected_shares(5, {"drums": 6, "guitar": 2}, {"drums": 3, "guitar": 2}) == {
        "drums": 3,
        "guitar": 2,
    }
    shares = expected_shares(4, {"a": 4, "b": 1, "c": 2}, {"a": 2, "b": 3, "c": 3})
    assert shares == pytest.approx({"a": 2, "b": 2 / 3, "c": 4 / 3})


@pytest.mark.parametrize("bad", [{"drums": 0}, {"drums": -1.5}, {"drums": "2"}, [1.5]])
def test_it_refuses_a_design_count_that_is_not_a_positive_number(bad):
    with pytest.raises(ValueError, match="design_main_trials is .* expected instrument names"):
        ReportConfig.from_dict({"design_main_trials": bad})


def test_it_reads_a_fractional_design_count():
    config = ReportConfig.from_dict({"design_main_trials": {"drums": 1.5, "guitar": 1}})
    assert config.design_main_trials == {"drums": 1.5, "guitar": 1}


def test_it_plans_an_instrument_whose_share_is_under_one_trial_at_that_share():
    # 3 instruments of 3 reference pieces, a cap of 2: each one's trials reach 2 participants in
    # 3 (planned at 2/3, not at 1), and a session is the 2 trials
    three = {"drums": 3, "guitar": 3, "bass": 3}
    shares = expected_shares(2, three, three)
    assert shares == pytest.approx({i: 2 / 3 for i in three})
    rows = power.plan(_inputs(), (1, 2), design_trials=shares)
    at = rows[(rows.term == "drums") & (rows.trials_per_participant == shares["drums"])]
    assert at.minutes_per_participant.tolist() == pytest.approx([2 * PER_TRIAL_S / 60])
    assert at.participants_for_power.tolist() == [math.ceil(at.answers_for_power.iloc[0] * 1.5)]
    drums = rows[rows.term == "drums"]
    assert drums[drums.trials_per_participant == 1].within_design.all()  # some get 1
    assert not drums[drums.trials_per_participant == 2].within_design.any()
