"""The CSV-only command and the layering rule: the analysis runs without Django or a database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evalsite.reports.analysis import ReportConfig, build_report
from evalsite.reports.analysis.__main__ import main, read_answers
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers

ROOT = Path(__file__).resolve().parents[3]
PURE = ("evalsite.reports.analysis", "evalsite.reports.rendering")


def test_it_keeps_django_out_of_the_analysis_and_rendering():
    # Import every module of both packages in a fresh interpreter; Django must never load.
    code = (
        "import importlib, pkgutil, sys\n"
        f"for top in {PURE!r}:\n"
        "    pkg = importlib.import_module(top)\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k == 'django' or k.startswith('django.'))\n"
        "print(bad[:5]); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def answers_csv(tmp_path_factory) -> Path:
    spec = SimulationSpec(n_participants=8, trials_per_instrument=5, careless_share=0.125, seed=4)
    path = tmp_path_factory.mktemp("cli") / "answers.csv"
    simulate_answers(spec)[0].to_csv(path, index=False)
    return path


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evalsite.reports.analysis", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_it_writes_every_table_plots_and_summaries_from_a_csv(answers_csv, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"n_boot": 100, "seed": 9, "bayes_max_answers": 0}))
    result = _run(answers_csv, "--out", tmp_path / "out", "--config", config)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    stored = json.loads((out / "report.json").read_text())
    for name in stored["tables"]:
        assert (out / "tables" / f"{name}.csv").is_file()
    assert {p.name for p in (out / "plots").iterdir()} >= {
        "consent.svg",
        "psychometric.svg",
        "position_bias.svg",
    }
    assert "Consent per instrument" in (out / "summary.md").read_text()
    assert "<svg" in (out / "summary.html").read_text()
    # Full precision: the CSV table equals the in-process computation exactly.
    report = build_report(
        read_answers(answers_csv), ReportConfig(n_boot=100, seed=9, bayes_max_answers=0)
    )
    again = pd.read_csv(out / "tables" / "consent.csv")
    pd.testing.assert_frame_equal(
        again, report.tables["consent"], check_exact=True, check_dtype=False
    )
    assert stored["tables"]["consent"] == report.to_dict()["tables"]["consent"]


def test_it_exits_with_a_message_for_a_missing_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.csv"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err and "no such file" in err


def test_it_writes_the_error_into_the_report_for_bad_columns(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("participant,instrument\n1,drums\n")
    assert main([str(tmp_path / "bad.csv"), "--out", str(tmp_path / "out")]) == 1
    assert "missing column(s) trial, chosen" in capsys.readouterr().err
    assert "missing column(s) trial, chosen" in (tmp_path / "out" / "summary.md").read_text()
