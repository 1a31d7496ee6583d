"""The README's demo command, run as a newcomer would: a fresh clone, `make demo`, the simulated
participants, the report's recovered agreement, and a reset. Embedded defaults only: SQLite and
the file-based broker, no PostgreSQL or Redis."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
RATES = {"drums": 0.95, "bass": 0.9, "piano": 0.5, "guitar": 0.9, "others": 0.5}


def _make(clone: Path, home: Path, args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    env |= {"CSN_HOME": str(home), "DJANGO_SETTINGS_MODULE": "evalsite.settings"}
    # The clone uses this checkout's virtualenv: `-o` tells make it is up to date, so the test
    # checks the demo itself rather than a second multi-minute package install.
    cmd = ["make", "-o", f"{VENV}/.installed", f"VENV={VENV}", "demo", f"ARGS={args}"]
    return subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=1500)


@pytest.mark.integration
def test_it_runs_the_readme_demo_from_a_fresh_clone_and_recovers_the_given_agreement(tmp_path):
    clone, home = tmp_path / "clone", tmp_path / "home"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    rates = ",".join(f"{k}={v}" for k, v in RATES.items())
    args = f"--tracks 16 --seconds 8 --train-steps 5 --simulate 6 --rates {rates} --no-serve"
    args += " --port 8097"
    first = _make(clone, home, args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "participant link" in first.stdout and "/s/" in first.stdout
    assert (home / "db.sqlite3").exists()  # embedded default, not the test suite's PostgreSQL

    recovered = json.loads((home / "demo" / "simulate.json").read_text())["recovered"]
    assert set(recovered) == set(RATES)
    for instrument, given in RATES.items():
        row = recovered[instrument]
        assert row["n"] > 0
        # The 95% interval widened by half its width on each side (about +-3.9 standard errors):
        # five instruments per run would make a plain 95% check fail about one run in five,
        # while an inverted or lost answer (0.95 read as 0.05) still fails for certain.
        half = (row["ci_high"] - row["ci_low"]) / 2
        assert row["ci_low"] - half <= given <= row["ci_high"] + half, (instrument, row)

    second = _make(clone, home, args)  # idempotent: every stage is skipped or resumed
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("done earlier") >= 4

    gone = _make(clone, home, "--reset")
    assert gone.returncode == 0, gone.stderr[-3000:]
    assert not home.exists()
