"""Load benchmark: simulated participants against gunicorn on PostgreSQL, over loopback HTTP.

One run; this process coordinates, the server and the clients are child processes:
1. a study with file-less clips and main trials (no screening, practice or catch trials) is made;
2. gunicorn (gthread workers) is started on 127.0.0.1 with the same DATABASE_URL, DEBUG off and
   persistent database connections;
3. setup (untimed): the simulated participants, spread over `client_processes` processes
   (loadtest_client.py), enter by the study link and walk the real flow (browser check, consent,
   questionnaire, calibration, instructions) up to their first trial; each thread also enters
   `spares_per_thread` more participants into its process's pool, from which a thread whose
   participant has answered every trial takes the next, so that no entry (which assigns a
   trial list) falls inside a timed phase; once all entered, the participant of every thread
   answers its first trial (the tables are analyzed with answers in them, as in a study under
   way: docs/experimenter.md, "Database upkeep");
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
   and the whole machine, so a reader sees which part was the bottleneck.
5. the answers each client saw acknowledged are compared with the answers stored in the
   database; the study is deleted afterwards.

Everything is bounded: request timeouts, phase durations, barrier and join timeouts, and the
server and clients are stopped in a `finally`, also on SIGTERM or SIGHUP (`exiting_on_signals`);
a client process stops by itself when this one dies without cleanup. Figures are printed by
`loadtest_report.format_report`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.loadtest_client import (
    ASSIGN,
    ENTERED_IN_PHASE,
    REQUEST_TIMEOUT_S,
    RETRIES,
    ROUNDS,
    ClientPlan,
    LoadTestError,
    Recorder,
    client_process,
)
from evalsite.studies.models import Answer, Assignment, Participant, Study, Trial


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


def check_database() -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise LoadTestError(
            f"DATABASE_URL: the load benchmark runs on PostgreSQL; got engine {engine!r}. "
            "Set DATABASE_URL=postgresql://user@host:5432/dbname"
        )


def make_study(n_trials: int) -> Study:
    """An open study with `n_trials` main trials on drums and bass, nothing else in the flow."""
    user, _ = get_user_model().objects.get_or_create(username="loadtest")
    tag = secrets.token_hex(4)
    with transaction.atomic():
        catalogue = Catalogue.objects.create(owner=user, name=f"loadtest {tag}")
        clips = Clip.objects.bulk_create(
            Clip(catalogue=catalogue, name=f"load{i:03d}.wav", status=Clip.Status.READY,
                 duration_s=5.0, sample_rate=22050, loudness_lufs=-23.0, sha256="0" * 64)
            for i in range(max(n_trials, 3) + 2)
        )  # fmt: skip
        study = Study.objects.create(
            owner=user, name=f"loadtest {tag}", catalogue=catalogue, status=Study.Status.OPEN,
            instruments=["drums", "bass"], consent_text="Load test.",
            settings={"screening": False, "huggins": False, "practice_trials": 0,
                      "catch": {"identical": 0, "attention": 0, "repeat": 0},
                      "target_answers_per_trial": 1_000_000, "refuse_phones": False,
                      "languages": ["en"], "min_listen_share": 0},
        )  # fmt: skip
        # min_listen_share 0: the clients answer as soon as a page is shown instead of playing
        # its clips; every answer still runs the listening check (`answerable_ms`), at 0 ms.
        Trial.objects.bulk_create(
            Trial(study=study, instrument=("drums", "bass")[i % 2], reference=clips[i],
                  candidate_a=clips[i + 1], candidate_b=clips[i + 2],
                  model_choice="ab"[i % 2], model_margin=0.1)
            for i in range(n_trials)
        )  # fmt: skip
    return study


def create_write_table(study: Study) -> str:
    """The table the bare-write reference fills: the answers' columns, defaults, checks and
    indexes (unique (participant, trial) included), without their foreign keys."""
    name = f"loadtest_bare_write_{study.pk}"
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {qn(name)} (LIKE {qn(Answer._meta.db_table)} INCLUDING ALL)")
    return name


def write_table_rows(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(name)}")
        return cursor.fetchone()[0]


def drop_write_table(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}")


def database_url(db: dict | None = None) -> str:
    """The URL of `db` (a DATABASES entry; default: the database this process uses, under
    pytest the test database), for the server's settings to read back."""
    db = db or settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    if host.startswith("/"):  # a Unix socket's directory: %2F-quoted in a URL
        host = quote(host, safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{'@' if auth else ''}{host}{port}/{quote(db['NAME'], safe='')}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONN_MAX_AGE_S = 60  # the server keeps its database connections this long (persistent)
KEEP_ALIVE_S = 30  # gunicorn closes a keep-alive connection idle this long (the clients: 20 s)


def start_server(cfg: LoadConfig, port: int, log_path: Path, write_table: str) -> subprocess.Popen:
    """gunicorn on loopback with DEBUG off and persistent DB connections, the site plus the
    bare-write reference (loadtest_settings.py) writing `write_table`; waits for /healthz."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url(), DEBUG="false", DB_CONN_MAX_AGE=str(CONN_MAX_AGE_S),
               LOG_LEVEL="WARNING", ALLOWED_HOSTS="127.0.0.1,localhost",
               DJANGO_SETTINGS_MODULE="evalsite.studies.loadtest_settings",
               CSN_LOADTEST_WRITE_TABLE=write_table)  # fmt: skip
    command = [
        sys.executable, "-m", "gunicorn", "evalsite.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(cfg.workers),
        "--worker-class", "gthread", "--threads", str(cfg.threads), "--backlog", "2048",
        "--timeout", "30", "--graceful-timeout", "5", "--keep-alive", str(KEEP_ALIVE_S),
        "--no-control-socket",  # several servers on one machine would share the default socket
    ]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process in stop_server)
    server = subprocess.Popen(
        command, env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    server.log_file = log
    try:
        _wait_until_served(server, port, log_path)
    except BaseException:  # Ctrl-C too: gunicorn runs in its own session, no one else stops it
        stop_server(server)
        raise
    return server


def _wait_until_served(server: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise LoadTestError(f"gunicorn exited with {server.returncode}; see {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise LoadTestError(f"gunicorn did not answer /healthz within 60 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)
    server.log_file.close()


def worker_pids(server: subprocess.Popen) -> list[int]:
    path = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _times(pid: int) -> list[int] | None:
    """utime, stime, cutime, cstime of a process in clock ticks (Linux /proc; None when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the process just exited
        return None
    return [int(x) for x in fields[11:15]]


def _cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU seconds of each of these processes (gone ones left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    return {pid: sum(t[:2]) / tick for pid in pids if (t := _times(pid)) is not None}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots by the processes alive at the second one
    (one that started in between counts whole; one that exited in between is not seen)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def worker_cpu_seconds(server: subprocess.Popen) -> dict[int, float]:
    return _cpu_seconds(worker_pids(server))


def machine_seconds() -> dict[str, float]:
    """CPU seconds all cores of this machine spent busy (user to softirq), and stolen by the
    hypervisor (a virtual machine's cores waiting for the host's: the run was slowed from
    outside), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    busy = sum(fields[:7]) - fields[3] - fields[4]  # user..softirq without idle and iowait
    return {"busy": busy / tick, "steal": fields[7] / tick}


def group_cpu_seconds(pids) -> float:
    """User + system CPU seconds of these processes together with their children that exited
    and were waited for (Linux /proc: cutime + cstime), so that a process exiting between two
    readings keeps its CPU in the group's total (gone ones left out)."""
    times = (_times(pid) for pid in pids)
    return sum(sum(t) for t in times if t is not None) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU seconds of the PostgreSQL server on this machine, as one total ({0: seconds}; {} when
    it runs elsewhere or its processes cannot be read). Its backends are children of the
    postmaster: one that exits (Django closed a connection older than DB_CONN_MAX_AGE) passes its
    CPU to the postmaster's cutime, where reading process by process would lose it."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" (", 1)[1].startswith("postgres)"):
                pids.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return {0: group_cpu_seconds(pids)} if pids else {}


def _exit_on_signal(signum, _frame) -> None:
    """SIGTERM (kill, `timeout`) and SIGHUP (a closed terminal) end a run as Ctrl-C does (the
    demo's way, evalsite/demo.py): through the `finally`s, which stop gunicorn (in a session of
    its own: no signal to this process's group reaches it) and the clients, and delete the study
    and the bare-write table."""
    raise SystemExit(128 + signum)


@contextmanager
def exiting_on_signals():
    """`_exit_on_signal` for SIGTERM and SIGHUP while the block (or decorated function) runs,
    the previous handlers back afterwards (only the main thread may set them: from another,
    nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@exiting_on_signals()
def run(cfg: LoadConfig, out=print) -> dict:
    """Run the benchmark; returns the figures (see `format_report`)."""
    check_database()
    spares_per_thread(cfg)  # a count setup could not enter is refused before anything is made
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


@contextmanager
def serving(cfg: LoadConfig, study: Study, log_path: Path, out):
    """gunicorn (`start_server`) with the bare-write table made for this run: yields (server,
    base URL, table name); the server is stopped and the table dropped on the way out (kept
    with --keep neither: it is no study's data)."""
    port, server, write_table = free_port(), None, None
    try:
        write_table = create_write_table(study)
        server = start_server(cfg, port, log_path, write_table)
        yield server, f"http://127.0.0.1:{port}", write_table
    finally:
        if server is not None:
            stop_server(server)
        try:
            if write_table is not None:
                drop_write_table(write_table)
        except DatabaseError as exc:
            out(f"could not drop table {write_table} ({exc}); drop it by hand")


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
# the study's lock, and the count of the fill they share (every 5 s, design.FILL_REUSE) grows
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
            barrier.wait()  # every participant is at its first trial
            barrier.wait()  # and the participant of every thread answered it
        except threading.BrokenBarrierError:
            raise _setup_failed(cfg, plan, stops, barrier, results, procs) from None
        out(f"setup: {cfg.participants} participants in {n_proc} client processes at their "
            f"first trial (then answered it), {plan.spares} more each entered ahead, "
            f"in {time.monotonic() - t0:.1f} s")  # fmt: skip
        maintain_tables("ANALYZE")  # the planner sees the rows setup wrote, as in a live study
        try:
            barrier.wait()  # go
        except threading.BrokenBarrierError:
            raise _setup_failed(cfg, plan, stops, barrier, results, procs) from None
        phases, cpu, killed, not_run = _run_phases(
            cfg, schedule, barrier, stops, server, procs, out
        )
        rec, errors, stuck = _collect(results, procs)
    except BaseException:  # a failure, Ctrl-C, SIGTERM: no figures wanted, the clients go now
        _end_clients(procs, grace=0.0)
        raise
    _end_clients(procs, grace=REQUEST_TIMEOUT_S)  # they sent their results: they are ending
    result = summarise(rec, study, phases, killed, errors, stuck)
    result["cpu_s"], result["phases_not_run"] = cpu, not_run
    return result


def _setup_failed(cfg, plan, stops, barrier, results, procs) -> LoadTestError:
    """The error of a setup that did not finish: a client's failure, or the timeout. The clients
    are told to stop first (a thread still entering its spares stops after the one it enters),
    so their results come at once."""
    for stop in stops.values():
        stop.set()
    barrier.abort()
    failures = [e for e in _collect(results, procs)[1] if e != NO_RESULTS]
    if failures:
        return LoadTestError(f"setup failed: {failures[:3]}")
    return LoadTestError(
        f"setup timed out: not every participant had entered, with {plan.spares} more per "
        f"client thread ahead, and answered its first trial within {cfg.setup_timeout:g} s"
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
    (gunicorn's workers, PostgreSQL, the clients, the whole machine), the killed workers, and
    the phases not run (the barrier before one broke: the run fails)."""
    phases, cpu, killed, not_run = {}, {}, [], []
    clients = [proc.pid for proc in procs]
    for i, (name, kinds, seconds) in enumerate(schedule):
        if i:
            try:
                barrier.wait()  # every thread finished the previous phase's last request
            except threading.BrokenBarrierError:
                # a client failed (its error comes with the results) or the wait timed out
                not_run = [later for later, _, _ in schedule[i:]]
                break
        before, n_killed = _cpu_snapshot(server, clients), len(killed)
        window = _phase(cfg, name, seconds, stops[name], server, killed, out)
        after = _cpu_snapshot(server, clients)
        base = name.rstrip("0123456789")
        for part in after if len(killed) == n_killed else ():  # a killed worker's CPU is lost
            used = cpu_used(before[part], after[part])
            cpu[f"{base}_{part}"] = cpu.get(f"{base}_{part}", 0.0) + used
        for kind in kinds:
            phases.setdefault(kind, []).append(window)
    return phases, cpu, killed, not_run


def _cpu_snapshot(server, clients) -> dict[str, dict[int, float]]:
    machine = machine_seconds()
    return {"gunicorn": worker_cpu_seconds(server), "postgres": postgres_cpu_seconds(),
            "clients": _cpu_seconds(clients), "machine": {0: machine["busy"]},
            "steal": {0: machine["steal"]}}  # fmt: skip


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


def _latency_figures(latencies_s: list[float], seconds: float, errors: int) -> dict:
    lat = np.asarray(latencies_s) * 1000  # ms
    return {
        "seconds": seconds,
        "requests": int(lat.size),
        "rps": lat.size / seconds if seconds else float("nan"),
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "errors": errors,
    }


def summarise(rec, study, phases, killed, errors, stuck) -> dict:
    figures = {}
    for kind, windows in phases.items():  # requests that completed inside the phase's windows
        lat = [s for t, s in rec.latencies[kind] if any(a <= t <= b for a, b in windows)]
        seconds = sum(b - a for a, b in windows)
        figures[kind] = _latency_figures(lat, seconds, rec.errors.get(kind, 0))
    # entering (setup, untimed): the POST that assigns a participant's trial list, all of them
    assign = [s for _, s in rec.latencies[ASSIGN]]
    figures[ASSIGN] = _latency_figures(assign, float("nan"), rec.errors.get(ASSIGN, 0))
    stored = list(
        Answer.objects.filter(participant__study=study).values_list(
            "participant__token", "trial_index", "trial_id"
        )
    )
    stored_keys = {(token, index) for token, index, _ in stored}
    acked = set(rec.acked)
    return {
        "figures": figures,
        "flow_errors": rec.errors.get("flow", 0),
        "entered_in_phase": rec.events.get(ENTERED_IN_PHASE, 0),
        "error_reasons": {k: n for k, n in sorted(rec.events.items()) if k != ENTERED_IN_PHASE},
        "acknowledged": len(rec.acked),
        "acknowledged_unique": len(acked),
        "stored": len(stored),
        "stored_unique": len({(token, trial) for token, _, trial in stored}),
        "acked_not_stored": len(acked - stored_keys),
        "stored_not_acked": len(stored_keys - acked),
        "writes_acknowledged": len(set(rec.writes)),
        "killed_workers": killed,
        "client_errors": errors[:5],
        "client_failures": len(errors),
        "stuck_threads": stuck,
    }


# What a run writes and deletes. PostgreSQL's autovacuum would vacuum and analyze them in time; a
# server with autovacuum off (this project's reference machine) keeps every deleted row until a
# VACUUM, and each later run then scans more dead rows and plans with stale statistics (runs
# here grew slower run after run, the slot table to 900,000 dead rows). So the benchmark
# analyzes them after setup and vacuums them after its study is deleted, whatever the server does.
TOUCHED_MODELS = (Answer, Assignment, Participant, Trial, Clip, Catalogue, Study)


def maintain_tables(command: str) -> None:
    """Run VACUUM (ANALYZE) or ANALYZE on the tables a run writes (outside a transaction)."""
    qn = connection.ops.quote_name
    tables = ", ".join(qn(model._meta.db_table) for model in TOUCHED_MODELS)
    with connection.cursor() as cursor:
        cursor.execute(f"{command} {tables}")


def enter_in_sequence(people, out, served_by: str) -> None:
    """Setup of the sequential modes (cost, in-process): every participant enters by the study
    link and answers its first trial, then the tables are analyzed with answers stored, as in
    the saturated run's setup."""
    t0 = time.monotonic()
    for p in people:
        p.enter()
    for p in people:
        p.answer_first()
    maintain_tables("ANALYZE")
    out(f"setup: {len(people)} participants at their first trial, answered, in "
        f"{time.monotonic() - t0:.1f} s; {served_by}")  # fmt: skip


def clean_up(study: Study, out) -> None:
    """Delete the run's study and vacuum what it wrote; a failure is said, not raised (the
    run's figures are kept)."""
    try:
        _delete(study)
        maintain_tables("VACUUM (ANALYZE)")
    except DatabaseError as exc:
        out(f"could not delete study {study.pk} ({exc}); delete it in the admin")


def _delete(study: Study) -> None:
    catalogue = study.catalogue
    study.delete()  # trials, participants, slots, answers cascade
    if catalogue is not None:
        catalogue.delete()
