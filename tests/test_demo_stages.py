"""The demo's stage lines say what they count, and the recovered agreement counts only the
simulated participants."""

from __future__ import annotations

import numpy as np
import pytest

from evalsite.demo_simulate import simulated_prefix
from evalsite.demo_stages import recovered_consent, study_summary
from evalsite.reports.services import compute_snapshot
from evalsite.stimuli.models import Catalogue
from evalsite.studies.models import Participant, Study, Trial
from tests.evalsite.reports.conftest import _clip, _trials, answer_all
from tests.evalsite.studies.experimenter_personas import alice, fast_passwords  # noqa: F401

pytestmark = pytest.mark.django_db


def test_it_names_main_catch_and_practice_trials_in_the_study_line(alice):  # noqa: F811
    catalogue = Catalogue.objects.create(owner=alice, name="clips")
    clips = [_clip(catalogue, i) for i in range(12)]
    study = Study.objects.create(owner=alice, name="s", instruments=["drums", "guitar"])
    _trials(study, clips, np.random.default_rng(0))  # 5 main and 1 catch per instrument
    Trial.objects.create(
        study=study, reference=clips[0], candidate_a=clips[1], candidate_b=clips[2],
        instrument="drums", is_practice=True, expected="a", model_choice="a",
    )  # fmt: skip
    assert study_summary(study) == (
        f"study {study.pk}: 12 trials (10 main, 2 catch) and 1 practice, "
        "10 of the 12 with a model choice"
    )


def test_it_recovers_agreement_from_the_simulated_participants_only(alice):  # noqa: F811
    rng = np.random.default_rng(3)
    study, trials = _study_with_trials(alice, rng)
    # the last took part through the participant link
    _answered_by(study, trials, rng, ["sim-1-0000", "sim-1-0001", "sim-1-0002", "someone"])
    compute_snapshot(study.pk)  # the study's report, the real participant's answers included
    recovered = recovered_consent(study, "sim-1-")
    assert {name: row["n"] for name, row in recovered.items()} == {"drums": 15, "guitar": 15}


def test_it_recovers_agreement_from_this_runs_simulated_participants_only(alice):  # noqa: F811
    rng = np.random.default_rng(4)
    study, trials = _study_with_trials(alice, rng)
    now, before = simulated_prefix(1, {"drums": 0.1}), simulated_prefix(1, {"drums": 0.9})
    # the last: an earlier run's, with other rates
    _answered_by(study, trials, rng, [f"{now}0000", f"{now}0001", f"{before}0000"])
    recovered = recovered_consent(study, now)
    assert {name: row["n"] for name, row in recovered.items()} == {"drums": 10, "guitar": 10}


def _study_with_trials(owner, rng) -> tuple[Study, list[Trial]]:
    """A study of drums and guitar with 5 main trials each, its report cheap to compute."""
    catalogue = Catalogue.objects.create(owner=owner, name="clips")
    clips = [_clip(catalogue, i) for i in range(30)]
    study = Study.objects.create(
        owner=owner,
        name="s",
        instruments=["drums", "guitar"],
        catalogue=catalogue,
        settings={"report": {"n_boot": 50}},  # fewer bootstrap replicates: a faster report
    )
    return study, _trials(study, clips, rng)


def _answered_by(study: Study, trials: list[Trial], rng, pids: list[str]) -> None:
    """Finished participants with these pids, each answering every trial."""
    for pid in pids:
        p = Participant.objects.create(
            study=study, external_pid=pid, step="done", screening_passed=True, seed=len(pid)
        )
        answer_all(study, p, trials, rng)
