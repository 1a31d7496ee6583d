"""How a load benchmark run's figures are read against the targets and the checks, from the dict
`loadtest.run` returns (no server)."""

from __future__ import annotations

import io
import math
import os
import threading
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command

from evalsite.studies.loadtest import LoadConfig, _run_phases
from evalsite.studies.loadtest_report import ROWS, format_report, passed, targets

CFG = LoadConfig(participants=4, duration=2, reference_duration=1, think=5)


def _run(**changes) -> dict:
    """A run's result with every kind measured and every check passing, then `changes`."""
    row = {"requests": 100, "seconds": 5.0, "rps": 20.0, "p50_ms": 5.0, "p99_ms": 20.0,
           "errors": 0}  # fmt: skip
    result = {
        "figures": {kind: dict(row) for _, kind, _ in ROWS},
        "acknowledged": 10, "acknowledged_unique": 10, "stored": 10, "stored_unique": 10,
        "acked_not_stored": 0, "stored_not_acked": 0, "writes_acknowledged": 5,
        "writes_stored": 5, "entered_in_phase": 0, "error_reasons": {}, "killed_workers": [],
        "flow_errors": 0, "client_errors": [], "stuck_threads": 0, "phases_not_run": [],
    }  # fmt: skip
    return result | changes


def test_it_does_not_meet_the_paced_p99_target_when_no_paced_answer_was_measured():
    # --duration shorter than --think: trial pages shown, no answer sent before the stop. The
    # answer's p99 is NaN, which max() passed over: the pages' p99 alone read as met.
    result = _run()
    unmeasured = {"requests": 0, "rps": 0.0, "p50_ms": math.nan, "p99_ms": math.nan}
    result["figures"]["paced_answer"] |= unmeasured
    assert targets(result)["paced_p99_met"] is False
    text = format_report(CFG, result)
    assert "p99 < 50 ms at the paced load: no paced answer measured -> NOT met" in text


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"writes_stored": 480}, "bare writes acknowledged 5, stored 480"),
     ({"phases_not_run": ["loop", "paced"]}, "phases not run: loop, paced"),
     ({"client_errors": ["LoadTestError: boom"]}, "1 client failure"),
     ({"stuck_threads": 2}, "2 client threads stuck"),
     ({"stored": 9}, "acknowledged and stored answers differ")],
)  # fmt: skip
def test_it_fails_a_run_naming_the_check_that_failed(monkeypatch, changes, reason):
    result = _run(**changes)
    assert passed(_run()) and not passed(result)
    assert f"RESULT: FAIL: {reason}" in format_report(CFG, result)
    monkeypatch.setattr("evalsite.studies.management.commands.loadtest.run",
                        lambda cfg, out: result)  # fmt: skip
    with pytest.raises(CommandError) as failed:
        call_command("loadtest", "--participants", "4", "--duration", "2", stdout=io.StringIO())
    assert str(failed.value).startswith(f"load test failed: {reason}")


def test_it_records_the_phases_a_broken_barrier_left_unrun():
    # A client failed or a barrier timed out between two phases: the run stops there, and the
    # phases after it have no figures, which must not read as a pass.
    schedule = [(name, [name], 0.01) for name in ("healthz0", "answers0", "loop")]
    barrier = threading.Barrier(2)
    barrier.abort()
    stops = {name: threading.Event() for name, _, _ in schedule}
    server = SimpleNamespace(pid=os.getpid())  # a "gunicorn" without workers
    phases, _, _, not_run = _run_phases(CFG, schedule, barrier, stops, server, [], print)
    assert list(phases) == ["healthz0"]
    assert not_run == ["answers0", "loop"]
