"""The calibration command (docs/statistics.md's false-positive and coverage figures) runs and
prints one line per setting with rates between 0 and 1; the figures themselves take minutes and
are not computed here."""

from __future__ import annotations

import re

import numpy as np
import pytest

from evalsite.reports.analysis import calibration


@pytest.mark.parametrize(
    ("check", "datasets", "lines"),
    [
        ("crossed", 10, len(calibration.SETTINGS)),
        ("laplace", 1, 8),
        ("reliability", 3, 3),
        ("gee", 2, len(calibration.GEE_SETTINGS)),
        ("contrast-margin", 2, 4),
        ("contrast-margin --slope 0", 2, 4),
    ],
)
def test_it_prints_a_rate_and_a_coverage_per_setting(capsys, check, datasets, lines):
    assert calibration.main([*check.split(), "--datasets", str(datasets), "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == lines and all(
        line.startswith(check.split()[0].replace("laplace", "mixed_")) for line in out
    )
    for line in out:
        rates = [
            float(x)
            for x in re.findall(r"(?:in|coverage[^:]*:(?: Fleiss)?|Krippendorff) (\d\.\d{3})", line)
        ]
        spread = re.search(
            r"sd of the estimates (\d\.\d{3}), root mean square se (\d\.\d{3})", line
        )
        assert (rates and all(0.0 <= r <= 1.0 for r in rates)) or spread, line


def test_it_refuses_a_number_of_datasets_below_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        calibration.main(["gee", "--datasets", "0"])
    assert exit_.value.code == 2
    assert "--datasets: expected a positive number of datasets, got 0" in capsys.readouterr().err


def test_it_shuffles_each_participants_order_as_the_site_does():
    # the site shuffles each participant's trials (design.order_trials); giving every one trial j
    # at position j made the trial index a trial-level covariate real sessions do not have
    # (review rstat, finding 3)
    answers = calibration._answers(np.random.default_rng(3), 30, 5, 0.5, 1.0)
    orders = answers.sort_values("trial_index").groupby("participant")["trial"].agg(tuple)
    assert orders.nunique() > 20
    for _, own in answers.groupby("participant"):  # each one hears each of its trials once
        assert sorted(own["trial_index"]) == list(range(10))
    # the same seed gives the same order
    again = calibration._answers(np.random.default_rng(3), 30, 5, 0.5, 1.0)
    assert answers["trial_index"].tolist() == again["trial_index"].tolist()


def test_it_prints_the_laplace_contrast_of_the_two_instruments(capsys):
    # review rstat, finding 2: the level of "drums - bass" in the ordinary null is measured
    assert calibration.main(["laplace", "--datasets", "1", "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    contrasts = [line for line in out if "drums - bass" in line]
    assert len(contrasts) == 4 and all("binomial sd" in line for line in contrasts)


def test_it_runs_the_margin_case_at_the_slope_asked(capsys):
    assert calibration.main(["contrast-margin", "--slope", "0", "--datasets", "1"]) == 0
    assert all("slope 0" in line for line in capsys.readouterr().out.splitlines())


def test_it_refuses_a_slope_that_is_not_finite(capsys):
    with pytest.raises(SystemExit) as exit_:
        calibration.main(["contrast-margin", "--slope", "nan"])
    assert exit_.value.code == 2
    assert "--slope: expected a finite number, got nan" in capsys.readouterr().err


@pytest.mark.parametrize("check", ["laplace", "contrast-margin"])
def test_it_runs_the_restricted_laplace_fit_when_asked(capsys, check):
    # docs/statistics.md's negative result: the restricted likelihood overshot the level
    assert calibration.main([check, "--restricted", "--datasets", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all("restricted Laplace" in line for line in out)
    assert calibration.main([check, "--datasets", "2", "--seed", "1"]) == 0
    assert "restricted" not in capsys.readouterr().out


def test_it_refuses_restricted_for_a_check_without_a_laplace_fit(capsys):
    with pytest.raises(SystemExit) as exit_:
        calibration.main(["gee", "--restricted"])
    assert exit_.value.code == 2
    assert "--restricted: only laplace and contrast-margin fit the Laplace model" in (
        capsys.readouterr().err
    )
