"""The demo stops what it started when it is killed or its terminal closes, as on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The demo's first stage replaced by one that starts a child the way LocalWorker and Server do
# (a process stopped by a context manager's exit) and then waits, as a long stage would.
SCRIPT = textwrap.dedent(
    """
    import subprocess, sys, time
    from evalsite import demo

    class Child:
        def __enter__(self):
            self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            return self

        def __exit__(self, *exc):
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def stage_data(opts):
        with Child() as child:
            # printed inside the block: a signal handled before __enter__ returned would skip
            # __exit__ (the test sends it as soon as it reads the pid)
            print(child.proc.pid, flush=True)
            time.sleep(300)

    demo.stage_data = stage_data
    sys.exit(demo.main(["--no-serve"]))
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else ""
    )
    return state != "Z"  # a zombie has exited


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_it_stops_its_child_processes_when_killed_or_its_terminal_closes(tmp_path, signum):
    env = os.environ | {"CSN_HOME": str(tmp_path / "home")}
    demo = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = demo.stdout.readline()  # the stage's "[1/4] data ..." line, then the child
        while not line.strip().isdigit():
            line = demo.stdout.readline()
        child = int(line)
        demo.send_signal(signum)
        assert demo.wait(timeout=60) == 128 + signum
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the demo's child outlived it"
    finally:
        demo.kill()
