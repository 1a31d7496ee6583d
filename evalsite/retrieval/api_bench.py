"""The retrieval API end to end (`manage.py retrieval_bench --api`): what a user of
`/retrieval/api/search` sees over a catalogue of N stored embeddings, against `/healthz` (a
trivial view) measured in the same run.

A catalogue of N synthetic ready clips is made, each with a random stored embedding under the
checkpoint version of settings.CSN_CHECKPOINT (no model runs but, once, to register a version
nothing was embedded with yet), owned by a user made for the run; the site is served by gunicorn
(one worker, so the index it builds in its first search serves the rest; DEBUG off, persistent
database connections) or, with `in_process`, called through Django's test client in this
process. One client sends one request at a time: the first search by piece (instrument=all,
which builds every instrument's index inside the request), then K rounds of /healthz and a search
by a random piece for each instrument. Catalogue, clips, embeddings, user, session and a version
the run registered are deleted on the way out.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from evalsite.retrieval import service
from evalsite.retrieval.embedder import current_version
from evalsite.retrieval.models import Embedding, ModelVersion, to_bytes
from evalsite.stimuli.models import Catalogue, Clip

PREFIX = "retrieval-api-bench"  # the run's catalogue and user names start with it
SEARCH = "/retrieval/api/search"

# (status, body) of one GET of a path with query parameters
Get = Callable[[str, dict], tuple[int, bytes]]


class ApiBenchError(RuntimeError):
    """The server did not start, or a request was not answered 200."""


@dataclass(frozen=True)
class ApiBenchConfig:
    n: int = 10_000  # catalogue clips
    rounds: int = 200  # warm searches per instrument (and /healthz requests)
    k: int = 10  # top-k of each search
    seed: int = 0
    in_process: bool = False  # Django's test client here instead of gunicorn


@dataclass
class Fixture:
    user: object
    catalogue: Catalogue
    clip_ids: list[int]
    version: ModelVersion
    made_version: bool


def make_fixture(cfg: ApiBenchConfig) -> Fixture:
    had_version = current_version() is not None
    version = current_version(load=True)  # loads the model only when no version exists yet
    assert version is not None
    tag = secrets.token_hex(4)
    user = get_user_model().objects.create_user(f"{PREFIX}-{tag}")
    catalogue = Catalogue.objects.create(owner=user, name=f"{PREFIX} {tag}")
    fixture = Fixture(user, catalogue, [], version, not had_version)
    try:
        rng = np.random.default_rng(cfg.seed)
        for start in range(0, cfg.n, 2000):
            clips = Clip.objects.bulk_create(
                Clip(catalogue=catalogue, name=f"bench{i:06d}.wav", piece=f"B{i:06d}",
                     status=Clip.Status.READY, duration_s=5.0, sample_rate=22050,
                     loudness_lufs=-23.0, sha256="0" * 64)
                for i in range(start, min(start + 2000, cfg.n))
            )  # fmt: skip
            vectors = rng.standard_normal((len(clips), version.dim)).astype(np.float32)  # (B, D)
            Embedding.objects.bulk_create(
                Embedding(clip=c, version=version, vector=to_bytes(v))
                for c, v in zip(clips, vectors)
            )
            fixture.clip_ids += [c.pk for c in clips]
    except BaseException:
        remove_fixture(fixture)
        raise
    return fixture


def remove_fixture(fixture: Fixture) -> None:
    Embedding.objects.filter(clip__catalogue=fixture.catalogue).delete()
    Clip.objects.filter(catalogue=fixture.catalogue).delete()
    fixture.catalogue.delete()
    fixture.user.delete()  # type: ignore[attr-defined]
    if fixture.made_version and not fixture.version.embeddings.exists():
        fixture.version.delete()


def session_client(user) -> Client:
    client = Client(SERVER_NAME="127.0.0.1")  # an allowed host outside tests too
    client.force_login(user)
    return client


@contextmanager
def in_process(user) -> Iterator[tuple[Get, str]]:
    client = session_client(user)
    service.forget_indexes()  # the first search builds the index, as in a fresh process

    def get(path: str, params: dict) -> tuple[int, bytes]:
        response = client.get(path, params)
        return response.status_code, response.content

    try:
        yield get, "in-process (Django test client, this process; no server, no socket)"
    finally:
        client.logout()
        service.forget_indexes()


@contextmanager
def gunicorn(user, log_path: Path) -> Iterator[tuple[Get, str]]:
    from evalsite.studies.loadtest_server import (
        database_url,
        free_port,
        stop_server,
        wait_until_served,
    )

    client = session_client(user)
    port = free_port()
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url(), DEBUG="false", DB_CONN_MAX_AGE="60",
               LOG_LEVEL="WARNING", ALLOWED_HOSTS="127.0.0.1,localhost",
               CSN_CHECKPOINT=str(settings.CSN_CHECKPOINT), CSN_AUTO_EMBED="false",
               DJANGO_SETTINGS_MODULE="evalsite.settings")  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "evalsite.wsgi:application",
               "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread",
               "--threads", "4", "--timeout", "600", "--no-control-socket"]  # fmt: skip
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    http = requests.Session()
    http.cookies.set(
        settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value
    )
    base = f"http://127.0.0.1:{port}"

    def get(path: str, params: dict) -> tuple[int, bytes]:
        response = http.get(base + path, params=params, timeout=600)
        return response.status_code, response.content

    try:
        wait_until_served(server, port, log_path, ApiBenchError)
        yield get, f"gunicorn on 127.0.0.1 (1 worker, gthread 4 threads, DEBUG off; log {log_path})"
    finally:
        stop_server(server)
        http.close()
        client.logout()


def _timed(get: Get, path: str, params: dict) -> tuple[float, dict | None]:
    """Seconds of one request, and its JSON answer (None for /healthz); an answer that is not
    200 stops the run, naming it."""
    t = time.perf_counter()
    status, body = get(path, params)
    elapsed = time.perf_counter() - t
    if status != 200:
        raise ApiBenchError(f"GET {path} {params}: {status} {body[:300]!r}; expected 200")
    return elapsed, json.loads(body) if path == SEARCH else None


def measure(get: Get, fixture: Fixture, cfg: ApiBenchConfig) -> dict:
    """{"cold": (seconds, answer), name: [seconds, ...]} for "healthz" and each instrument:
    the first search, then rounds of /healthz and one search per instrument, interleaved so
    that a change in the machine's load falls on all of them alike."""
    rng = np.random.default_rng(cfg.seed + 1)
    base = {"catalogue": fixture.catalogue.pk, "k": cfg.k}
    _timed(get, "/healthz", {})  # the process's first request of any kind, not counted
    cold = _timed(get, SEARCH, {**base, "clip": fixture.clip_ids[0], "instrument": "all"})
    times: dict = {"cold": cold, "healthz": []}
    for _ in range(cfg.rounds):
        times["healthz"].append(_timed(get, "/healthz", {})[0])
        for condition in fixture.version.conditions:
            clip = fixture.clip_ids[int(rng.integers(len(fixture.clip_ids)))]
            seconds, _answer = _timed(get, SEARCH, {**base, "clip": clip, "instrument": condition})
            times.setdefault(condition, []).append(seconds)
    return times


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} logical CPUs, load average {load} (1/5/15 min)"


def table(times: dict) -> list[str]:
    """Lines of the figures: p50/p99 latency, req/s of one client (1 / mean latency) and the
    ratio of each p50 to /healthz's, measured in the same run."""
    ref = float(np.median(times["healthz"]))
    cold_s, cold_answer = times["cold"]
    lines = [f"{'request':<34} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>8} "
             f"{'p50 / healthz p50':>18}"]  # fmt: skip
    rows = [("healthz (reference)", times["healthz"])]
    rows += [(f"search by piece, {c}", v) for c, v in times.items() if c not in ("cold", "healthz")]
    for name, values in rows:
        ms = np.asarray(values) * 1000  # (n,)
        lines.append(f"{name:<34} {len(ms):>5} {np.median(ms):>9.2f} {np.percentile(ms, 99):>9.2f} "
                     f"{1000 / ms.mean():>8.1f} {np.median(ms) / 1000 / ref:>17.1f}x")  # fmt: skip
    lines.append(f"{'first search (all, builds indexes)':<34} {1:>5} {cold_s * 1000:>9.2f} "
                 f"{'-':>9} {'-':>8} {cold_s / ref:>17.1f}x")  # fmt: skip
    methods = ", ".join(f"{c} {m}" for c, m in cold_answer["method"].items())
    return [*lines, f"index kind (from the first answer): {methods}"]


def run(cfg: ApiBenchConfig, out: Callable[[str], None], log_path: Path) -> dict:
    """Make the catalogue, serve, measure, print, remove the catalogue; returns the times."""
    t = time.perf_counter()
    fixture = make_fixture(cfg)
    try:
        version = fixture.version
        out(f"retrieval API: catalogue of N={cfg.n:,} synthetic clips with random embeddings "
            f"(D={version.dim}, checkpoint {version.checkpoint_id}), made in "
            f"{time.perf_counter() - t:.1f} s; k={cfg.k}, {cfg.rounds} warm rounds")  # fmt: skip
        out(f"machine: {machine()}")
        serve = in_process(fixture.user) if cfg.in_process else gunicorn(fixture.user, log_path)
        with serve as (get, how):
            out(f"served by: {how}; one client, one request at a time")
            times = measure(get, fixture, cfg)
        for line in table(times):
            out(line)
    finally:
        remove_fixture(fixture)
    out("removed the catalogue, its clips and embeddings, and the run's user")
    return times
