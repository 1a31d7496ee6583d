"""The calibration command (docs/statistics.md's false-positive and coverage figures) runs and
prints one line per setting with rates between 0 and 1; the figures themselves take minutes and
are not computed here."""

from __future__ import annotations

import re

import pytest

from evalsite.reports.analysis import calibration


@pytest.mark.parametrize(
    ("check", "datasets", "lines"),
    [
        ("crossed", 10, len(calibration.SETTINGS)),
        ("laplace", 1, 4),
        ("reliability", 3, 3),
        ("gee", 2, len(calibration.GEE_SETTINGS)),
        ("contrast-margin", 2, 4),
    ],
)
def test_it_prints_a_rate_and_a_coverage_per_setting(capsys, check, datasets, lines):
    assert calibration.main([check, "--datasets", str(datasets), "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == lines and all(
        line.startswith(check.replace("laplace", "mixed_")) for line in out
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
