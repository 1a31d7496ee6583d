"""The load benchmark: a tiny real run (gunicorn on the test PostgreSQL, a few participants), and
how a run's figures are read against the issue's targets."""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import signal
import subprocess
import tempfile
import time
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command

from evalsite.studies import loadtest_cost, loadtest_server
from evalsite.studies.loadtest import (
    MAX_ANSWER_RATE,
    MAX_SPARES,
    LoadConfig,
    run,
    spares_per_thread,
)
from evalsite.studies.loadtest_client import ASSIGN, LoadTestError
from evalsite.studies.loadtest_cost import (
    CostConfig,
    cost_passed,
    cpu_around,
    format_cost,
    run_cost,
)
from evalsite.studies.loadtest_cpu import group_cpu_seconds
from evalsite.studies.loadtest_inprocess import (
    InProcessConfig,
    entering,
    format_in_process,
    in_process_passed,
    run_in_process,
)
from evalsite.studies.loadtest_recorder import Recorder
from evalsite.studies.loadtest_report import format_report, passed, targets
from evalsite.studies.loadtest_server import database_url, free_port, start_server
from evalsite.studies.loadtest_study import check_database
from evalsite.studies.models import Study


@pytest.mark.integration  # ~11 s each: in the default suite
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "kill_worker",
    # the run with a worker killed checks everything the plain one does, and the kill
    [pytest.param(False, marks=pytest.mark.slow), True],
)
def test_it_stores_every_acknowledged_answer_once(kill_worker):
    # Timed phases of 1-2 s (7 s in all, of 12 with duration=4): each phase still sends its
    # requests from every thread, and the killed worker dies 1 s into the trial loop.
    cfg = LoadConfig(participants=4, duration=2, reference_duration=1, trials=8, workers=2,
                     threads=2, client_processes=2, spares=1, kill_worker=kill_worker,
                     think=0.3)  # fmt: skip
    result = run(cfg, out=lambda line: None)
    print(format_report(cfg, result))
    figures = result["figures"]
    for kind in ("healthz", "answer", "write", "loop_trial_page", "loop_answer", "paced_answer"):
        assert figures[kind]["requests"] > 0, kind
    assert result["acknowledged"] > 0
    assert passed(result), format_report(cfg, result)
    assert result["writes_stored"] == result["writes_acknowledged"] > 0  # the bare writes
    if kill_worker:
        assert len(result["killed_workers"]) == 1
    assert not Study.objects.filter(name__startswith="loadtest").exists()  # cleaned up


@pytest.mark.slow  # cost mode; the saturated run with a worker killed stays in the default tier
@pytest.mark.integration  # ~15 s
@pytest.mark.django_db(transaction=True)
def test_its_cost_mode_reads_each_kinds_cpu_and_stores_every_acknowledged_answer():
    result = run_cost(CostConfig(requests=200, rounds=1, trials=8), out=lambda line: None)
    print(format_cost(result))
    assert result["requests"] == dict.fromkeys(("healthz", "post", "answer", "write"), 200)
    cpu = result["cpu_ms"]  # read in clock ticks (10 ms): hundreds of requests show in them
    assert cpu["healthz"]["total"] > 0 and cpu["answer"]["server"] > 0
    assert cpu["answer"]["postgres"] + cpu["write"]["postgres"] > 0
    assert "-> bare write (store it)" in format_cost(result)
    assert result["acknowledged"] > 200  # the warm-up's and setup's answers too
    assert cost_passed(result), format_cost(result)
    assert not Study.objects.filter(name__startswith="loadtest").exists()  # cleaned up


def test_its_cost_mode_counts_no_cpu_of_its_own_readings_as_the_clients(monkeypatch):
    # Reading PostgreSQL's CPU scans every process in /proc, in this process: read after it, the
    # client's clock counted the scan as the client's share of the batch.
    def scan():
        _burn(0.3)
        return {0: 0.0}

    monkeypatch.setattr(loadtest_cost, "postgres_cpu_seconds", scan)
    *_, client = cpu_around(os.getpid(), os.sysconf("SC_CLK_TCK"), lambda: None)
    assert client < 0.1


@pytest.mark.django_db(transaction=True)
def test_its_in_process_mode_reads_djangos_cpu_per_kind_and_stores_every_acknowledged_answer():
    cfg = InProcessConfig(participants=2, rounds=2, trials=6, profile=50)
    on_sigterm = signal.getsignal(signal.SIGTERM)
    result = run_in_process(cfg, out=lambda line: None)
    assert signal.getsignal(signal.SIGTERM) is on_sigterm  # its own handler only while it ran
    text = format_in_process(result)
    print(text)
    assert result["requests"] == dict.fromkeys(("healthz", "trial_page", "answer"), 4)
    assert all(ms > 0 for ms in result["cpu_ms"].values())
    assert result["acknowledged"] == result["stored"] == 2 * (1 + 1 + 2)  # setup, warm-up, rounds
    assert in_process_passed(result), text
    assert result["assign"]["requests"] == 2 and result["assign"]["cpu_ms"] > 0
    assert "entering (setup, one at a time): 2 trial lists assigned" in text
    for kind in ("trial_page", "answer"):  # the profiler ran around Django's handler
        assert "Ordered by: internal time" in result["profiles"][kind]
        assert "site-packages/django/" in result["profiles"][kind]
    assert not Study.objects.filter(name__startswith="loadtest").exists()  # cleaned up


def test_its_in_process_mode_reads_the_median_entry_time():
    rec = Recorder()
    for seconds in (0.010, 0.020):  # an even count: the median lies between the middle two
        rec.add(ASSIGN, seconds)
    people = [SimpleNamespace(assign_cpu=0.004), SimpleNamespace(assign_cpu=0.002)]
    assert entering(rec, people) == {"requests": 2, "cpu_ms": pytest.approx(3.0),
                                     "wall_p50_ms": pytest.approx(15.0)}  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"DEBUG": True}, "DEBUG=false"), ({"ALLOWED_HOSTS": ["example.org"]}, "ALLOWED_HOSTS")],
)
def test_its_in_process_mode_refuses_settings_it_would_not_measure_as_served(
    settings, overrides, message
):
    for name, value in overrides.items():
        setattr(settings, name, value)
    with pytest.raises(LoadTestError, match=message):
        run_in_process(InProcessConfig(participants=1, rounds=1, trials=3))


def test_its_in_process_mode_needs_a_trial_per_round_beyond_setup_and_warm_up():
    with pytest.raises(LoadTestError, match="12 trials"):
        run_in_process(InProcessConfig(rounds=10, trials=11))


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [("127.0.0.1", "5432", "postgresql://u:p%40ss@127.0.0.1:5432/csn%20db"),
     ("/var/run/postgresql", "", "postgresql://u:p%40ss@%2Fvar%2Frun%2Fpostgresql/csn%20db")],
)  # fmt: skip
def test_it_hands_the_server_a_url_of_the_same_database_over_tcp_or_a_socket(host, port, url):
    import dj_database_url

    db = {"USER": "u", "PASSWORD": "p@ss", "HOST": host, "PORT": port, "NAME": "csn db"}
    assert database_url(db) == url
    parsed = dj_database_url.parse(url)  # what the server's settings read back
    assert (parsed["HOST"], parsed["NAME"], parsed["PASSWORD"]) == (host, "csn db", "p@ss")


def test_it_stops_gunicorn_when_interrupted_while_waiting_for_it_to_answer(monkeypatch, tmp_path):
    started = []
    popen = subprocess.Popen
    monkeypatch.setattr(
        subprocess, "Popen", lambda *a, **k: started.append(popen(*a, **k)) or started[-1]
    )

    def ctrl_c(*args, **kwargs):  # Ctrl-C while /healthz is polled
        raise KeyboardInterrupt

    monkeypatch.setattr(loadtest_server.requests, "get", ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            start_server(LoadConfig(workers=1, threads=1), free_port(), tmp_path / "log", "none")
        (server,) = started
        assert server.poll() is not None, "gunicorn outlived the interrupted start"
        with pytest.raises(ProcessLookupError):
            os.killpg(server.pid, 0)  # nor any of its workers
    finally:
        for server in started:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_it_keeps_the_cpu_of_a_process_that_exited_in_its_parents_total():
    # As a PostgreSQL backend whose connection was closed: gone from /proc, its CPU in the
    # postmaster's cutime/cstime (readings process by process lost it).
    before = group_cpu_seconds([os.getpid()])
    child = multiprocessing.get_context("fork").Process(target=_burn, args=(0.5,))
    child.start()
    child.join()  # exited and waited for
    assert group_cpu_seconds([os.getpid()]) - before >= 0.4


@pytest.mark.parametrize("duration", [10.0, 30.0, 120.0])
def test_it_enters_enough_participants_ahead_to_answer_at_the_rate_bound_in_every_phase(duration):
    cfg = LoadConfig(participants=200, duration=duration)
    spares = spares_per_thread(cfg)
    needed = MAX_ANSWER_RATE * duration / cfg.participants + duration / cfg.think  # per thread
    # the first participant answered its first trial in setup; a spare answers every trial
    assert (cfg.trials - 1) + spares * cfg.trials >= needed
    assert spares == 0 or (cfg.trials - 1) + (spares - 1) * cfg.trials < needed  # no more


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0", "601"])
def test_it_refuses_a_reference_duration_out_of_bounds(seconds):
    # nan failed in time.sleep after setup, inf overflowed, a negative one gave meaningless
    # ratios, and 0 silently became the default
    expected = f"--reference-duration {float(seconds)}: expected 1..600"
    with pytest.raises(CommandError, match=expected):
        call_command("loadtest", "--reference-duration", seconds)


def test_it_enters_no_more_participants_ahead_than_the_answer_rate_bound_needs():
    # A paced phase answers at most MAX_ANSWER_RATE in all, however short the think time: with
    # --think 0.001 its count alone asked 503 spares per thread, and setup timed out.
    fast = spares_per_thread(LoadConfig(participants=200, duration=30, think=0.001))
    bound = MAX_ANSWER_RATE * 30 / 200 * 2  # saturated phases, and a paced one at the bound
    assert fast == math.ceil(bound / 60) - 1 <= MAX_SPARES


def test_it_refuses_a_run_whose_setup_would_enter_more_participants_ahead_than_the_bound():
    with pytest.raises(CommandError, match=rf"per client thread ahead .* above {MAX_SPARES}"):
        call_command("loadtest", "--participants", "1", "--duration", "600", "--trials", "2")


@pytest.mark.integration  # ~10 s: in the default suite
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)  # a wait for clients that were never told to stop: minutes
def test_it_says_setup_timed_out_and_stops_its_clients_at_once(monkeypatch, tmp_path):
    # Setup outlasting its timeout: the clients went on entering their spares, and the results
    # were awaited before they were told to stop (minutes, then "a client process sent no
    # results" instead of the cause).
    cfg = LoadConfig(participants=2, duration=2, reference_duration=1, trials=8, workers=1,
                     threads=2, client_processes=1, spares=MAX_SPARES, think=0,
                     setup_timeout=1.0)  # fmt: skip
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the server log a failed run keeps
    planned = 2 * (1 + MAX_SPARES)
    with pytest.raises(LoadTestError, match="^setup timed out: ") as failed:
        run(cfg, out=lambda line: None)
    # told to stop, each thread ended after the entry under way; left alone, it entered them all
    said = re.search(rf"\((\d+) of {planned} entered\)$", str(failed.value))
    assert said, failed.value
    entered = int(said.group(1))
    assert 2 <= entered < planned, failed.value  # the first participants, and not every spare
    assert not Study.objects.filter(name__startswith="loadtest").exists()  # cleaned up


@pytest.mark.django_db
def test_it_serves_the_bare_write_reference_only_to_the_benchmark(client):
    # The site's own URLconf has no such views: only loadtest_settings mounts them.
    assert client.post("/loadtest/bare-write", {"writer": "1", "index": "0"}).status_code == 404
    assert client.post("/loadtest/bare-post", {"index": "0"}).status_code == 404


def test_it_reads_the_bare_write_next_to_both_references():
    result = _result(800, 300)
    result["figures"]["write"] = result["figures"]["answer"] | {"rps": 400.0}
    t = targets(result)
    assert (t["write_ratio"], t["answer_vs_write"]) == (0.5, 0.75)


def _result(healthz_rps, answer_rps, paced_p99_ms=None):
    row = {"requests": 100, "p50_ms": 5.0, "p99_ms": 900.0, "errors": 0}
    figures = {"healthz": row | {"rps": healthz_rps}, "answer": row | {"rps": answer_rps}}
    if paced_p99_ms is not None:
        figures["paced_trial_page"] = row | {"rps": 10.0, "p99_ms": 12.0}
        figures["paced_answer"] = row | {"rps": 10.0, "p99_ms": paced_p99_ms}
    return {"figures": figures}


@pytest.mark.parametrize(
    ("healthz", "answer", "p99", "ratio_met", "p99_met"),
    [(800, 400, 30.0, True, True), (800, 399, 30.0, False, True), (800, 600, 50.0, True, False),
     (800, 600, None, True, False)],
)  # fmt: skip
def test_it_reads_the_throughput_ratio_and_the_paced_p99_against_the_targets(
    healthz, answer, p99, ratio_met, p99_met
):
    t = targets(_result(healthz, answer, p99))
    assert t["answer_ratio"] == pytest.approx(answer / healthz)
    assert t["answer_ratio_met"] is ratio_met
    assert t["paced_p99_met"] is p99_met  # the worst of page and answer; unmeasured is not met


@pytest.mark.django_db
def test_it_refuses_a_database_with_unapplied_migrations_naming_them(monkeypatch):
    # Otherwise every request of the run fails on a missing column, and setup reports only that
    # its entries failed five times (seen when a new migration met an old benchmark database).
    from django.db.migrations.executor import MigrationExecutor

    pending = SimpleNamespace(app_label="studies", name="0009_participant_entry_address")
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [(pending, 0)])
    with pytest.raises(LoadTestError, match=r"studies\.0009_participant_entry_address.*migrate"):
        check_database()
