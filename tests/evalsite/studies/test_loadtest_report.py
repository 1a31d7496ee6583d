"""How a load benchmark run's figures are read against the targets and the checks, from the dict
`loadtest.run` returns (no server)."""

from __future__ import annotations

import math

from evalsite.studies.loadtest import LoadConfig
from evalsite.studies.loadtest_report import ROWS, format_report, targets

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
        "flow_errors": 0, "client_errors": [], "stuck_threads": 0,
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
