"""The load benchmark's figures read against the issue's targets, and printed (loadtest.py runs
the benchmark; this module only reads the dict `loadtest.run` returns)."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from evalsite.studies.loadtest_client import ASSIGN, REQUEST_TIMEOUT_S
from evalsite.studies.loadtest_outliers import CLUSTER_SPAN_S, clustered
from evalsite.studies.loadtest_processes import ROUNDS

if TYPE_CHECKING:
    from evalsite.studies.loadtest import LoadConfig


def failures(result: dict) -> list[str]:
    """The checks a run failed, each in a few words (none: it passed): every acknowledged answer
    and bare write stored once, no client failure or stuck thread, every phase run."""
    r, failed = result, []
    if not (r["acknowledged"] == r["acknowledged_unique"] == r["stored"] == r["stored_unique"]
            and r["acked_not_stored"] == 0):  # fmt: skip
        failed.append(
            f"acknowledged and stored answers differ (acknowledged {r['acknowledged']}, unique "
            f"{r['acknowledged_unique']}; stored {r['stored']}, unique {r['stored_unique']}; "
            f"acknowledged, not stored {r['acked_not_stored']})"
        )
    writes = (r.get("writes_acknowledged", 0), r.get("writes_stored", 0))
    if writes[0] != writes[1]:
        failed.append(f"bare writes acknowledged {writes[0]}, stored {writes[1]} (must be equal)")
    if n := _client_failures(r):
        failed.append(f"{n} client failure{'s' if n > 1 else ''}")
    if r["stuck_threads"]:
        failed.append(f"{r['stuck_threads']} client threads stuck after the last phase")
    if r.get("phases_not_run"):
        failed.append(f"phases not run: {', '.join(r['phases_not_run'])} (a client failed or "
                      "a barrier between phases timed out)")  # fmt: skip
    return failed


def passed(result: dict) -> bool:
    return not failures(result)


def _client_failures(result: dict) -> int:
    """How many client failures there were (`client_errors` keeps the first few)."""
    return result.get("client_failures", len(result["client_errors"]))


# (phase, request kind in the Recorder, what the row shows)
ROWS = [
    ("reference", "healthz", "GET /healthz (trivial view)"),
    ("answers", "answer", "POST answer, back to back"),
    ("write", "write", "POST bare write (1 INSERT)"),
    ("loop", "loop_trial_page", "GET trial page"),
    ("loop", "loop_answer", "POST answer"),
    ("paced", "paced_trial_page", "GET trial page"),
    ("paced", "paced_answer", "POST answer"),
]
THROUGHPUT_TARGET = 0.5  # answer submission / trivial view, both saturated
P99_TARGET_MS = 50.0  # at the paced (listener-like) load


def _ratio(f: dict, kind: str, reference: str) -> float:
    ok = kind in f and reference in f and f[reference]["rps"]
    return f[kind]["rps"] / f[reference]["rps"] if ok else float("nan")


def targets(result: dict) -> dict:
    """The issue's two targets, read from a run: answer throughput ratio and paced p99; and the
    bare write's throughput next to both references (what any durable answer can reach)."""
    f = result["figures"]
    ratio = _ratio(f, "answer", "healthz")
    p99, unmeasured = _paced_p99(f)
    return {"answer_ratio": ratio, "answer_ratio_met": ratio >= THROUGHPUT_TARGET,
            "paced_p99_ms": p99, "paced_p99_unmeasured": unmeasured,
            "paced_p99_met": not unmeasured and p99 < P99_TARGET_MS,
            "write_ratio": _ratio(f, "write", "healthz"),
            "answer_vs_write": _ratio(f, "answer", "write")}  # fmt: skip


PACED = {"paced_trial_page": "trial page", "paced_answer": "answer"}


def _paced_p99(f: dict) -> tuple[float, str]:
    """The worse p99 of the paced trial pages and answers, or NaN and what was not measured. Both
    must be: a kind with no request in the phase (a --duration shorter than --think sends no
    answer) has p99 NaN, which max() passes over, and the other's alone would read as met."""
    missing = [
        label
        for kind, label in PACED.items()
        if kind not in f or not f[kind]["requests"] or math.isnan(f[kind]["p99_ms"])
    ]
    if missing:
        return float("nan"), f"no paced {' or '.join(missing)} measured"
    return max(f[kind]["p99_ms"] for kind in PACED), ""


def _cpu_column(result: dict, phase: str, n_requests: int, seconds: float) -> str:
    """CPU per request of a phase in gunicorn / PostgreSQL / the clients, how busy the whole
    machine was and how much the hypervisor took (shares of all cores)."""
    cpu = result.get("cpu_s", {})
    key = "healthz" if phase == "reference" else phase
    if f"{key}_gunicorn" not in cpu or not n_requests:  # not measured (a worker was killed)
        return "-"
    per_req = [1000 * cpu[f"{key}_{part}"] / n_requests for part in CPU_PARTS]
    cores = seconds * (os.cpu_count() or 1)
    busy, steal = (cpu.get(f"{key}_{part}", 0.0) / cores if cores else float("nan")
                   for part in ("machine", "steal"))  # fmt: skip
    return " / ".join(f"{ms:.2f}" for ms in per_req) + f"  {busy:4.0%} {steal:5.0%}"


CPU_PARTS = ("gunicorn", "postgres", "clients")


def _assign_line(x: dict | None) -> str:
    """Entering, all participants at once in setup: the POST that assigns a trial list."""
    if not x or not x["requests"]:
        return "entering: no trial list assigned"
    return (f"entering: {x['requests']} trial lists assigned (the POST after the instructions; "
            f"setup enters every participant at once): p50 {x['p50_ms']:.0f} ms, "
            f"p99 {x['p99_ms']:.0f} ms (retries included), {x['errors']} attempts failed and "
            f"were retried (timeout {REQUEST_TIMEOUT_S} s)")  # fmt: skip


def format_report(cfg: LoadConfig, result: dict) -> str:
    f = result["figures"]
    ref = f["healthz"]["rps"]
    lines = [_settings_line(cfg), _HEADER]
    lines += [
        _phase_row(result, phase, kind, label, ref) for phase, kind, label in ROWS if kind in f
    ]
    lines += outlier_lines(result)
    t, failed = targets(result), failures(result)
    lines += [*_LEGEND, *outlier_legend(result), *_target_lines(cfg, t)]
    if cfg.think and not t["paced_p99_met"] and "paced" in result.get("phase_stats", {}):
        lines.append(paced_miss_line(result["phase_stats"]["paced"]))
    lines += [*_count_lines(result), _verdict(failed)]
    lines += [f"  client failure: {e}" for e in result["client_errors"]]
    return "\n".join(lines)


# the phase table's names of the schedule's phases (loadtest._schedule), in its order
STAT_PHASES = {"healthz": "reference", "answers": "answers", "write": "write", "loop": "loop",
               "paced": "paced"}  # fmt: skip


def outlier_lines(result: dict) -> list[str]:
    """A line per phase that ran: PostgreSQL's checkpoints and WAL syncs in it, and when its
    slowest requests ended (loadtest_outliers.py); none for a run without these figures."""
    stats = result.get("phase_stats", {})
    return [
        f"{label:<10}{_checkpoint_text(stats[name])}; {_wal_text(stats[name])}; "
        f"{_slow_text(stats[name]['slow'])}"
        for name, label in STAT_PHASES.items()
        if name in stats
    ]


def _checkpoint_text(s: dict) -> str:
    if "checkpoints" not in s:
        return "checkpoints not read"
    times = (s["checkpoint_write_ms"], s["checkpoint_sync_ms"])
    ended = f" (write {times[0] / 1000:.2f} s, sync {times[1] / 1000:.2f} s)" if any(times) else ""
    return f"checkpoints {s['checkpoints']:.0f}{ended}"


def _wal_text(s: dict) -> str:
    if "wal_syncs" not in s:
        return "WAL syncs not read"
    timed = f" ({s['wal_sync_ms']:.1f} ms)" if "wal_sync_ms" in s else ""
    return f"WAL syncs {s['wal_syncs']:.0f}{timed}"


def _slow_text(slow: dict) -> str:
    if not slow["requests"]:
        return "no request"
    n = slow["slow"]
    return (f">= p99 {slow['p99_ms']:.1f} ms: {n} request{'s' if n != 1 else ''}, "
            f"{slow['densest_share']:.0%} within {CLUSTER_SPAN_S:g} s "
            f"(from {slow['densest_at_s']:.1f} s); worst {slow['worst_ms']:.1f} ms at "
            f"{slow['worst_at_s']:.1f} s")  # fmt: skip


def outlier_legend(result: dict) -> list[str]:
    """What the per-phase lines of `outlier_lines` show, and what this server could not give."""
    if "phase_stats" not in result:
        return []
    legend = [
        "(per phase, read in the same run: PostgreSQL's checkpoints begun in the phase, with the "
        "write and sync time of those that ended in it, and its WAL fsyncs, all of the server's "
        "databases; the phase's requests of every kind at or above their p99 together, the "
        "largest share of them that ended within one second and when, and the slowest request; "
        "seconds from the phase's start)"
    ]
    if result.get("db_not_read"):
        legend.append(f"(not read: {'; '.join(result['db_not_read'])})")
    return legend


def paced_miss_line(s: dict) -> str:
    """Whether a checkpoint overlapped the paced phase and whether its slow requests were
    clustered in time: what a missed paced p99 target is read with."""
    if "checkpoints" not in s:
        checkpoint = "checkpoints not read"
    elif s["checkpoints"] or s["checkpoint_write_ms"] or s["checkpoint_sync_ms"]:
        checkpoint = (f"a checkpoint overlapped the paced phase ({s['checkpoints']:.0f} begun in "
                      f"it; write {s['checkpoint_write_ms'] / 1000:.2f} s, "
                      f"sync {s['checkpoint_sync_ms'] / 1000:.2f} s)")  # fmt: skip
    else:
        checkpoint = "no checkpoint overlapped the paced phase"
    slow, together = s["slow"], clustered(s["slow"])
    n = f"the {slow['slow']} at or above its p99"
    if together is None:
        timing = ("too few slow requests to tell whether they were clustered in time "
                  f"({slow['slow']} at or above its p99)")  # fmt: skip
    elif together:
        timing = (
            f"its slowest requests were clustered in time ({slow['densest_share']:.0%} of "
            f"{n} ended within {CLUSTER_SPAN_S:g} s, from {slow['densest_at_s']:.1f} s)"
        )
    else:
        timing = (
            f"its slowest requests were spread out (at most {slow['densest_share']:.0%} of "
            f"{n} ended within any {CLUSTER_SPAN_S:g} s)"
        )
    return f"  paced p99 missed: {checkpoint}; {timing}"


def _settings_line(cfg: LoadConfig) -> str:
    """The run's settings: participants, server, each phase's length."""
    return (
        f"participants={cfg.participants} in {cfg.client_processes} client processes "
        f"gunicorn={cfg.workers}x{cfg.threads} gthread "
        f"phases: reference {cfg.reference_duration:.3g}s, answers {cfg.duration / 2:.3g}s and "
        f"bare write {cfg.reference_duration:.3g}s (alternated, {ROUNDS} rounds), "
        f"loop {cfg.duration:.3g}s"
        + (f", paced {cfg.duration:.3g}s (think {cfg.think:.3g}s)" if cfg.think else "")
        + f" kill_worker={cfg.kill_worker}"
    )


_HEADER = (
    f"{'phase':<10}{'request':<29}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    f"{'errors':>8}{'vs healthz':>12}   CPU ms/req (gunicorn / postgres / clients)  busy "
    "steal"
)
_LEGEND = (
    "(requests: answered in the phase, each timed from its first attempt to its answer, "
    "retries included; errors: failed attempts (timeout, reset, 5xx), each retried, none "
    "counted in requests)",
    "(CPU ms/req: CPU per request of the phase in gunicorn's workers, in PostgreSQL (when it "
    "runs on this machine) and in the client processes; busy: share of all cores in use; "
    "steal: share the hypervisor gave to other machines (a run slowed from outside))",
)


def _phase_row(result: dict, phase: str, kind: str, label: str, ref: float) -> str:
    """One request kind's figures; `ref` is /healthz's throughput."""
    f = result["figures"]
    x = f[kind]
    ratio = x["rps"] / ref if ref else float("nan")
    n_phase = sum(f[k]["requests"] for p, k, _ in ROWS if p == phase and k in f)
    per_req = _cpu_column(result, phase, n_phase, x["seconds"])
    return (f"{phase:<10}{label:<29}{x['requests']:>9}{x['rps']:>9.1f}"
            f"{x['p50_ms']:>9.1f}{x['p99_ms']:>9.1f}{x['errors']:>8}{ratio:>12.2f}"
            f"   {per_req}")  # fmt: skip


def _target_lines(cfg: LoadConfig, t: dict) -> list[str]:
    """The targets (`targets`' dict) and whether each was met."""
    return [
        f"target: answer submission >= {THROUGHPUT_TARGET:g} x healthz throughput, both "
        f"saturated: {t['answer_ratio']:.2f} -> {'met' if t['answer_ratio_met'] else 'NOT met'}",
        f"  a bare durable write (one INSERT shaped like an answer, none of its checks) reaches "
        f"{t['write_ratio']:.2f} x healthz; the answer reaches {t['answer_vs_write']:.2f} x "
        "the bare write",
        (
            f"target: p99 < {P99_TARGET_MS:g} ms at the paced load: "
            f"{t['paced_p99_unmeasured'] or format(t['paced_p99_ms'], '.1f') + ' ms'} -> "
            f"{'met' if t['paced_p99_met'] else 'NOT met'}"
        )
        if cfg.think
        else "target: p99 at a paced load: not measured (--think 0)",
    ]


def _count_lines(result: dict) -> list[str]:
    """Answers and writes acknowledged and stored, participants, retries, failures."""
    return [
        f"answers acknowledged={result['acknowledged']} (unique {result['acknowledged_unique']}) "
        f"stored={result['stored']} (unique participant+trial {result['stored_unique']}) "
        f"acked-not-stored={result['acked_not_stored']} "
        f"stored-not-acked={result['stored_not_acked']}; bare writes acknowledged="
        f"{result.get('writes_acknowledged', 0)} stored={result.get('writes_stored', 0)}",
        f"participants who entered inside a timed phase (spares used up): "
        f"{result['entered_in_phase']}",
        _assign_line(result["figures"].get(ASSIGN)),
        "failed attempts (retried) by kind and reason: "
        + (", ".join(f"{k} x{n}" for k, n in result["error_reasons"].items()) or "none"),
        f"killed workers={result['killed_workers'] or 'none'} flow errors={result['flow_errors']}"
        f" client failures={_client_failures(result)} stuck threads={result['stuck_threads']}",
    ]


def _verdict(failed: list[str]) -> str:
    """The last line: PASS, or FAIL and the checks that failed (`failures`)."""
    return "RESULT: " + (
        f"FAIL: {'; '.join(failed)}"
        if failed
        else "PASS (acknowledged == stored, no duplicates, every phase ran)"
    )
