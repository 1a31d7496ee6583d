"""Load benchmark: simulated participants against gunicorn on PostgreSQL, over loopback HTTP.

One run, all in this process except the server (the clients are in loadtest_client.py):
1. a study with file-less clips and main trials (no screening, practice or catch trials) is made;
2. gunicorn (gthread workers) is started on 127.0.0.1 with the same DATABASE_URL, DEBUG off and
   persistent database connections, as a child process;
3. setup: every simulated participant enters by the study link and walks the real flow (browser
   check, consent, questionnaire, calibration, instructions) up to its first trial (not timed);
4. reference phase: every participant thread requests the trivial view /healthz back to back;
5. trial phase: every participant loops GET trial page -> POST answer (back to back, or
   `think` seconds apart on average, jittered);
   a participant who runs out of trials enters again under a new id. With `kill_worker`, one
   gunicorn worker gets SIGKILL half-way through this phase (the master starts a new one);
6. the answers each client saw acknowledged (the server moved it past the trial) are compared
   with the answers stored in the database; the study is deleted afterwards.

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
    think: float = 0.0  # mean seconds between a trial page and its answer (0: back to back)
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


def worker_cpu_seconds(server: subprocess.Popen) -> float:
    """User + system CPU time of the live gunicorn workers (Linux /proc)."""
    total = 0
    for pid in worker_pids(server):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the worker just exited
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


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
    healthz_stop, trials_stop = threading.Event(), threading.Event()
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=participant_thread,
            args=(
                Participant(base, study.slug, rec),
                rec,
                barrier,
                healthz_stop,
                trials_stop,
                errors,
                cfg.think,
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
        healthz_stop.set()
        trials_stop.set()
        raise LoadTestError(f"setup failed: {errors[:3] or 'timed out'}") from None
    out(f"setup: {cfg.participants} participants at their first trial "
        f"in {time.monotonic() - t0:.1f} s")  # fmt: skip
    cpu = {"start": worker_cpu_seconds(server)}
    phases = {"healthz": _phase(cfg.reference_duration, healthz_stop)}
    cpu["healthz"] = worker_cpu_seconds(server)
    barrier.wait()
    killed = _trial_phase(cfg, rec, server, trials_stop, phases, out)
    cpu["trials"] = worker_cpu_seconds(server)
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT_S * RETRIES)
    stuck = sum(t.is_alive() for t in threads)
    result = summarise(rec, study, phases, killed, errors, stuck)
    result["cpu_s"] = {"healthz": cpu["healthz"] - cpu["start"],
                       "trials": cpu["trials"] - cpu["healthz"]}  # fmt: skip
    return result


def _phase(seconds: float, stop: threading.Event) -> tuple[float, float]:
    """Let the threads run for `seconds`; the (start, end) window requests are counted in."""
    start = time.monotonic()
    time.sleep(seconds)
    stop.set()
    return start, time.monotonic()


def _trial_phase(cfg, rec, server, stop, phases, out) -> list[int]:
    start = time.monotonic()
    killed = []
    if cfg.kill_worker:
        time.sleep(cfg.duration / 2)
        pids = worker_pids(server)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            out(f"killed gunicorn worker {pids[0]} (SIGKILL) at {cfg.duration / 2:.1f} s")
    time.sleep(max(cfg.duration - (time.monotonic() - start), 0))
    stop.set()
    phases["trial_page"] = phases["answer"] = (start, time.monotonic())
    return killed


def summarise(rec, study, phases, killed, errors, stuck) -> dict:
    figures = {}
    for kind, (start, end) in phases.items():
        # requests that completed inside the phase window; latencies in ms
        lat = np.asarray([s for t, s in rec.latencies[kind] if start <= t <= end]) * 1000
        figures[kind] = {
            "requests": int(lat.size),
            "rps": lat.size / (end - start),
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


def format_report(cfg: LoadConfig, result: dict) -> str:
    f = result["figures"]
    ref = f["healthz"]["rps"]
    lines = [
        f"participants={cfg.participants} trial phase={cfg.duration:g}s "
        f"reference phase={cfg.reference_duration:g}s gunicorn={cfg.workers}x{cfg.threads} gthread "
        f"think={cfg.think:g}s kill_worker={cfg.kill_worker}",
        f"{'kind':<12}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'vs healthz':>12}",
    ]
    for kind in ("healthz", "trial_page", "answer"):
        x = f[kind]
        ratio = x["rps"] / ref if ref else float("nan")
        lines.append(f"{kind:<12}{x['requests']:>9}{x['rps']:>9.1f}{x['p50_ms']:>9.1f}"
                     f"{x['p99_ms']:>9.1f}{x['errors']:>8}{ratio:>12.2f}")  # fmt: skip
    mixed = f["trial_page"]["rps"] + f["answer"]["rps"]
    cpu = result.get("cpu_s", {})
    n_trial = f["trial_page"]["requests"] + f["answer"]["requests"]
    if cpu and f["healthz"]["requests"] and n_trial and not result["killed_workers"]:
        lines.append(
            f"gunicorn worker CPU per request: healthz "
            f"{1000 * cpu['healthz'] / f['healthz']['requests']:.1f} ms, trial phase "
            f"{1000 * cpu['trials'] / n_trial:.1f} ms (PostgreSQL's own CPU not included)"
        )
    lines += [
        f"trial phase, all requests: {mixed:.1f} req/s = {mixed / ref if ref else float('nan'):.2f}"
        " x healthz (each answered trial is one page GET + one answer POST)",
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
