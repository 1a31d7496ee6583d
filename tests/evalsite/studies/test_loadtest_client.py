"""The load benchmark's simulated participant against a scripted local HTTP server: what it
records of a request that failed and was retried."""

from __future__ import annotations

import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evalsite.studies.loadtest_client import Participant
from evalsite.studies.loadtest_recorder import Recorder


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next of `script`: "reset" (no answer after a wait, the
    connection closed: a timeout or a killed worker as the client sees it) or a status code."""

    script: list = []

    def do_GET(self):
        step = self.script.pop(0)
        if step == "reset":
            time.sleep(0.3)
            self.close_connection = True
            return
        self.send_response(step)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("first", "reason", "at_least_s"), [("reset", "RemoteDisconnected", 0.3), (503, "HTTP 503", 0)]
)
def test_it_times_a_retried_request_once_from_its_first_attempt_to_its_answer(
    server, first, reason, at_least_s
):
    # A failed attempt is no answer: counted only as an error (and its reason), while the one
    # request's latency includes it, as a participant waited through it.
    Scripted.script = [first, 200]
    rec = Recorder()
    p = Participant(server, "s", 1, rec, queue.SimpleQueue())
    assert p.request("healthz", "GET", "/healthz").status == 200
    assert len(rec.latencies["healthz"]) == 1
    (_, seconds) = rec.latencies["healthz"][0]
    assert seconds >= at_least_s + 0.05  # the attempt, and the pause before the retry
    assert rec.errors == {"healthz": 1}
    assert rec.events == {f"healthz: {reason}": 1}
