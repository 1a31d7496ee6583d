"""The simulated participant of the load benchmark: HTTP only (the standard library), no Django.

Each participant is one persistent `http.client` connection with its own cookies (about a
fifth of the CPU per request of a `requests` session, measured here) that walks the participant
pages like a browser: the study link, every step up to the first trial, then trial page ->
answer. Every request is timed from its first attempt to its answer; connection errors,
timeouts and 5xx responses are counted as failed attempts and the request is retried on a new
connection (the server treats a repeated answer as stored). The processes and threads that run
the participants through the phases are in `loadtest_processes`; what they record is in
`loadtest_recorder`.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import queue
import random
import re
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode, urlsplit

from evalsite.studies.loadtest_recorder import Recorder

INDEX_RE = re.compile(r'name="index" value="(\d+)"')
SLOT_RE = re.compile(r'name="slot" value="(\d+)"')  # the trial form's slot id
# The benchmark's server only (loadtest_urls): a participant's slot ids in order, which the
# answers-alone phases send without the trial pages that would show them.
SLOTS_PATH = "/loadtest/slots/"
REQUEST_TIMEOUT_S = 15
RETRIES = 5
ENTERED_IN_PHASE = "entered in a timed phase"  # Recorder.events: the spare pool ran dry
ASSIGN = "assign"  # request kind of the POST after the instructions, where trials are assigned
# A keep-alive connection idle this long is replaced before the next request: the server closes
# idle ones after its keep-alive timeout (loadtest_server.KEEP_ALIVE_S), and a request sent as it
# does fails. Threads sit idle that long only at barriers (waiting for the slowest).
IDLE_RECONNECT_S = 20.0
# What the trial page's script (static/studies/participant.js) posts with an answer when each
# clip was played once to the end: its keys, its event list, JSON.stringify's compact form.
CLIENT_LOG = json.dumps(
    {"response_ms": 1234, "plays": {"r": 1, "A": 1, "B": 1}, "heard": {"r": 1, "A": 1, "B": 1},
     "blur_events": 0, "audio_sample_rate": 48000,
     "events": [[412, "play r"], [5433, "ended r"], [5980, "play A"], [11001, "ended A"],
                [11610, "play B"], [16632, "ended B"], [16633, "unlocked"]],
     "hidden_ms": 0, "hidden_before_unlock_ms": 0, "viewport": "1280x720"},
    separators=(",", ":"),
)  # fmt: skip
# The log field of every answer body, encoded once: encoding it per request was ~10 % of a
# client's CPU per answer, on the cores the server runs on.
LOG_FIELD = urlencode({"log": CLIENT_LOG})
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class LoadTestError(RuntimeError):
    """The benchmark could not run (bad configuration, server did not start, client failed)."""


@dataclass
class Response:
    status: int
    location: str
    text: str


class Participant:
    """One simulated participant: a keep-alive connection and the cookies a browser would keep."""

    _ids = itertools.count()
    _writers = itertools.count()

    def __init__(
        self, base: str, slug: str, n_trials: int, rec: Recorder, spares: queue.SimpleQueue
    ):
        host, self.port = urlsplit(base).hostname, urlsplit(base).port
        if host is None:
            raise LoadTestError(f"base URL {base!r}: expected http://HOST:PORT")
        self.host: str = host
        self.slug, self.n_trials, self.rec, self.spares = slug, n_trials, rec, spares
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}  # name -> value as the server coded it
        self.page_path = ""
        self.token = ""
        self.index: int | None = None  # the next trial to answer (None: every trial answered)
        self.slot_ids: list[int] = []  # the id of each slot, by index, as the server names them
        self.last_used = 0.0  # when the connection last completed a request (monotonic)
        # bare writes (run_writes): a number no other thread of any process uses, and a counter
        self.writer, self.written = os.getpid() * 100_000 + next(self._writers), 0

    def _send(self, method: str, path: str, body: str | None) -> Response:
        if self.conn is not None and time.monotonic() - self.last_used > IDLE_RECONNECT_S:
            self._reconnect()  # the server may have closed it meanwhile, as browsers expect
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_S)
        headers = dict(FORM) if body is not None else {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        self.last_used = time.monotonic()
        for header in r.headers.get_all("Set-Cookie") or []:
            self._keep_cookie(header)
        return Response(r.status, r.headers.get("Location", ""), text)

    def _keep_cookie(self, header: str) -> None:
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            return
        for name, morsel in jar.items():
            if morsel["max-age"] == "0" or morsel.value == "":
                self.cookies.pop(name, None)  # deleted by the server
            else:
                self.cookies[name] = morsel.coded_value

    def request(self, kind: str, method: str, path: str, body: str | None = None) -> Response:
        """One request, timed once from its first attempt to its answer: connection errors (a
        killed worker), timeouts and 5xx are retried on a new connection, and the participant
        waits through them, so they are in its latency; each failed attempt is counted only as
        an error with its reason (no answer: not a request of the figures)."""
        start = time.perf_counter()
        for attempt in range(RETRIES):
            try:
                r = self._send(method, path, body)
            except (OSError, http.client.HTTPException) as exc:  # socket errors, timeouts too
                reason = type(exc).__name__
            else:
                if r.status < 500:
                    self.rec.add(kind, time.perf_counter() - start)
                    return r
                reason = f"HTTP {r.status}"
            self.rec.error(kind)
            self.rec.event(f"{kind}: {reason}")
            self._reconnect()
            time.sleep(0.05 * (attempt + 1))
        raise LoadTestError(f"{method} {path}: failed {RETRIES} times")

    def _reconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def post_step(self, step: str, kind: str = "flow", **data) -> Response:
        data |= {"step": step, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}
        return self.request(kind, "POST", self.page_path, urlencode(data))

    def enter(self) -> None:
        """Study link -> first trial, through every step of the real flow, as a new browser."""
        self.cookies.clear()
        pid = f"load{os.getpid()}-{next(self._ids)}"
        link = f"/s/{self.slug}/?pid={pid}"
        r = self.request("flow", "GET", link)  # the welcome page; sets the CSRF cookie
        if r.status != 200:  # (a 302 would be a pid entered before: ids are new in each run)
            raise LoadTestError(f"study link: expected the welcome page (200), got {r.status}")
        self.page_path = link  # its browser check is posted back to the link, which makes
        r = self.post_step("browser_check", web_audio="1", sample_rate="48000", touch="0",
                           screen="1920x1080", ua_mobile="0")  # the participant  # fmt: skip
        if r.status != 302 or "/p/" not in r.location:
            raise LoadTestError(f"study link: expected a redirect to /p/<token>/, got {r.status}")
        self.page_path = urlsplit(r.location).path
        self.token = self.page_path.rstrip("/").rsplit("/", 1)[-1]
        self.post_step("consent", decision="agree")
        self.post_step("questionnaire", musical_training="none", device="laptop",
                       headphones="over_ear")  # fmt: skip
        self.post_step("calibration")
        self.post_step("instructions", kind=ASSIGN)  # the server assigns the trial list
        self.slot_ids = []
        if self.trial_page("setup") is None:
            raise LoadTestError("entered: expected a trial page after the instructions")
        self.learn_slots()

    def learn_slots(self) -> None:
        """Read the participant's slot ids (an answer names its slot by number and id), for the
        answers that follow no trial page (`run_answers`, the cost mode)."""
        r = self.request("flow", "GET", SLOTS_PATH + self.token)
        if r.status != 200:
            raise LoadTestError(f"{SLOTS_PATH}{self.token}: expected 200, got {r.status}")
        self.slot_ids = [int(n) for n in r.text.split()]

    def answer_first(self) -> None:
        """Answer the current trial, in setup, once every participant entered: the planner then
        sees answers when the tables are analyzed after setup, as in a study under way. Had it
        seen an empty answers table, PostgreSQL would plan the participant queries once per
        connection with a scan of every answer where an index probe belongs
        (docs/experimenter.md: "Database upkeep")."""
        self.answer_next("setup")

    def answer_next(self, kind: str = "answer") -> None:
        """POST the answer to the current trial, count it acknowledged once the POST returned,
        and go on to the next trial (no trial page in between: `_after`)."""
        index = self.index
        if index is None:
            raise LoadTestError(f"participant {self.token}: every trial answered, none is next")
        self.answer(index, kind)
        self.rec.acked.append((self.token, index))
        self.index = self._after(index)

    def _after(self, index: int) -> int | None:
        """The trial after `index`: slots are numbered in the order shown (the load-test study
        has no practice trials), so no trial page is needed to know it."""
        return index + 1 if index + 1 < self.n_trials else None

    def enter_spares(self, n: int, stop) -> None:
        """Enter `n` more participants now (setup, untimed) into the process's shared pool, for
        any thread whose participant has answered every trial (`next`): entering costs the
        server ~20 answers' CPU (the trial list is assigned), which must not count in the timed
        phases, and threads are not served equally fast, so the pool is shared. Ends early
        when `stop` is set (the run was aborted: setup failed or timed out)."""
        current = self._who()
        for _ in range(n):
            if stop.is_set():
                break
            self.enter()
            self.spares.put(self._who())
        self.cookies, self.page_path, self.token, self.index, self.slot_ids = current

    def _who(self) -> tuple:
        return dict(self.cookies), self.page_path, self.token, self.index, self.slot_ids

    def next(self) -> None:
        """Go on as a spare participant; enter a new one (counted) when the pool is empty."""
        try:
            who = self.spares.get_nowait()
            self.cookies, self.page_path, self.token, self.index, self.slot_ids = who
        except queue.Empty:
            self.rec.event(ENTERED_IN_PHASE)
            self.enter()

    def trial_page(self, kind: str = "trial_page") -> int | None:
        """GET the participant's page; the trial it shows (None: no trial), also kept as the
        next one to answer, with its slot id."""
        r = self.request(kind, "GET", self.page_path)
        match, slot = INDEX_RE.search(r.text), SLOT_RE.search(r.text)
        self.index = int(match.group(1)) if match else None
        if self.index is not None and slot is not None:
            self.slot_ids += [0] * (self.index + 1 - len(self.slot_ids))
            self.slot_ids[self.index] = int(slot.group(1))
        return self.index

    def _answer_body(self, **fields) -> str:
        """A form body in the trial form's order: CSRF token, `fields`, then the client log."""
        data = {"csrfmiddlewaretoken": self.cookies.get("csrftoken", "")} | fields
        return f"{urlencode(data)}&{LOG_FIELD}"

    def answer(self, index: int, kind: str = "answer") -> None:
        if index >= len(self.slot_ids) or not self.slot_ids[index]:
            raise LoadTestError(f"participant {self.token}: slot {index}'s id was never shown")
        slot = self.slot_ids[index]
        body = self._answer_body(step="trials", index=index, slot=slot, choice="AB"[index % 2])
        r = self.request(kind, "POST", self.page_path, body)
        if r.status != 302:
            raise LoadTestError(f"answer: expected a redirect, got {r.status}")

    def run_answers(self, stop, kind: str = "answer") -> None:
        """Answer submission alone: POST the next answer as soon as the previous one returned,
        with no trial page in between (the next index is known: `_after`), also when a round
        starts or a spare participant goes on. A POST that returned counts as acknowledged;
        had the server not stored it, every later POST of this participant would name the
        wrong slot, be refused, and show as acknowledged but not stored."""
        while not stop.is_set():
            if self.index is None:  # all trials answered: the next participant goes on
                self.next()
                continue
            self.answer_next(kind)

    def run_writes(self, stop) -> None:
        """The second reference: POST a bare write (loadtest_views.py: one INSERT shaped like an
        answer, no checks) back to back, with the body an answer has."""
        while not stop.is_set():
            self.write_next()

    def write_next(self) -> None:
        """One bare write, numbered after this participant's previous one, counted once the POST
        returned."""
        n = self.written
        body = self._answer_body(writer=self.writer, index=n, slot=n, choice="AB"[n % 2])
        r = self.request("write", "POST", "/loadtest/bare-write", body)
        if r.status != 302:
            raise LoadTestError(f"bare write: expected a redirect, got {r.status}")
        self.rec.writes.append((self.writer, n))
        self.written = n + 1

    def post_next(self) -> None:
        """The bare write's POST (same body, same size) to the reference that stores nothing."""
        body = self._answer_body(writer=self.writer, index=self.written, slot=self.written,
                                 choice="A")  # fmt: skip
        r = self.request("post", "POST", "/loadtest/bare-post", body)
        if r.status != 302:
            raise LoadTestError(f"bare POST: expected a redirect, got {r.status}")

    def run_trials(self, stop, think: float = 0.0, prefix: str = "") -> None:
        """GET -> POST until `stop`; an answer counts as acknowledged once the next page the
        server shows is a different trial (or none), i.e. the server confirmed it moved on.
        Requests are recorded as `prefix` + "trial_page" / "answer"."""
        page_kind, answer_kind = prefix + "trial_page", prefix + "answer"
        pending = None
        rng = random.Random(self.token)
        if think:  # participants arrive spread over one think time, not all at once
            stop.wait(rng.uniform(0, think))
        index = self.trial_page(page_kind)
        while True:
            if pending is not None and index != pending:
                self.rec.acked.append((self.token, pending))
            pending = None
            if stop.is_set():
                return
            if index is None:  # all trials answered: the next participant goes on
                self.next()
                index = self.trial_page(page_kind)
                continue
            if think and stop.wait(think * rng.uniform(0.5, 1.5)):  # listening to the clips
                return  # the phase ended while listening: no answer after the stop
            self.answer(index, answer_kind)
            pending = index
            index = self.trial_page(page_kind)
