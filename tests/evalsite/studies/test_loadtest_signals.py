"""The load benchmark stops what it started when it is killed or its terminal closes (as on
Ctrl-C), and its client processes stop sending load when the coordinator dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from evalsite.studies.loadtest import LoadConfig
from evalsite.studies.loadtest_server import (
    database_url,
    drop_write_table,
    exiting_on_signals,
    serving,
)
from evalsite.studies.loadtest_study import clean_up, make_study
from evalsite.studies.models import Study

ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _wait_gone(pids, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


# SIGHUP to the run alone goes the way of SIGTERM once its handler raised (the same
# _exit_on_signal, set for both by exiting_on_signals): that whole run is [15-False]'s, and the
# handler test below checks SIGHUP's, in milliseconds instead of a run's 15-20 s.
SIGHUP_RUN = pytest.mark.slow(
    reason="duplicates [15-False] after the handler; test_it_ends_a_run_on_sighup_as_on_sigterm"
)


@pytest.mark.integration  # gunicorn on the test PostgreSQL, ~10 s each
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(300)  # a setup or a run's end that never comes (~10 s, minutes when loaded)
@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGTERM, False), pytest.param(signal.SIGHUP, False, marks=SIGHUP_RUN),
     (signal.SIGTERM, True)],  # `timeout` and a closed terminal signal the whole process group
)  # fmt: skip
def test_it_stops_gunicorn_and_deletes_its_study_and_table_when_killed(tmp_path, signum, group):
    env = os.environ | {
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(tmp_path),  # the server log, which an interrupted run keeps
    }
    command = [sys.executable, "manage.py", "loadtest", "--participants", "2", "--trials", "8",
               "--client-processes", "2", "--duration", "60", "--spares", "0", "--workers", "1",
               "--threads", "2"]  # fmt: skip
    out = tmp_path / "out.txt"
    with out.open("w") as sink:  # not a pipe: a process left behind would hold it open
        run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    started = []
    try:
        while "\nsetup:" not in out.read_text() and run.poll() is None:  # the phases began
            time.sleep(0.1)
        assert run.poll() is None, out.read_text()  # it ran to its phases, not ended before
        started = _descendants(run.pid)
        assert len(started) >= 4, out.read_text()  # gunicorn, its worker, two client processes
        if group:  # the client processes too: they die at once, wherever they were waiting
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        assert run.wait() == 128 + signum, out.read_text()
        assert not _wait_gone(started, 10), "a process of the run outlived it"
    finally:
        run.kill()
        for pid in started:  # what a failed run left
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    tables = connection.introspection.table_names()
    left = [name for name in tables if name.startswith("loadtest_bare_write")]
    for name in left:  # not flushed between tests: the next run would fail on it too
        drop_write_table(name)
    # the run's own words on what it could not clean up ("could not delete study ...") say why
    assert not Study.objects.filter(name__startswith="loadtest").exists(), out.read_text()
    assert not left, out.read_text()


# A query that outlasts psycopg's wait for its cancellation (5 s), as a query on a loaded server
# can: it catches the cancel and sleeps on, for 10 s in all (it then ends by itself, its client
# gone).
DEAF_TO_CANCEL = """
    CREATE FUNCTION pg_temp.deaf_to_cancel() RETURNS void LANGUAGE plpgsql AS $$
    DECLARE until timestamptz := clock_timestamp() + interval '10 seconds';
    BEGIN
        WHILE clock_timestamp() < until LOOP
            BEGIN
                PERFORM pg_sleep(0.1);
            EXCEPTION WHEN query_canceled THEN NULL;
            END;
        END LOOP;
    END $$
"""


def _killed_in(tmp_path, query) -> None:
    """A study made and served as run() does (loadtest.py), SIGTERM while `query(cursor)` runs:
    the study and its table are deleted, and nothing said of a failure to."""
    study, said = make_study(2), []
    with pytest.raises(SystemExit) as stopped, exiting_on_signals():
        try:
            with serving(LoadConfig(workers=1, threads=1), study, tmp_path / "gunicorn.log",
                         said.append) as (_, _, table):  # fmt: skip
                with connection.cursor() as cursor:
                    query(cursor)
        finally:
            clean_up(study, said.append)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert said == []  # "could not drop table ...", "could not delete study ..."
    left = table in connection.introspection.table_names()
    if left:  # not flushed between tests
        drop_write_table(table)
    assert not left
    assert not Study.objects.filter(pk=study.pk).exists()


@pytest.mark.integration  # gunicorn on the test PostgreSQL
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_it_deletes_its_study_and_table_when_killed_in_a_query_not_cancelled_in_time(tmp_path):
    # A run killed in a query (ANALYZE right after setup, a phase's counters) has psycopg cancel
    # it; when the server has not ended it within 5 s (a loaded machine), psycopg closes the
    # connection, and the table's DROP and the study's delete both failed on "the connection is
    # closed": the run exited 143 and left both.
    def deaf(cursor):
        cursor.execute(DEAF_TO_CANCEL)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        cursor.execute("SELECT pg_temp.deaf_to_cancel()")

    _killed_in(tmp_path, deaf)


@pytest.mark.integration  # gunicorn on the test PostgreSQL
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_it_deletes_its_study_and_table_when_killed_with_a_query_left_unread(tmp_path):
    # The [15-False] run above failed so 2 times in 14 beside 3 CPU burners, pgbench and fsynced
    # writes: every cleanup statement failed on "another command is already in progress". As
    # read in psycopg 3.3.9: SIGTERM handled in its Python code between sending a query and
    # reading it (Cursor._maybe_prepare_gen) ends the generator that psycopg, having sent the
    # cancel, resumes to read the results: they are never read. The state is made here as
    # psycopg left it: a query sent, its results unread.
    def unread(cursor):
        connection.connection.pgconn.send_query(b"SELECT pg_sleep(0.5)")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at the next bytecode: never reached

    _killed_in(tmp_path, unread)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_it_ends_a_run_on_sighup_as_on_sigterm(signum):
    # The run's finally blocks (gunicorn, clients, study, table) run on the SystemExit the
    # handler raises; test_it_stops_gunicorn_and_deletes_its_study_and_table_when_killed runs
    # them on a real run.
    def unhandled(*_):  # in place of the default action (which ends this test process)
        raise AssertionError(f"signal {signum} reached the handler outside the run's")

    before = signal.signal(signum, unhandled)
    try:
        with pytest.raises(SystemExit) as stopped, exiting_on_signals():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler runs at the next bytecode: never reached
        assert stopped.value.code == 128 + signum
        assert signal.getsignal(signum) is unhandled  # the previous handler back afterwards
    finally:
        signal.signal(signum, before)


# A coordinator that starts one client process as the benchmark does, then waits.
COORDINATOR = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from evalsite.studies.loadtest_processes import ClientPlan, client_process

    ctx = multiprocessing.get_context("spawn")
    plan = ClientPlan(sys.argv[1], "s", 0.0, 8, spares=0, last_phase="loop",
                      coordinator=os.getpid())
    barrier, stops, results = ctx.Barrier(2), {"loop": ctx.Event()}, ctx.Queue()
    client = ctx.Process(target=client_process, args=(plan, 2, barrier, stops, results),
                         daemon=True)
    client.start()
    print(client.pid, flush=True)
    time.sleep(300)
    """
)


def test_its_client_processes_stop_when_the_coordinator_dies():
    # SIGKILL runs no cleanup; a client left alone went on sending its requests (here: to a
    # server that never answers, retried for 75 s) into whatever listens on the port.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        coordinator = subprocess.Popen([sys.executable, "-c", COORDINATOR, base], cwd=ROOT,
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
        client = int(coordinator.stdout.readline())
        try:
            time.sleep(1.0)  # its threads are waiting for answers
            assert _alive(client)
            coordinator.kill()
            coordinator.wait()
            assert not _wait_gone([client], 5), "the client process outlived its coordinator"
        finally:
            coordinator.kill()
            if _alive(client):
                os.kill(client, signal.SIGKILL)


# A coordinator asleep in the client processes' barrier while a client process is inside the
# barrier's bookkeeping, holding its lock, as the whole process group gets SIGTERM.
IN_BARRIER = textwrap.dedent(
    """
    import multiprocessing, threading, time

    def client(barrier, ready):
        while barrier.n_waiting < 1:  # the coordinator is asleep in the barrier
            time.sleep(0.01)
        barrier._cond.acquire()  # what a party holds from arriving until it sleeps or releases
        ready.set()
        time.sleep(300)

    if __name__ == "__main__":
        import django
        django.setup()
        from evalsite.studies.loadtest import meet_clients
        from evalsite.studies.loadtest_server import exiting_on_signals

        ctx = multiprocessing.get_context("spawn")
        barrier, ready = ctx.Barrier(2), ctx.Event()
        ctx.Process(target=client, args=(barrier, ready), daemon=True).start()
        threading.Thread(target=lambda: ready.wait() and print("held", flush=True)).start()
        with exiting_on_signals():
            meet_clients(barrier)
    """
)


@pytest.mark.timeout(60)  # the coordinator waited for the dead client's lock for ever
def test_its_coordinator_ends_on_sigterm_to_its_group_while_a_client_holds_the_barrier(tmp_path):
    # The process-group SIGTERM ([15-True] above) can kill a client process inside the
    # barrier, holding its lock, while the coordinator sleeps in it: the coordinator's wait,
    # unwinding SIGTERM's SystemExit, took the lock back, and never got it.
    script = tmp_path / "coordinator.py"
    script.write_text(IN_BARRIER)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    coordinator = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, text=True,
                                   start_new_session=True)  # fmt: skip
    try:
        assert coordinator.stdout.readline() == "held\n"
        os.killpg(coordinator.pid, signal.SIGTERM)  # as `timeout` or a closed terminal does
        assert coordinator.wait() == 128 + signal.SIGTERM
    finally:
        try:
            os.killpg(coordinator.pid, signal.SIGKILL)  # what a failed run left
        except ProcessLookupError:
            pass
        coordinator.wait()
