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


@pytest.mark.django_db  # each phase's PostgreSQL counters are read around it
def test_it_records_the_phases_a_broken_barrier_left_unrun():
    # A client failed or a barrier timed out between two phases: the run stops there, and the
    # phases after it have no figures, which must not read as a pass.
    schedule = [(name, [name], 0.01) for name in ("healthz0", "answers0", "loop")]
    barrier = threading.Barrier(2)
    barrier.abort()
    stops = {name: threading.Event() for name, _, _ in schedule}
    server = SimpleNamespace(pid=os.getpid())  # a "gunicorn" without workers
    phases, _, _, not_run, db = _run_phases(CFG, schedule, barrier, stops, server, [], print)
    assert list(phases) == ["healthz0"]
    assert list(db) == ["healthz"]  # counters read around the phase that ran
    assert not_run == ["answers0", "loop"]


def _figures(i: int, requests: int = 100) -> dict:
    return {"requests": requests, "seconds": 5.0, "rps": 20.0 * i, "p50_ms": 5.0 + i,
            "p99_ms": 20.0 + i, "errors": i % 3}  # fmt: skip


def _stats(checkpoints=0, write_ms=0.0, sync_ms=0.0, wal_syncs=40, share=0.2, slow=25) -> dict:
    """A phase's PostgreSQL counters and slowest requests (loadtest_outliers)."""
    return {"checkpoints": checkpoints, "checkpoint_write_ms": write_ms,
            "checkpoint_sync_ms": sync_ms, "wal_syncs": wal_syncs,
            "slow": {"requests": 2500, "p99_ms": 21.0, "slow": slow, "densest_share": share,
                     "densest_at_s": 3.0, "worst_ms": 40.0, "worst_at_s": 3.1}}  # fmt: skip


# Every kind and the CPU measured, every check failed; the whole report, as it was printed.
FAILING_RUN = {
    "figures": {kind: _figures(i + 1) for i, (_, kind, _) in enumerate(ROWS)}
    | {"assign": _figures(2, 40)},
    "cpu_s": {f"{phase}_{part}": 0.5 + j
              for phase in ("healthz", "answers", "write", "loop", "paced")
              for j, part in enumerate(("gunicorn", "postgres", "clients", "machine", "steal"))},
    "acknowledged": 10, "acknowledged_unique": 9, "stored": 10, "stored_unique": 10,
    "acked_not_stored": 1, "stored_not_acked": 2, "writes_acknowledged": 5, "writes_stored": 4,
    "entered_in_phase": 3, "error_reasons": {"answer timeout": 2, "loop_trial_page 502": 1},
    "killed_workers": [1234], "flow_errors": 1,
    "client_errors": ["LoadTestError: boom", "OSError: reset"], "client_failures": 5,
    "stuck_threads": 1, "phases_not_run": ["paced"],
    "phase_stats": {"healthz": _stats(wal_syncs=12), "answers": _stats(wal_syncs=1520),
                    "write": _stats(checkpoints=1, write_ms=2100.0, sync_ms=6500.0),
                    "loop": _stats(write_ms=1234.0, share=0.83)},
    "db_not_read": ["WAL sync time (track_wal_io_timing is off)"],
}  # fmt: skip
FAILING_REPORT = "\n".join(
    [
        "participants=4 in 4 client processes gunicorn=3x4 gthread phases: reference 1s, "
        "answers 1s and bare write 1s (alternated, 2 rounds), loop 2s, paced 2s (think 5s) "
        "kill_worker=True",
        "phase     request                       requests    req/s   p50 ms   p99 ms  errors "
        " vs healthz   CPU ms/req (gunicorn / postgres / clients)  busy steal",
        "reference GET /healthz (trivial view)        100     20.0      6.0     21.0       1 "
        "       1.00   5.00 / 15.00 / 25.00   18%   22%",
        "answers   POST answer, back to back          100     40.0      7.0     22.0       2 "
        "       2.00   5.00 / 15.00 / 25.00   18%   22%",
        "write     POST bare write (1 INSERT)         100     60.0      8.0     23.0       0 "
        "       3.00   5.00 / 15.00 / 25.00   18%   22%",
        "loop      GET trial page                     100     80.0      9.0     24.0       1 "
        "       4.00   2.50 / 7.50 / 12.50   18%   22%",
        "loop      POST answer                        100    100.0     10.0     25.0       2 "
        "       5.00   2.50 / 7.50 / 12.50   18%   22%",
        "paced     GET trial page                     100    120.0     11.0     26.0       0 "
        "       6.00   2.50 / 7.50 / 12.50   18%   22%",
        "paced     POST answer                        100    140.0     12.0     27.0       1 "
        "       7.00   2.50 / 7.50 / 12.50   18%   22%",
        "reference checkpoints 0; WAL syncs 12; >= p99 21.0 ms: 25 requests, 20% within 1 s "
        "(from 3.0 s); worst 40.0 ms at 3.1 s",
        "answers   checkpoints 0; WAL syncs 1520; >= p99 21.0 ms: 25 requests, 20% within 1 s "
        "(from 3.0 s); worst 40.0 ms at 3.1 s",
        "write     checkpoints 1 (write 2.10 s, sync 6.50 s); WAL syncs 40; >= p99 21.0 ms: "
        "25 requests, 20% within 1 s (from 3.0 s); worst 40.0 ms at 3.1 s",
        "loop      checkpoints 0 (write 1.23 s, sync 0.00 s); WAL syncs 40; >= p99 21.0 ms: "
        "25 requests, 83% within 1 s (from 3.0 s); worst 40.0 ms at 3.1 s",
        "(requests: answered in the phase, each timed from its first attempt to its answer, "
        "retries included; errors: failed attempts (timeout, reset, 5xx), each retried, none "
        "counted in requests)",
        "(CPU ms/req: CPU per request of the phase in gunicorn's workers, in PostgreSQL "
        "(when it runs on this machine) and in the client processes; busy: share of all "
        "cores in use; steal: share the hypervisor gave to other machines (a run slowed from "
        "outside))",
        "(per phase, read in the same run: PostgreSQL's checkpoints begun in the phase, with "
        "the write and sync time of those that ended in it, and its WAL fsyncs, all of the "
        "server's databases; the phase's requests of every kind at or above their p99 "
        "together, the largest share of them that ended within one second and when, and the "
        "slowest request; seconds from the phase's start)",
        "(not read: WAL sync time (track_wal_io_timing is off))",
        "target: answer submission >= 0.5 x healthz throughput, both saturated: 2.00 -> met",
        "  a bare durable write (one INSERT shaped like an answer, none of its checks) "
        "reaches 3.00 x healthz; the answer reaches 0.67 x the bare write",
        "target: p99 < 50 ms at the paced load: 27.0 ms -> met",
        "answers acknowledged=10 (unique 9) stored=10 (unique participant+trial 10) "
        "acked-not-stored=1 stored-not-acked=2; bare writes acknowledged=5 stored=4",
        "participants who entered inside a timed phase (spares used up): 3",
        "entering: 40 trial lists assigned (the POST after the instructions; setup enters "
        "every participant at once): p50 7 ms, p99 22 ms (retries included), 2 attempts "
        "failed and were retried (timeout 15 s)",
        "failed attempts (retried) by kind and reason: answer timeout x2, loop_trial_page 502 x1",
        "killed workers=[1234] flow errors=1 client failures=5 stuck threads=1",
        "RESULT: FAIL: acknowledged and stored answers differ (acknowledged 10, unique 9; "
        "stored 10, unique 10; acknowledged, not stored 1); bare writes acknowledged 5, "
        "stored 4 (must be equal); 5 client failures; 1 client threads stuck after the last "
        "phase; phases not run: paced (a client failed or a barrier between phases timed out)",
        "  client failure: LoadTestError: boom",
        "  client failure: OSError: reset",
    ]
)

# Some kinds only, no CPU, no trial list assigned, /healthz at 0 req/s, no pacing; a pass.
PASSING_RUN = {
    "figures": {"healthz": _figures(1) | {"rps": 0.0}, "answer": _figures(2),
                "loop_trial_page": _figures(3, 0),
                "paced_answer": {"requests": 0, "seconds": 5.0, "rps": 0.0, "p50_ms": math.nan,
                                 "p99_ms": math.nan, "errors": 0}},
    "acknowledged": 10, "acknowledged_unique": 10, "stored": 10, "stored_unique": 10,
    "acked_not_stored": 0, "stored_not_acked": 0, "entered_in_phase": 0, "error_reasons": {},
    "killed_workers": [], "flow_errors": 0, "client_errors": [], "stuck_threads": 0,
}  # fmt: skip
PASSING_REPORT = "\n".join(
    [
        "participants=8 in 4 client processes gunicorn=3x4 gthread phases: reference 1.5s, "
        "answers 1.5s and bare write 1.5s (alternated, 2 rounds), loop 3s kill_worker=False",
        "phase     request                       requests    req/s   p50 ms   p99 ms  errors "
        " vs healthz   CPU ms/req (gunicorn / postgres / clients)  busy steal",
        "reference GET /healthz (trivial view)        100      0.0      6.0     21.0       1 "
        "        nan   -",
        "answers   POST answer, back to back          100     40.0      7.0     22.0       2 "
        "        nan   -",
        "loop      GET trial page                       0     60.0      8.0     23.0       0 "
        "        nan   -",
        "paced     POST answer                          0      0.0      nan      nan       0 "
        "        nan   -",
        "(requests: answered in the phase, each timed from its first attempt to its answer, "
        "retries included; errors: failed attempts (timeout, reset, 5xx), each retried, none "
        "counted in requests)",
        "(CPU ms/req: CPU per request of the phase in gunicorn's workers, in PostgreSQL "
        "(when it runs on this machine) and in the client processes; busy: share of all "
        "cores in use; steal: share the hypervisor gave to other machines (a run slowed from "
        "outside))",
        "target: answer submission >= 0.5 x healthz throughput, both saturated: nan -> NOT met",
        "  a bare durable write (one INSERT shaped like an answer, none of its checks) "
        "reaches nan x healthz; the answer reaches nan x the bare write",
        "target: p99 at a paced load: not measured (--think 0)",
        "answers acknowledged=10 (unique 10) stored=10 (unique participant+trial 10) "
        "acked-not-stored=0 stored-not-acked=0; bare writes acknowledged=0 stored=0",
        "participants who entered inside a timed phase (spares used up): 0",
        "entering: no trial list assigned",
        "failed attempts (retried) by kind and reason: none",
        "killed workers=none flow errors=0 client failures=0 stuck threads=0",
        "RESULT: PASS (acknowledged == stored, no duplicates, every phase ran)",
    ]
)


@pytest.mark.parametrize(
    ("cfg", "result", "expected"),
    [(LoadConfig(participants=4, duration=2, reference_duration=1, think=5, kill_worker=True),
      FAILING_RUN, FAILING_REPORT),
     (LoadConfig(participants=8, duration=3, reference_duration=1.5, think=0), PASSING_RUN,
      PASSING_REPORT)],
)  # fmt: skip
def test_it_prints_the_whole_report(monkeypatch, cfg, result, expected):
    monkeypatch.setattr("os.cpu_count", lambda: 4)  # busy and steal are shares of all cores
    assert format_report(cfg, result) == expected


PACED_STALL = {"checkpoints": 1, "checkpoint_write_ms": 2100.0, "checkpoint_sync_ms": 6500.0,
               "wal_syncs": 900,
               "slow": {"requests": 2400, "p99_ms": 80.0, "slow": 24, "densest_share": 0.83,
                        "densest_at_s": 12.3, "worst_ms": 352.7, "worst_at_s": 12.4}}  # fmt: skip


@pytest.mark.parametrize(
    ("stats", "said"),
    [(PACED_STALL,
      "paced p99 missed: a checkpoint overlapped the paced phase (1 begun in it; write 2.10 s, "
      "sync 6.50 s); its slowest requests were clustered in time (83% of the 24 at or above its "
      "p99 ended within 1 s, from 12.3 s)"),
     (PACED_STALL | {"checkpoints": 0, "checkpoint_write_ms": 0.0, "checkpoint_sync_ms": 0.0,
                     "slow": PACED_STALL["slow"] | {"densest_share": 0.125}},
      "paced p99 missed: no checkpoint overlapped the paced phase; its slowest requests were "
      "spread out (at most 12% of the 24 at or above its p99 ended within any 1 s)"),
     (PACED_STALL | {"checkpoints": 0, "checkpoint_sync_ms": 0.0,
                     "slow": PACED_STALL["slow"] | {"slow": 3}},
      "paced p99 missed: a checkpoint overlapped the paced phase (0 begun in it; write 2.10 s, "
      "sync 0.00 s); too few slow requests to tell whether they were clustered in time (3 at "
      "or above its p99)"),
     ({"slow": PACED_STALL["slow"]},
      "paced p99 missed: checkpoints not read; its slowest requests were clustered in time "
      "(83% of the 24 at or above its p99 ended within 1 s, from 12.3 s)")],
)  # fmt: skip
def test_it_says_whether_a_checkpoint_or_a_stall_came_with_a_missed_paced_p99(stats, said):
    result = _run(phase_stats={"paced": stats})
    result["figures"]["paced_answer"]["p99_ms"] = 352.7
    lines = format_report(CFG, result).splitlines()
    assert f"  {said}" in lines
    met = _run(phase_stats={"paced": stats})  # p99 20 ms: nothing to explain
    assert not any("p99 missed" in line for line in format_report(CFG, met).splitlines())
