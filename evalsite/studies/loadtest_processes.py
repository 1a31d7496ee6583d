"""The client processes of the load benchmark: each runs its share of the simulated participants
(`loadtest_client.Participant`) as threads, through the phases in step with the coordinator
(`loadtest.run`), and sends its figures back. Separate from the participant itself, which only
speaks HTTP: this module holds the phases' order and the processes' lifetime.

The clients run in `LoadConfig.client_processes` processes (started with `spawn`, so none
inherits the coordinator's database connections), each with its share of the participants as
threads. One Python process with 200 threads could not keep up with the server: it saturated one
core, and its threads held the GIL so long that the coordinator's own clock and CPU readings
came seconds late.

Phases are separated by barriers: the threads of a process meet at a thread barrier whose
action (run by one of them) meets the other processes and the coordinator at a process barrier.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

from evalsite.studies.loadtest_client import REQUEST_TIMEOUT_S, RETRIES, Participant
from evalsite.studies.loadtest_recorder import Recorder

# The reference and answer phases alternate this many times, so that a change in the machine's
# speed during a run (other processes, CPU steal in a VM) weighs on both alike.
ROUNDS = 2


@dataclass(frozen=True)
class ClientPlan:
    """What every client process does (picklable: sent to `spawn`ed processes)."""

    base: str
    slug: str
    think: float
    n_trials: int
    spares: int  # participants each thread enters ahead, in setup
    last_phase: str  # the name of the last phase's stop event
    coordinator: int  # its process id: a client process whose parent is another has lost it


def participant_thread(p: Participant, plan: ClientPlan, barrier, stops, errors) -> None:
    """One thread's life: enter, then the phases in order, separated by `barrier`:
    /healthz, answers alone and bare writes (ROUNDS times), the trial loop, and (with `think`)
    the paced trial loop."""
    try:
        p.enter()
        p.enter_spares(plan.spares, stops[plan.last_phase])
        barrier.wait()  # every participant entered (entering is measured without answers)
        p.answer_first()
        barrier.wait()  # setup done (the coordinator analyzes the tables)
        barrier.wait()  # go
        for r in range(ROUNDS):  # the references and answers alternate (see ROUNDS)
            while not stops[f"healthz{r}"].is_set():
                p.request("healthz", "GET", "/healthz")
            barrier.wait()
            p.run_answers(stops[f"answers{r}"])
            barrier.wait()
            p.run_writes(stops[f"write{r}"])
            barrier.wait()
        p.run_trials(stops["loop"], 0.0, prefix="loop_")
        if plan.think:
            barrier.wait()
            p.run_trials(stops["paced"], plan.think, prefix="paced_")
    except threading.BrokenBarrierError:
        pass  # the coordinator's wait broke too: it lists the phases not run, and the run fails
    except Exception as exc:  # noqa: BLE001 (reported, and the run is marked failed)
        errors.append(f"{type(exc).__name__}: {exc}")
        barrier.abort()
    finally:
        if p.conn is not None:
            p.conn.close()


def client_process(plan: ClientPlan, n_threads: int, all_processes, stops, results) -> None:
    """A client process: `n_threads` participants; its threads meet at a thread barrier whose
    action meets the other processes and the coordinator at `all_processes`. Sends its figures
    (Recorder.as_dict, errors, stuck threads) on `results` when its threads are done."""
    rec = Recorder()
    errors: list[str] = []

    # The action's error breaks the thread barrier by itself (threading.Barrier._release); an
    # abort() from inside the action waited for the lock its caller held: the threads hung, and
    # the run waited for them (REQUEST_TIMEOUT_S * RETRIES) whenever the process barrier broke.
    local = threading.Barrier(n_threads, action=all_processes.wait)
    spares: queue.SimpleQueue = queue.SimpleQueue()  # shared by this process's threads
    threads = [
        threading.Thread(
            target=participant_thread,
            args=(
                Participant(plan.base, plan.slug, plan.n_trials, rec, spares),
                plan,
                local,
                stops,
                errors,
            ),
            daemon=True,
        )
        for _ in range(n_threads)
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) and not stops[plan.last_phase].wait(0.5):
        # the threads end early only when the run is aborted
        if os.getppid() != plan.coordinator:
            # it died (SIGKILL: no cleanup ran); the threads are daemons: they stop sending
            # load as this process ends, mid-request or not
            return
    deadline = time.monotonic() + REQUEST_TIMEOUT_S * RETRIES  # the last requests in flight
    for t in threads:
        t.join(timeout=max(deadline - time.monotonic(), 0.1))
    if errors:
        all_processes.abort()  # the coordinator stops waiting for this run
    stuck = sum(t.is_alive() for t in threads)
    results.put({"rec": rec.as_dict(), "errors": errors, "stuck": stuck, "pid": os.getpid()})
