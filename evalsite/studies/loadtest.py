"""Load benchmark: simulated participants against gunicorn on PostgreSQL, over loopback HTTP.

One run; this process coordinates, the server and the clients are child processes:
1. a study with file-less clips and main trials (no screening, practice or catch trials) is made;
2. gunicorn (gthread workers) is started on 127.0.0.1 with the same DATABASE_URL, DEBUG off and
   persistent database connections;
3. setup (untimed): the simulated participants, spread over `client_processes` processes
   (loadtest_processes.py, loadtest_client.py), enter by the study link and walk the real flow
   (browser check, consent, questionnaire, calibration, instructions) up to their first trial;
   each thread also enters `spares_per_thread` more participants into its process's pool, from
   which a thread whose participant has answered every trial takes the next, so that no entry
   (which assigns a trial list) falls inside a timed phase; once all entered, the participant of
   every thread answers its first trial (the tables are analyzed with answers in them, as in a
   study under way: docs/experimenter.md, "Database upkeep");
4. phases, all threads together, each started once every thread finished the previous one:
   - reference: GET /healthz (a trivial Django view) back to back;
   - answers: POST the next answer back to back (answer submission alone, saturated; compared
     with the reference for the throughput target); reference and answers alternate, ROUNDS
     times, so a drift in the machine's speed during the run weighs on both alike;
   - loop: GET trial page -> POST answer back to back (the real sequence, saturated); with
     `kill_worker` one gunicorn worker gets SIGKILL half-way through (the master starts another);
   - paced (`think` > 0): the same loop with `think` seconds (jittered) between a trial page and
     its answer, like listeners (the latency target is read here: a saturated server's p99 is
     its queue, not its speed).
   The CPU each phase used is read from /proc for gunicorn's workers, PostgreSQL, the clients
   and the whole machine, so a reader sees which part was the bottleneck; PostgreSQL's
   checkpoints and WAL syncs in each phase, and when its slowest requests ended, are read too
   (loadtest_outliers.py), so an outlier can be judged from the same run.
5. the answers each client saw acknowledged are compared with the answers stored in the
   database; the study is deleted afterwards.

Everything is bounded: request timeouts, phase durations, barrier and join timeouts, and the
server and clients are stopped in a `finally`, also on SIGTERM or SIGHUP (`exiting_on_signals`);
a client process stops by itself when this one dies without cleanup. Figures are printed by
`loadtest_report.format_report`.

This module holds the run's configuration and its coordination (spares, phases, the client
processes, their results); gunicorn, the bare-write table and the signal handling are in
loadtest_server.py, the CPU readings in loadtest_cpu.py, and the study (made, analyzed, its
answers checked, deleted) in loadtest_study.py.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from evalsite.studies.loadtest_client import ASSIGN, REQUEST_TIMEOUT_S, RETRIES, LoadTestError
from evalsite.studies.loadtest_cpu import cpu_snapshot, cpu_used
from evalsite.studies.loadtest_outliers import db_not_read, db_snapshot, db_used, slow_cluster
from evalsite.studies.loadtest_processes import ROUNDS, ClientPlan, client_process
from evalsite.studies.loadtest_recorder import Recorder
from evalsite.studies.loadtest_server import (
    exiting_on_signals,
    serving,
    worker_pids,
    write_table_rows,
)
from evalsite.studies.loadtest_study import (
    check_database,
    clean_up,
    maintain_tables,
    make_study,
    summarise,
)


@dataclass(frozen=True)
class LoadConfig:
    participants: int = 200
    duration: float = 30.0  # trial phase, seconds
    reference_duration: float = 10.0  # /healthz phase, seconds
    trials: int = 60  # main trials in the study (each participant answers all, then a spare)
    workers: int = 3
    threads: int = 4
    client_processes: int = 4  # the simulated participants are spread over these processes
    spares: int | None = None  # participants per thread entered ahead (None: spares_per_thread)
    kill_worker: bool = False
    think: float = 5.0  # paced phase: mean seconds between a trial page and its answer (0: none)
    setup_timeout: float = 180.0
    keep: bool = False  # keep the study (and its answers) in the database afterwards


@exiting_on_signals()
def run(cfg: LoadConfig, out=print) -> dict:
    """Run the benchmark; returns the figures (see `format_report`)."""
    spares_per_thread(cfg)  # a count setup could not enter is refused before anything is made
    check_database()
    study = make_study(cfg.trials)
    workdir = Path(tempfile.mkdtemp(prefix="csn-loadtest-"))
    try:
        with serving(cfg, study, workdir / "gunicorn.log", out) as (server, base, write_table):
            out(f"study {study.pk}: {cfg.trials} trials; gunicorn {cfg.workers}x{cfg.threads} "
                f"gthread on {base}; log {workdir / 'gunicorn.log'}")  # fmt: skip
            result = _drive(cfg, study, server, base, out)
            result["writes_stored"] = write_table_rows(write_table)
    finally:
        if not cfg.keep:
            clean_up(study, out)
    if not cfg.keep:  # the server log is kept only when something went wrong
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _schedule(cfg: LoadConfig) -> list[tuple[str, list[str], float]]:
    """(phase name, request kinds counted in it, seconds), in the order the clients run them."""
    schedule = []
    for r in range(ROUNDS):
        schedule += [(f"healthz{r}", ["healthz"], cfg.reference_duration / ROUNDS),
                     (f"answers{r}", ["answer"], cfg.duration / 2 / ROUNDS),
                     (f"write{r}", ["write"], cfg.reference_duration / ROUNDS)]  # fmt: skip
    schedule.append(("loop", ["loop_trial_page", "loop_answer"], cfg.duration))
    if cfg.think:
        schedule.append(("paced", ["paced_trial_page", "paced_answer"], cfg.duration))
    return schedule


# An upper bound on the answers per second the server takes (2-core machines measured 460-540 on
# 2026-12-03 and up to 1,320 on 2026-12-04, a faster CPU; at the old bound of 1,000, 82
# participants ran out of trials and entered inside a timed phase): each thread enters enough
# participants in setup to answer at this rate through every phase, so that no participant enters
# (and is assigned its trials) inside a timed phase. Not higher than needed: entries queue for
# the study's lock, and the count of the fill they share (every 5 s, design_fill.FILL_REUSE) grows
# with the participants entered, so setup time grows faster than the entries.
MAX_ANSWER_RATE = 1600.0
# The most participants a client thread enters ahead (--spares): more than setup enters in its
# timeout (LoadConfig.setup_timeout) on the machines measured.
MAX_SPARES = 100


def spares_per_thread(cfg: LoadConfig) -> int:
    """Participants each client thread enters in setup beyond its first (see MAX_ANSWER_RATE);
    LoadTestError above MAX_SPARES."""
    if cfg.spares is not None:
        return cfg.spares
    saturated = MAX_ANSWER_RATE * cfg.duration / cfg.participants  # answers phases + the loop
    # one answer per think time and listener, but not beyond the rate the server takes
    paced = min(cfg.duration / cfg.think, saturated) if cfg.think else 0.0
    spares = max(math.ceil((saturated + paced) / cfg.trials) - 1, 0)
    if spares > MAX_SPARES:
        raise LoadTestError(
            f"setup would enter {spares} participants per client thread ahead (--spares), above "
            f"{MAX_SPARES}: enough for {MAX_ANSWER_RATE:g} answers/s from {cfg.participants} "
            f"participants for {cfg.duration:g} s, {cfg.trials} trials each. Raise --trials or "
            "--participants, shorten --duration, or set --spares"
        )
    return spares


def _drive(cfg, study, server, base, out) -> dict:
    ctx = multiprocessing.get_context("spawn")  # no child inherits this process's DB connections
    n_proc = max(min(cfg.client_processes, cfg.participants), 1)
    shares = [cfg.participants // n_proc + (i < cfg.participants % n_proc) for i in range(n_proc)]
    schedule = _schedule(cfg)
    barrier = ctx.Barrier(n_proc + 1, timeout=cfg.setup_timeout)
    stops = {name: ctx.Event() for name, _, _ in schedule}
    results = ctx.Queue()
    plan = ClientPlan(base, study.slug, cfg.think, cfg.trials, spares=spares_per_thread(cfg),
                      last_phase=schedule[-1][0], coordinator=os.getpid())  # fmt: skip
    procs = [
        ctx.Process(target=client_process, args=(plan, n, barrier, stops, results), daemon=True)
        for n in shares
    ]
    t0 = time.monotonic()
    for proc in procs:
        proc.start()
    try:
        try:
            meet_clients(barrier)  # every participant is at its first trial
            meet_clients(barrier)  # and the participant of every thread answered it
        except threading.BrokenBarrierError:
            raise _setup_failed(cfg, plan, stops, barrier, results, procs) from None
        out(f"setup: {cfg.participants} participants in {n_proc} client processes at their "
            f"first trial (then answered it), {plan.spares} more each entered ahead, "
            f"in {time.monotonic() - t0:.1f} s")  # fmt: skip
        maintain_tables("ANALYZE")  # the planner sees the rows setup wrote, as in a live study
        try:
            meet_clients(barrier)  # go
        except threading.BrokenBarrierError:
            raise _setup_failed(cfg, plan, stops, barrier, results, procs) from None
        not_read = db_not_read()
        phases, cpu, killed, not_run, db = _run_phases(
            cfg, schedule, barrier, stops, server, procs, out
        )
        rec, errors, stuck = _collect(results, procs)
    except BaseException:  # a failure, Ctrl-C, SIGTERM: no figures wanted, the clients go now
        _end_clients(procs, grace=0.0)
        raise
    _end_clients(procs, grace=REQUEST_TIMEOUT_S)  # they sent their results: they are ending
    result = summarise(rec, study, phases, killed, errors, stuck)
    result["cpu_s"], result["phases_not_run"] = cpu, not_run
    result["phase_stats"], result["db_not_read"] = _phase_stats(schedule, rec, phases, db), not_read
    return result


def _phase_stats(schedule, rec: Recorder, phases: dict, db: dict) -> dict:
    """Per phase that ran (rounds together): PostgreSQL's counters during it (`db`) and when its
    slowest requests, of all its kinds, ended (loadtest_outliers.py)."""
    stats = {}
    for name, kinds, _ in schedule:
        base = name.rstrip("0123456789")
        if base in db and base not in stats:
            windows = phases[kinds[0]]  # every kind of a phase is counted in the same windows
            rows = [row for kind in kinds for row in rec.latencies.get(kind, [])]
            stats[base] = db[base] | {"slow": slow_cluster(rows, windows)}
    return stats


def meet_clients(barrier) -> None:
    """`barrier.wait()` (the client processes' barrier) in a thread of its own, joined here. A
    signal to the whole process group (`timeout`, a closed terminal) can kill a client process
    inside the barrier's bookkeeping, holding its lock: the coordinator, asleep in the barrier,
    got SIGTERM's SystemExit and then, unwinding, waited for that lock for ever (the wait's
    `finally` takes it back), so gunicorn and the study were never cleaned up. A thread's join
    is interrupted by the signal and takes no lock; the thread, a daemon, is left behind."""
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            barrier.wait()
        except BaseException as exc:  # noqa: BLE001 (raised again in the coordinator's thread)
            failed.append(exc)

    waiter = threading.Thread(target=wait, name="barrier", daemon=True)
    waiter.start()
    waiter.join()
    if failed:
        raise failed[0]


def _setup_failed(cfg, plan, stops, barrier, results, procs) -> LoadTestError:
    """The error of a setup that did not finish: a client's failure, or the timeout. The clients
    are told to stop first (a thread still entering its spares stops after the one it enters),
    so their results come at once."""
    for stop in stops.values():
        stop.set()
    barrier.abort()
    rec, errors, _ = _collect(results, procs)
    failures = [e for e in errors if e != NO_RESULTS]
    if failures:
        return LoadTestError(f"setup failed: {failures[:3]}")
    # each entry posts the instructions (ASSIGN) once: how far setup got, to size the next run
    entered, planned = len(rec.latencies[ASSIGN]), cfg.participants * (1 + plan.spares)
    return LoadTestError(
        f"setup timed out: not every participant had entered, with {plan.spares} more per "
        f"client thread ahead, and answered its first trial within {cfg.setup_timeout:g} s "
        f"({entered} of {planned} entered)"
    )


def _end_clients(procs, grace: float) -> None:
    """Give the client processes `grace` seconds in all to end, and kill those left. The stop
    events and the barrier are not touched: setting or breaking one waits until every process
    sleeping on it woke, and one that died there (a signal to the whole process group, as from
    `timeout` or a closed terminal) never does."""
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(timeout=max(deadline - time.monotonic(), 0.1))
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=REQUEST_TIMEOUT_S)


def _run_phases(cfg, schedule, barrier, stops, server, procs, out):
    """Run the phases; the windows each request kind is counted in, the CPU each phase used
    (gunicorn's workers, PostgreSQL, the clients, the whole machine), the killed workers, the
    phases not run (the barrier before one broke: the run fails), and PostgreSQL's checkpoints
    and WAL syncs in each phase (`db_snapshot`'s counters, rounds added up)."""
    phases, cpu, killed, not_run, db = {}, {}, [], [], {}
    clients = [proc.pid for proc in procs]
    for i, (name, kinds, seconds) in enumerate(schedule):
        if i:
            try:
                meet_clients(barrier)  # every thread finished the previous phase's last request
            except threading.BrokenBarrierError:
                # a client failed (its error comes with the results) or the wait timed out
                not_run = [later for later, _, _ in schedule[i:]]
                break
        before, n_killed, db_before = cpu_snapshot(server, clients), len(killed), db_snapshot()
        window = _phase(cfg, name, seconds, stops[name], server, killed, out)
        after, db_after = cpu_snapshot(server, clients), db_snapshot()
        base = name.rstrip("0123456789")
        for key, grown in db_used(db_before, db_after).items():
            db.setdefault(base, {})[key] = db.get(base, {}).get(key, 0.0) + grown
        for part in after if len(killed) == n_killed else ():  # a killed worker's CPU is lost
            used = cpu_used(before[part], after[part])
            cpu[f"{base}_{part}"] = cpu.get(f"{base}_{part}", 0.0) + used
        for kind in kinds:
            phases.setdefault(kind, []).append(window)
    return phases, cpu, killed, not_run, db


NO_RESULTS = "a client process sent no results"


def _collect(results, procs) -> tuple[Recorder, list[str], int]:
    """The figures every client process sent (waiting for each, bounded)."""
    rec, errors, stuck = Recorder(), [], 0
    for _ in procs:
        try:
            part = results.get(timeout=REQUEST_TIMEOUT_S * RETRIES + 30)
        except queue.Empty:
            errors.append(NO_RESULTS)
            continue
        rec.merge(part["rec"])
        errors += part["errors"]
        stuck += part["stuck"]
    return rec, errors, stuck


def _phase(cfg, name, seconds, stop, server, killed, out) -> tuple[float, float]:
    """Let the threads run phase `name` for `seconds` (killing a worker half-way through the
    trial loop with `kill_worker`); the (start, end) window its requests are counted in."""
    start = time.monotonic()
    if cfg.kill_worker and name == "loop":
        time.sleep(seconds / 2)
        pids = worker_pids(server)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            out(f"killed gunicorn worker {pids[0]} (SIGKILL) at {seconds / 2:.1f} s of the loop")
    time.sleep(max(seconds - (time.monotonic() - start), 0))
    stop.set()
    return start, time.monotonic()
