"""The demo's child processes: a local Celery worker and the web server, each stopped (with
everything it started) when the demo leaves, and waiting on a job that the worker runs."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from evalsite.demo_options import ROOT, DemoError, DemoOptions

if TYPE_CHECKING:
    import subprocess


class LocalWorker:
    """A real Celery worker process on the embedded broker, stopped when the demo leaves.

    The worker runs in its own process group, so its prefork child is stopped with it: SIGTERM
    to the main process (Celery's warm shutdown: the running task may finish), and after
    stop_timeout_s SIGKILL to the whole group.
    """

    def __init__(self, opts: DemoOptions, stop_timeout_s: float = 20.0) -> None:
        self.opts = opts
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at: datetime | None = None
        self.log = opts.home / "logs" / "worker.log"

    def __enter__(self) -> LocalWorker:
        import subprocess

        from django.utils import timezone

        self.log.parent.mkdir(parents=True, exist_ok=True)
        celery = Path(sys.executable).with_name("celery")
        cmd = [str(celery), "-A", "evalsite", "worker", "-Q", "gpu,cpu", "--concurrency", "1"]
        cmd += ["--loglevel", "INFO", "-n", "demo@%h"]
        self.started_at = timezone.now()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with its prefork child
            )
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DemoError(f"the local worker exited ({self.proc.returncode}); see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        stop_process_group(self.proc, self.stop_timeout_s)
        self.report_abandoned_jobs()

    def report_abandoned_jobs(self) -> None:
        """Name the jobs the stopped worker left running: on the file broker their message went
        with the worker, so nothing will finish them."""
        from django.db import DatabaseError
        from django.db.models import Q

        from evalsite.jobs.models import Job

        # Running, or an embedding job the worker fanned out whose gpu step had not started yet
        # (still "queued": Job.waiting_for).
        begun = Q(status=Job.Status.RUNNING) | Q(
            kind=Job.Kind.INGEST, status=Job.Status.QUEUED, params__queued__gt=0
        )
        running = Job.objects.filter(begun, updated_at__gte=self.started_at)
        try:
            jobs = list(running.order_by("id"))
        except DatabaseError as exc:  # never hide why the demo is leaving
            print(f"      could not check the worker's jobs: {exc}", file=sys.stderr)
            return
        for job in jobs:
            how = "rerun the demo"
            if job.study_id:
                how += f", or use {self.opts.base_url}/jobs/study/{job.study_id}/"
            print(
                f"      job {job.pk} ({job.get_kind_display()}) was left running by the "
                f"stopped worker and will not finish; to queue it again, {how}",
                flush=True,
            )


def stop_process_group(proc, timeout_s: float) -> None:
    """SIGTERM proc alone (Celery's warm shutdown: it lets its prefork child finish the task at
    hand and stops it), wait up to timeout_s, then SIGKILL what is left of the group proc leads
    (start_new_session: its id is proc's pid), and reap proc.

    Not SIGTERM to the whole group: the child, killed by it mid-shutdown, is logged by the main
    process as an ERROR (WorkerLostError) and its task is lost though there was time to finish."""
    import subprocess

    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):  # gone already, or still busy
        pass
    try:  # the main process after the timeout, or a child it left behind
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # nothing left in the group
        pass
    proc.wait()
    # SIGKILL is delivered asynchronously: wait until the prefork child is gone too (it is not
    # ours to reap), so that the demo leaves nothing running behind when it returns.
    deadline = time.monotonic() + 5
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """The processes of group pgid that have not exited (from /proc; none where there is none)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:  # gone meanwhile
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:  # fields: state, ppid, pgrp, ...
            found.append(int(stat.parent.name))
    return found


def wait_for_job(job, worker: LocalWorker, label: str, timeout_s: float = 1800) -> None:
    """Poll a Job until the worker finishes it, printing done/total; raise on failure."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        job.refresh_from_db()
        state = (job.status, job.done, job.total)
        if state != last:
            print(f"      {label}: {job.status} {job.done}/{job.total}", flush=True)
            last = state
        if job.is_finished:
            break
        worker.check_alive()
        if time.monotonic() > deadline:
            raise DemoError(f"{label}: not finished after {timeout_s:.0f} s; see {worker.log}")
        time.sleep(1.0)
    if job.status == job.Status.FAILED:
        raise DemoError(f"{label} failed: {job.message or job.errors}; see {worker.log}")
    if job.errors:
        print(f"      {label}: {len(job.errors)} error(s), first: {job.errors[0]}")


PORT_IN_USE = (
    "port {port} on {host} is in use: another `make demo` is probably serving there; stop it "
    "(Ctrl-C in its terminal) and run this again, or pass another port: "
    'make demo ARGS="--port N" (with the other options you gave in ARGS too; '
    "python -m evalsite.demo --port N without make)"
)


def check_port_free(host: str, port: int) -> None:
    """Raise DemoError naming the port if a server already listens on host:port.

    Bound the way Django's runserver binds (SO_REUSEADDR), so a server that has just stopped
    (its connections in TIME_WAIT) does not count, while one still listening does."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise DemoError(f"--host {host}: {exc.strerror}") from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DemoError(PORT_IN_USE.format(host=host, port=port)) from exc
            raise DemoError(f"cannot serve on {host}:{port}: {exc.strerror}") from exc


class Server:
    """The site in a child process (Django's server on embedded defaults), stopped on exit.

    It starts only on a free port, and is up once its own child answers /healthz: an answer
    while the child has exited (it could not bind, so something else answered) is a failure."""

    def __init__(self, opts: DemoOptions, env: dict[str, str] | None = None) -> None:
        self.opts = opts
        self.env = os.environ | (env or {})  # the demo's environment, with `env` on top
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = opts.home / "logs" / "web.log"
        self.log_start = 0  # where this server's output starts in the shared log

    def __enter__(self) -> Server:
        check_port_free(self.opts.host, self.opts.port)
        self.start()
        try:
            self.wait_until_serving()
        except BaseException:
            self.__exit__()
            raise
        return self

    def command(self) -> list[str]:
        cmd = [sys.executable, "manage.py", "runserver", f"{self.opts.host}:{self.opts.port}"]
        return cmd + ["--noreload", "--skip-checks"]

    def start(self) -> None:
        import subprocess

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.log_start = log.tell()
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)  # fmt: skip

    def wait_until_serving(self, timeout_s: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                urllib.request.urlopen(f"{self.opts.base_url}/healthz", timeout=2)
            except OSError:
                time.sleep(0.5)
                continue
            self.check_alive()  # the answer came from our child only if it is still running
            return
        raise DemoError(f"the web server did not answer on {self.opts.base_url}; see {self.log}")

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            said = self.last_line()
            said = f": {said}" if said else ""
            raise DemoError(f"the web server exited ({self.proc.returncode}){said}; see {self.log}")

    def last_line(self) -> str:
        """The last line this server wrote to its log (why it exited, when it failed)."""
        try:
            with self.log.open("rb") as log:
                log.seek(max(self.log_start, log.seek(0, os.SEEK_END) - 4096))
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
