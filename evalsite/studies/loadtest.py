"""Load benchmark: simulated participants against gunicorn on PostgreSQL, over loopback HTTP.

One run, all in this process except the server (the clients are in loadtest_client.py):
1. a study with file-less clips and main trials (no screening, practice or catch trials) is made;
2. gunicorn (gthread workers) is started on 127.0.0.1 with the same DATABASE_URL, DEBUG off and
   persistent database connections, as a child process;
3. setup: every simulated participant enters by the study link and walks the real flow (browser
   check, consent, questionnaire, calibration, instructions) up to its first trial (not timed);
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
   A participant who runs out of trials enters again under a new id.
5. the answers each client saw acknowledged are compared with the answers stored in the
   database; the study is deleted afterwards.

Everything is bounded: request timeouts, phase durations, a join timeout, and the server is
terminated in a `finally`. Figures are printed by `format_report`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.loadtest_client import (
    REQUEST_TIMEOUT_S,
    RETRIES,
    ROUNDS,
    LoadTestError,
    Participant,
    Recorder,
    participant_thread,
)
from evalsite.studies.models import Answer, Study, Trial


@dataclass(frozen=True)
class LoadConfig:
    participants: int = 200
    duration: float = 30.0  # trial phase, seconds
    reference_duration: float = 10.0  # /healthz phase, seconds
    trials: int = 60  # main trials in the study (each participant answers all, then re-enters)
    workers: int = 3
    threads: int = 4
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
                      "languages": ["en"]},
        )  # fmt: skip
        Trial.objects.bulk_create(
            Trial(study=study, instrument=("drums", "bass")[i % 2], reference=clips[i],
                  candidate_a=clips[i + 1], candidate_b=clips[i + 2],
                  model_choice="ab"[i % 2], model_margin=0.1)
            for i in range(n_trials)
        )  # fmt: skip
    return study


def database_url() -> str:
    """The URL of the database this process uses (under pytest: the test database)."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{'@' if auth else ''}{host}{port}/{quote(db['NAME'], safe='')}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cfg: LoadConfig, port: int, log_path: Path) -> subprocess.Popen:
    """gunicorn on loopback with DEBUG off and persistent DB connections; waits for /healthz."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url(), DEBUG="false", DB_CONN_MAX_AGE="60",
               LOG_LEVEL="WARNING", ALLOWED_HOSTS="127.0.0.1,localhost")  # fmt: skip
    command = [
        sys.executable, "-m", "gunicorn", "evalsite.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(cfg.workers),
        "--worker-class", "gthread", "--threads", str(cfg.threads), "--backlog", "2048",
        "--timeout", "30", "--graceful-timeout", "5", "--keep-alive", "30",
        "--no-control-socket",  # several servers on one machine would share the default socket
    ]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process in stop_server)
    server = subprocess.Popen(
        command, env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    server.log_file = log
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise LoadTestError(f"gunicorn exited with {server.returncode}; see {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop_server(server)
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


def _cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU seconds of each of these processes (Linux /proc; gone ones left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process just exited
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return seconds


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots by the processes alive at the second one
    (one that started in between counts whole; one that exited in between is not seen)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def worker_cpu_seconds(server: subprocess.Popen) -> dict[int, float]:
    return _cpu_seconds(worker_pids(server))


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process on this machine (none when it runs
    elsewhere or its processes cannot be read)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" (", 1)[1].startswith("postgres)"):
                pids.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return _cpu_seconds(pids)


def run(cfg: LoadConfig, out=print) -> dict:
    """Run the benchmark; returns the figures (see `format_report`)."""
    check_database()
    study = make_study(cfg.trials)
    workdir = Path(tempfile.mkdtemp(prefix="csn-loadtest-"))
    port = free_port()
    out(f"study {study.pk}: {cfg.trials} trials; gunicorn {cfg.workers}x{cfg.threads} gthread "
        f"on 127.0.0.1:{port}; log {workdir / 'gunicorn.log'}")  # fmt: skip
    server = None
    try:
        server = start_server(cfg, port, workdir / "gunicorn.log")
        result = _drive(cfg, study, server, f"http://127.0.0.1:{port}", out)
    finally:
        if server is not None:
            stop_server(server)
        if not cfg.keep:
            try:
                _delete(study)
            except DatabaseError as exc:  # keep the figures; say what is left behind
                out(f"could not delete study {study.pk} ({exc}); delete it in the admin")
    if not cfg.keep:  # the server log is kept only when something went wrong
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _drive(cfg, study, server, base, out) -> dict:
    rec = Recorder()
    barrier = threading.Barrier(cfg.participants + 1, timeout=cfg.setup_timeout)
    names = [f"{kind}{r}" for r in range(ROUNDS) for kind in ("healthz", "answers")]
    stops = {name: threading.Event() for name in [*names, "loop", "paced"]}
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=participant_thread,
            args=(
                Participant(base, study.slug, rec),
                rec,
                barrier,
                stops,
                errors,
                cfg.think,
                cfg.trials,
            ),
            daemon=True,
        )  # fmt: skip
        for _ in range(cfg.participants)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        barrier.wait()  # every participant is at its first trial
    except threading.BrokenBarrierError:
        for stop in stops.values():
            stop.set()
        raise LoadTestError(f"setup failed: {errors[:3] or 'timed out'}") from None
    out(f"setup: {cfg.participants} participants at their first trial "
        f"in {time.monotonic() - t0:.1f} s")  # fmt: skip
    phases, cpu, killed = {}, {}, []
    schedule = []
    for r in range(ROUNDS):
        schedule += [(f"healthz{r}", ["healthz"], cfg.reference_duration / ROUNDS),
                     (f"answers{r}", ["answer"], cfg.duration / 2 / ROUNDS)]  # fmt: skip
    schedule.append(("loop", ["loop_trial_page", "loop_answer"], cfg.duration))
    if cfg.think:
        schedule.append(("paced", ["paced_trial_page", "paced_answer"], cfg.duration))
    for i, (name, kinds, seconds) in enumerate(schedule):
        if i:
            barrier.wait()  # every thread finished the previous phase's last request
        before = worker_cpu_seconds(server), postgres_cpu_seconds()
        window = _phase(cfg, name, seconds, stops[name], server, killed, out)
        base = name.rstrip("0123456789")
        used = (cpu_used(before[0], worker_cpu_seconds(server)),
                cpu_used(before[1], postgres_cpu_seconds()))  # fmt: skip
        cpu[base] = cpu.get(base, 0.0) + used[0]
        cpu[f"{base}_postgres"] = cpu.get(f"{base}_postgres", 0.0) + used[1]
        for kind in kinds:
            phases.setdefault(kind, []).append(window)
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT_S * RETRIES)
    stuck = sum(t.is_alive() for t in threads)
    result = summarise(rec, study, phases, killed, errors, stuck)
    result["cpu_s"] = cpu
    return result


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


def summarise(rec, study, phases, killed, errors, stuck) -> dict:
    figures = {}
    for kind, windows in phases.items():
        # requests that completed inside the phase's windows; latencies in ms
        lat = np.asarray(
            [s for t, s in rec.latencies[kind] if any(a <= t <= b for a, b in windows)]
        )
        lat = lat * 1000
        seconds = sum(b - a for a, b in windows)
        figures[kind] = {
            "requests": int(lat.size),
            "rps": lat.size / seconds,
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
            "errors": rec.errors.get(kind, 0),
        }
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
        "acknowledged": len(rec.acked),
        "acknowledged_unique": len(acked),
        "stored": len(stored),
        "stored_unique": len({(token, trial) for token, _, trial in stored}),
        "acked_not_stored": len(acked - stored_keys),
        "stored_not_acked": len(stored_keys - acked),
        "killed_workers": killed,
        "client_errors": errors[:5],
        "stuck_threads": stuck,
    }


def passed(result: dict) -> bool:
    """Every acknowledged answer stored once, no duplicates, no client failure."""
    return (
        result["acknowledged"] == result["acknowledged_unique"] == result["stored"]
        and result["stored"] == result["stored_unique"]
        and result["acked_not_stored"] == 0
        and not result["client_errors"]
        and result["stuck_threads"] == 0
    )


# (phase, request kind in the Recorder, what the row shows)
ROWS = [
    ("reference", "healthz", "GET /healthz (trivial view)"),
    ("answers", "answer", "POST answer, back to back"),
    ("loop", "loop_trial_page", "GET trial page"),
    ("loop", "loop_answer", "POST answer"),
    ("paced", "paced_trial_page", "GET trial page"),
    ("paced", "paced_answer", "POST answer"),
]
THROUGHPUT_TARGET = 0.5  # answer submission / trivial view, both saturated
P99_TARGET_MS = 50.0  # at the paced (listener-like) load


def targets(result: dict) -> dict:
    """The issue's two targets, read from a run: answer throughput ratio and paced p99."""
    f = result["figures"]
    ref = f["healthz"]["rps"]
    ratio = f["answer"]["rps"] / ref if ref else float("nan")
    paced = [f[k]["p99_ms"] for k in ("paced_trial_page", "paced_answer") if k in f]
    p99 = max(paced) if paced else float("nan")
    return {"answer_ratio": ratio, "answer_ratio_met": ratio >= THROUGHPUT_TARGET,
            "paced_p99_ms": p99, "paced_p99_met": bool(paced) and p99 < P99_TARGET_MS}  # fmt: skip


def format_report(cfg: LoadConfig, result: dict) -> str:
    f = result["figures"]
    ref = f["healthz"]["rps"]
    lines = [
        f"participants={cfg.participants} gunicorn={cfg.workers}x{cfg.threads} gthread "
        f"phases: reference {cfg.reference_duration:g}s and answers {cfg.duration / 2:g}s "
        f"(alternated, {ROUNDS} rounds), "
        f"loop {cfg.duration:g}s"
        + (f", paced {cfg.duration:g}s (think {cfg.think:g}s)" if cfg.think else "")
        + f" kill_worker={cfg.kill_worker}",
        f"{'phase':<10}{'request':<29}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'vs healthz':>12}{'CPU ms/req':>14}",
    ]
    cpu = result.get("cpu_s", {})
    for phase, kind, label in ROWS:
        if kind not in f:
            continue
        x = f[kind]
        ratio = x["rps"] / ref if ref else float("nan")
        phase_key = "healthz" if phase == "reference" else phase
        n_phase = sum(f[k]["requests"] for p, k, _ in ROWS if p == phase and k in f)
        per_req = "-"
        if phase_key in cpu and n_phase and not result["killed_workers"]:
            ms = [1000 * cpu[k] / n_phase for k in (phase_key, f"{phase_key}_postgres")]
            per_req = f"{ms[0]:.2f} / {ms[1]:.2f}"
        lines.append(f"{phase:<10}{label:<29}{x['requests']:>9}{x['rps']:>9.1f}"
                     f"{x['p50_ms']:>9.1f}{x['p99_ms']:>9.1f}{x['errors']:>8}{ratio:>12.2f}"
                     f"{per_req:>14}")  # fmt: skip
    t = targets(result)
    lines += [
        "(CPU ms/req: CPU per request of the phase in gunicorn's workers / in PostgreSQL when it "
        "runs on this machine; the clients' not included)",
        f"target: answer submission >= {THROUGHPUT_TARGET:g} x healthz throughput, both "
        f"saturated: {t['answer_ratio']:.2f} -> {'met' if t['answer_ratio_met'] else 'NOT met'}",
        (
            f"target: p99 < {P99_TARGET_MS:g} ms at the paced load: {t['paced_p99_ms']:.1f} ms -> "
            f"{'met' if t['paced_p99_met'] else 'NOT met'}"
        )
        if cfg.think
        else "target: p99 at a paced load: not measured (--think 0)",
        f"answers acknowledged={result['acknowledged']} (unique {result['acknowledged_unique']}) "
        f"stored={result['stored']} (unique participant+trial {result['stored_unique']}) "
        f"acked-not-stored={result['acked_not_stored']} "
        f"stored-not-acked={result['stored_not_acked']}",
        f"killed workers={result['killed_workers'] or 'none'} flow errors={result['flow_errors']}"
        f" client failures={len(result['client_errors'])} stuck threads={result['stuck_threads']}",
        f"RESULT: {'PASS' if passed(result) else 'FAIL'} (acknowledged == stored, no duplicates)",
    ]
    lines += [f"  client failure: {e}" for e in result["client_errors"]]
    return "\n".join(lines)


def _delete(study: Study) -> None:
    catalogue = study.catalogue
    study.delete()  # trials, participants, slots, answers cascade
    if catalogue is not None:
        catalogue.delete()
