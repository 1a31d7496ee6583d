"""The demo's web server refuses a port another server holds, and never takes another process's
answer for its own (no training, no database: the port check and the wait only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evalsite.demo_options import DemoError, DemoOptions
from evalsite.demo_processes import Server

ROOT = Path(__file__).resolve().parent.parent


def _opts(home: Path, port: int, simulate: int = 0) -> DemoOptions:
    return DemoOptions(home=home, tracks=1, seconds=1.0, seed=0, train_steps=1, simulate=simulate,
                       rates={}, host="127.0.0.1", port=port, serve=True)  # fmt: skip


@pytest.fixture
def held_port():
    """A port on 127.0.0.1 that another server listens on, as a running `make demo` does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Django's runserver binds
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _assert_port_message(text: str, port: int) -> None:
    assert f"port {port}" in text, text
    assert "another `make demo` is probably serving" in text, text
    assert "Ctrl-C" in text, text
    # the form that works through make (`make demo --port N` is an option of make's, refused)
    assert 'make demo ARGS="--port N"' in text, text


@pytest.mark.timeout(60)  # a wait for the port to come free (or for /healthz) never ends
def test_it_refuses_to_start_its_server_on_a_port_in_use(tmp_path, held_port):
    server = Server(_opts(tmp_path, held_port))
    with pytest.raises(DemoError) as refused:
        server.__enter__()
    assert server.proc is None  # refused before runserver started, so none to fail later
    _assert_port_message(str(refused.value), held_port)


def test_it_stops_before_any_stage_when_its_port_is_in_use(tmp_path, held_port):
    env = os.environ | {"CSN_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "evalsite.demo", "--simulate", "4", "--port", str(held_port)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[1/" not in done.stdout, done.stdout  # no stage ran
    _assert_port_message(done.stderr, held_port)


class _ForeignServer(Server):
    """A server whose child fails as runserver does on a taken port, after a moment."""

    def command(self) -> list[str]:
        code = "import time; time.sleep(0.5); print('Error: That port is already in use.')"
        return [sys.executable, "-c", code + "; raise SystemExit(1)"]


def test_it_does_not_take_another_servers_answer_for_its_own(tmp_path):
    ours: list[_ForeignServer] = []

    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self):
            ours[0].proc.wait(timeout=10)  # answers only once our child has failed
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        server = _ForeignServer(_opts(tmp_path, other.server_address[1]))
        ours.append(server)
        server.start()
        with pytest.raises(DemoError) as failed:
            server.wait_until_serving()
    finally:
        other.shutdown()
        other.server_close()
    assert "the web server exited (1)" in str(failed.value)
    assert "That port is already in use" in str(failed.value)  # its cause, not only the log
