"""The load benchmark's in-process mode (`manage.py loadtest --in-process`): the CPU the site's own
Python spends on a trial page and on an answer, with no server and no HTTP.

The saturated run (loadtest.py) says how many requests per second the machine serves, the cost
mode (loadtest_cost.py) what each kind of request takes from it (gunicorn, PostgreSQL, client).
Both include gunicorn, sockets and the scheduling of several processes, whose share moves with
the machine. Here the simulated participants (loadtest_client.Participant: the real flow, forms,
CSRF token and cookies) call Django's WSGI handler in this process, one request at a time, and
`time.thread_time` is read around each call: the CPU of the middleware, views, templates and the
database driver, and nothing else. It is the figure a change to a view is measured on first.
PostgreSQL still runs every query (its CPU is not counted here). Rounds interleave `/healthz`, a
trial page and its answer for every participant, so a drift in the machine's speed weighs on the
three alike; one round before them is not counted (first-time code paths, prepared statements).
With `profile` > 0, cProfile's functions with the most CPU of their own are printed for trial
pages and for answers (under the profiler every call costs more: compare its figures with each
other, not with the unprofiled ones).
"""

from __future__ import annotations

import cProfile
import io
import logging
import pstats
import queue
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.http.request import validate_host

from evalsite.studies.loadtest_client import ASSIGN, LoadTestError, Participant, Response
from evalsite.studies.loadtest_recorder import Recorder
from evalsite.studies.loadtest_report import passed
from evalsite.studies.loadtest_server import CONN_MAX_AGE_S, exiting_on_signals
from evalsite.studies.loadtest_study import (
    check_database,
    clean_up,
    enter_in_sequence,
    make_study,
    summarise,
)

KINDS = ("healthz", "trial_page", "answer")
HOST = "localhost"


@dataclass(frozen=True)
class InProcessConfig:
    participants: int = 20
    rounds: int = 10  # counted rounds; each participant answers rounds + 2 trials in all
    trials: int = 60
    profile: int = 0  # functions printed per kind (0: no profiler)


class InProcessParticipant(Participant):
    """A simulated participant whose requests go to Django's WSGI handler in this process; the
    thread CPU of the last handler call is kept in `last_cpu`, and it runs under `profiler`
    when one is set."""

    handler: WSGIHandler | None = None

    def __init__(self, slug: str, n_trials: int, rec: Recorder):
        super().__init__(f"http://{HOST}", slug, n_trials, rec, queue.SimpleQueue())
        self.last_cpu = 0.0
        self.assign_cpu = 0.0  # thread CPU of the POST that assigned its trial list
        self.profiler: cProfile.Profile | None = None

    def learn_slots(self) -> None:
        """Nothing to read: this mode answers each trial after its page (which names its slot),
        and the site's own URLs, which it is served by, do not list slots."""

    def request(self, kind: str, method: str, path: str, body: str | None = None) -> Response:
        response = super().request(kind, method, path, body)
        if kind == ASSIGN:
            self.assign_cpu += self.last_cpu
        return response

    def _send(self, method: str, path: str, body: str | None) -> Response:
        path, _, query = path.partition("?")
        data = (body or "").encode()
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": HOST, "SERVER_PORT": "80", "HTTP_HOST": HOST,
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(data),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(data)),
        }  # fmt: skip
        if body is not None:
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started: dict = {}

        def start_response(status, headers, exc_info=None):
            started["status"], started["headers"] = status, headers

        handler = InProcessParticipant.handler
        if handler is None:
            raise LoadTestError("InProcessParticipant.handler: not set; run_in_process sets it")
        start = time.thread_time()
        if self.profiler is not None:
            self.profiler.enable()
        chunks = handler(environ, start_response)
        text = b"".join(chunks).decode("utf-8", "replace")
        chunks.close()  # as a WSGI server does: request_finished, connections returned
        if self.profiler is not None:
            self.profiler.disable()
        self.last_cpu = time.thread_time() - start
        location = ""
        for name, value in started["headers"]:
            if name.lower() == "set-cookie":
                self._keep_cookie(value)
            elif name.lower() == "location":
                location = value
        return Response(int(started["status"][:3]), location, text)


def check_settings() -> None:
    """The site as served: DEBUG off (with it on, Django keeps every query it runs) and a host
    the site accepts."""
    if settings.DEBUG:
        raise LoadTestError("--in-process measures the site as served: run it with DEBUG=false")
    if settings.SECURE_SSL_REDIRECT:
        raise LoadTestError("--in-process sends plain HTTP: run it with SECURE_SSL_REDIRECT=false")
    if not validate_host(HOST, settings.ALLOWED_HOSTS):
        raise LoadTestError(f"--in-process sends Host: {HOST}; add it to ALLOWED_HOSTS")


@exiting_on_signals()
def run_in_process(cfg: InProcessConfig, out=print) -> dict:
    """Measure; returns {"cpu_ms": {kind: ms per request}, "requests": {kind: n},
    "profiles": {kind: text}} and the acknowledged/stored counts."""
    if cfg.rounds + 2 > cfg.trials:
        raise LoadTestError(f"{cfg.rounds} rounds need {cfg.rounds + 2} trials; got {cfg.trials}")
    check_settings()  # the settings first: refused without touching the database
    check_database()
    InProcessParticipant.handler = InProcessParticipant.handler or WSGIHandler()
    study = make_study(cfg.trials)
    try:
        with served_as_by_gunicorn():
            return _measure(cfg, study, out)
    finally:
        clean_up(study, out)


@contextmanager
def served_as_by_gunicorn(seconds: int = CONN_MAX_AGE_S):
    """Serve as the benchmark's gunicorn does: the database connection kept across requests
    (its DB_CONN_MAX_AGE, CONN_MAX_AGE_S; with this process's 0 the end of every request would
    close it, and each request would pay a new connection and prepare its statements again) and
    nothing logged below WARNING (its LOG_LEVEL: each answer's INFO line would be measured)."""
    before = connection.settings_dict["CONN_MAX_AGE"]
    connection.close()  # the next connection is opened with the new setting
    connection.settings_dict["CONN_MAX_AGE"] = seconds
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        connection.settings_dict["CONN_MAX_AGE"] = before
        connection.close()


def _measure(cfg: InProcessConfig, study, out) -> dict:
    rec = Recorder()
    people = [InProcessParticipant(study.slug, cfg.trials, rec) for _ in range(cfg.participants)]
    enter_in_sequence(people, out, "Django's WSGI handler in this process")
    # timed in this thread's CPU, not wall time: waiting for PostgreSQL is not the site's work
    profiles = (
        {kind: cProfile.Profile(time.thread_time) for kind in KINDS[1:]} if cfg.profile else {}
    )
    cpu = dict.fromkeys(KINDS, 0.0)
    sent = dict.fromkeys(KINDS, 0)
    for counted in [False] + [True] * cfg.rounds:
        for p in people:
            for kind in KINDS:
                p.profiler = profiles.get(kind) if counted else None
                if kind == "healthz":
                    p.request(kind, "GET", "/healthz")
                elif kind == "trial_page":
                    if p.trial_page(kind) is None:
                        raise LoadTestError(f"participant {p.token}: no trial left to show")
                else:
                    p.answer_next(kind)
                if counted:
                    cpu[kind] += p.last_cpu
                    sent[kind] += 1
    result = summarise(rec, study, {}, [], [], 0)
    return result | {
        "cpu_ms": {kind: 1000 * cpu[kind] / max(sent[kind], 1) for kind in KINDS},
        "requests": sent,
        "assign": entering(rec, people),
        "errors": sum(rec.errors.values()),
        "profiles": {kind: _top(prof, cfg.profile) for kind, prof in profiles.items()},
    }


def entering(rec: Recorder, people) -> dict:
    """Entering, one participant at a time (setup): the POSTs that assigned a trial list, their
    CPU per request and median wall time (no queueing, so each one's own: design.assign holds
    the study's lock until its commit)."""
    wall = [seconds for _, seconds in rec.latencies[ASSIGN]]
    return {
        "requests": len(wall),
        "cpu_ms": 1000 * sum(p.assign_cpu for p in people) / max(len(wall), 1),
        "wall_p50_ms": 1000 * statistics.median(wall) if wall else 0.0,
    }


def _top(profile: cProfile.Profile, n: int) -> str:
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(n)
    return text.getvalue()


def in_process_passed(result: dict) -> bool:
    """Every acknowledged answer stored once, and no request failed."""
    return passed(result) and result["errors"] == 0


def format_in_process(result: dict) -> str:
    cpu, n = result["cpu_ms"], result["requests"]
    lines = []
    for kind, text in result["profiles"].items():
        lines += [f"profile: {kind} (functions by their own time, under the profiler)", text]
    lines.append("kind          requests   CPU ms/request (Django in this thread)   / healthz")
    for kind in KINDS:
        lines.append(f"{kind:<13} {n[kind]:>8}   {cpu[kind]:>8.3f}"
                     f"{'':<31}{cpu[kind] / cpu['healthz']:.2f}")  # fmt: skip
    entering = result["assign"]
    lines += [
        f"trial page / answer: {cpu['trial_page'] / cpu['answer']:.2f}",
        f"entering (setup, one at a time): {entering['requests']} trial lists assigned, "
        f"CPU {entering['cpu_ms']:.3f} ms/request ({entering['cpu_ms'] / cpu['healthz']:.2f} x "
        f"healthz), wall p50 {entering['wall_p50_ms']:.2f} ms (two commits; the study's lock "
        "held until the first, design.assign)",
        f"answers acknowledged={result['acknowledged']} (setup's first ones included) "
        f"stored={result['stored']} acked-not-stored={result['acked_not_stored']}; "
        f"failed requests={result['errors']}",
        f"RESULT: {'PASS' if in_process_passed(result) else 'FAIL'} (acknowledged == stored)",
    ]
    return "\n".join(lines)
