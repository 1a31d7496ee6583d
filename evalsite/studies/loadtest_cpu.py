"""The load benchmark's CPU readings, from Linux /proc: gunicorn's workers, PostgreSQL, the client
processes and the whole machine, read around each phase of the saturated run (loadtest.py) and
each batch of the cost mode (loadtest_cost.py), so that a reader sees which part was the
bottleneck.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from evalsite.studies.loadtest_server import worker_pids


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


def cpu_snapshot(server, clients) -> dict[str, dict[int, float]]:
    machine = machine_seconds()
    return {"gunicorn": worker_cpu_seconds(server), "postgres": postgres_cpu_seconds(),
            "clients": _cpu_seconds(clients), "machine": {0: machine["busy"]},
            "steal": {0: machine["steal"]}}  # fmt: skip
