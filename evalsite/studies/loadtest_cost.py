"""The load benchmark's cost mode (`manage.py loadtest --cost`): the CPU one request of each kind
costs the server, with no queue and no contention.

The saturated phases (loadtest.py) answer "how many per second", but on a small shared machine
their ratio moves by +-0.05 from run to run with the same code (the machine's own speed drifts
and every part shares the same cores). Here one gunicorn worker with one thread serves one client
(this process) that sends the requests one after the other, in rounds that alternate the kinds;
the CPU of the worker (user and system), of PostgreSQL and of the client is read around each
batch. A request's total (server + client) is what it takes from the machine; the ratio of two
totals is the throughput ratio both would reach if they saturated the same cores alone.

Kinds: `healthz` (the reference), `post` (the bare write's POST to a view that stores nothing,
loadtest_views.py), `answer` (a participant's next answer, as the answers phase) and `write`
(the bare write). healthz, answer and write are the three the throughput target is read on; the
bare POST splits the step from healthz to the bare write into receiving a POST and storing a row.
Trial pages are left to the saturated run's loop: interleaved here (page, then its answer),
their writes (a slot's first view, `last_seen_at`) leave dead rows the answers then probe on a
database without autovacuum; two such runs read 0.55-0.63 ms of PostgreSQL per answer against
0.45-0.50 without (docs/load-benchmark-log.md). Every acknowledged answer is checked against the
stored ones, as in the saturated run.
"""

from __future__ import annotations

import math
import os
import queue
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from evalsite.studies.loadtest import LoadConfig
from evalsite.studies.loadtest_client import LoadTestError, Participant
from evalsite.studies.loadtest_cpu import _times, postgres_cpu_seconds
from evalsite.studies.loadtest_recorder import Recorder
from evalsite.studies.loadtest_report import passed
from evalsite.studies.loadtest_server import (
    exiting_on_signals,
    serving,
    worker_pids,
    write_table_rows,
)
from evalsite.studies.loadtest_study import (
    check_database,
    clean_up,
    enter_in_sequence,
    make_study,
    summarise,
)

KINDS = ("healthz", "post", "answer", "write")


@dataclass(frozen=True)
class CostConfig:
    # per kind: 2,000 in all, in short batches: the machine's speed drifts within a run, and kinds
    # measured in turn often see the same drift (2 rounds of 1,000 read 0.32-0.45 on one day)
    requests: int = 200  # per kind and round
    rounds: int = 10
    trials: int = 60  # each participant answers trials - 1 in the timed rounds


WARM_UP = 50  # requests of each kind before the counted rounds


def participants_needed(cfg: CostConfig) -> int:
    """The answers of the warm-up and the rounds, over the trials each participant answers
    after setup."""
    answers = WARM_UP + cfg.requests * cfg.rounds
    return math.ceil(answers / max(cfg.trials - 1, 1))


@exiting_on_signals()
def run_cost(cfg: CostConfig, out=print) -> dict:
    """Measure; returns {"cpu_ms": {kind: {"gunicorn_user", "gunicorn_sys", "postgres",
    "client", "server", "total"}}, "requests": {kind: n}} and the acknowledged/stored counts."""
    check_database()
    study = make_study(cfg.trials)
    workdir = Path(tempfile.mkdtemp(prefix="csn-loadtest-cost-"))
    one_thread = LoadConfig(workers=1, threads=1)
    try:
        with serving(one_thread, study, workdir / "gunicorn.log", out) as (server, base, table):
            result = _measure(cfg, study, server, base, out)
            result["writes_stored"] = write_table_rows(table)
    finally:
        clean_up(study, out)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def _measure(cfg, study, server, base, out) -> dict:
    rec = Recorder()
    people = [Participant(base, study.slug, cfg.trials, rec, queue.SimpleQueue())
              for _ in range(participants_needed(cfg))]  # fmt: skip
    enter_in_sequence(people, out, "gunicorn 1x1 gthread, one client")
    (worker,) = worker_pids(server)
    writer = people[0]
    sent = {kind: 0 for kind in KINDS}
    answering = iter(p for p in people for _ in range(cfg.trials - 1))

    def healthz():
        writer.request("healthz", "GET", "/healthz")

    send = {"healthz": healthz, "post": writer.post_next,
            "answer": lambda: next(answering).answer_next(),
            "write": writer.write_next}  # fmt: skip
    used = {kind: [0.0, 0.0, 0.0, 0.0] for kind in KINDS}  # user, sys, postgres, client (s)
    tick = os.sysconf("SC_CLK_TCK")
    for kind in KINDS:  # warm-up, not counted: first-time code paths, prepared statements
        for _ in range(WARM_UP):
            send[kind]()
            sent[kind] += 1
    sent.update(dict.fromkeys(KINDS, 0))
    for _ in range(cfg.rounds):
        for kind in KINDS:
            batch = cpu_around(worker, tick, partial(_repeat, send[kind], cfg.requests))
            sent[kind] += cfg.requests
            for i in range(4):
                used[kind][i] += batch[i]
    cpu_ms = {}
    for kind, (user, system, pg, client) in used.items():
        n = sent[kind]
        parts = {"gunicorn_user": user, "gunicorn_sys": system, "postgres": pg, "client": client}
        row = {name: 1000 * seconds / n for name, seconds in parts.items()}
        row["server"] = row["gunicorn_user"] + row["gunicorn_sys"] + row["postgres"]
        row["total"] = row["server"] + row["client"]
        cpu_ms[kind] = row
    result = summarise(rec, study, {}, [], [], 0)
    return result | {"cpu_ms": cpu_ms, "requests": sent, "cost_config": cfg}


def _repeat(send, n: int) -> None:
    for _ in range(n):
        send()


def cpu_around(worker: int, tick: int, batch) -> list[float]:
    """CPU seconds `batch()` took: the worker's user and system time, PostgreSQL's (all its
    processes) and this process's (the client). The client's clock is read inside the server's
    readings, whose scan of /proc is this process's CPU but not the batch's."""
    before = _server_readings(worker, tick)
    client = time.process_time()
    batch()
    client = time.process_time() - client
    after = _server_readings(worker, tick)
    return [a - b for a, b in zip(after, before, strict=True)] + [client]


def _server_readings(worker: int, tick: int) -> tuple[float, float, float]:
    """CPU seconds so far: the worker's user and system time, PostgreSQL's (all its processes)."""
    times = _times(worker)
    if times is None:
        raise LoadTestError(f"gunicorn worker {worker} exited during the cost run")
    return times[0] / tick, times[1] / tick, sum(postgres_cpu_seconds().values())


def cost_passed(result: dict) -> bool:
    """Every acknowledged answer (setup's first ones included) and bare write stored once."""
    return passed(result) and result["writes_stored"] == result["writes_acknowledged"]


def _step(cpu: dict, before: str, after: str) -> str:
    return f"{cpu[after]['total'] - cpu[before]['total']:+.3f}"


def format_cost(result: dict) -> str:
    cpu, n = result["cpu_ms"], result["requests"]
    lines = [
        "kind        requests   CPU ms/request: gunicorn user + sys, PostgreSQL, client = total"
    ]
    for kind in KINDS:
        c = cpu[kind]
        lines.append(
            f"{kind:<11} {n[kind]:>8}   {c['gunicorn_user']:.3f} + {c['gunicorn_sys']:.3f}, "
            f"{c['postgres']:.3f}, {c['client']:.3f} = {c['total']:.3f}"
        )
    h = cpu["healthz"]["total"]
    lines += [
        f"healthz / answer (total CPU): {h / cpu['answer']['total']:.2f}   "
        f"healthz / bare write: {h / cpu['write']['total']:.2f}   "
        f"bare write / answer: {cpu['write']['total'] / cpu['answer']['total']:.2f}",
        "(the throughput ratio each pair would reach saturating the same cores alone; the "
        "saturated run's answer / healthz target is read on these)",
        "steps in total CPU ms: healthz -> bare POST (receive a form POST, no database) "
        f"{_step(cpu, 'healthz', 'post')}; -> bare write (store it) {_step(cpu, 'post', 'write')}; "
        f"-> answer (the answer's own checks) {_step(cpu, 'write', 'answer')}",
        f"answers acknowledged={result['acknowledged']} (setup's first ones included) "
        f"stored={result['stored']} acked-not-stored={result['acked_not_stored']}; "
        f"bare writes acknowledged={result['writes_acknowledged']} "
        f"stored={result['writes_stored']}",
        f"RESULT: {'PASS' if cost_passed(result) else 'FAIL'} (acknowledged == stored)",
    ]
    return "\n".join(lines)
