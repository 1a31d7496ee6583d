"""The simulated participants of the load benchmark: HTTP only (requests), no Django.

Each `Participant` is one `requests` session that walks the participant pages like a browser:
the study link, every step up to the first trial, then trial page -> answer. Every request is
timed into a shared `Recorder`; connection errors, timeouts and 5xx responses are counted and the
request is retried (the server treats a repeated answer as already stored).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import requests

INDEX_RE = re.compile(r'name="index" value="(\d+)"')
REQUEST_TIMEOUT_S = 15
# The reference and answer phases alternate this many times, so that a change in the machine's
# speed during a run (other processes, CPU steal in a VM) weighs on both alike.
ROUNDS = 2
RETRIES = 5
# What the trial page's script posts with an answer (plays and fraction heard per position).
CLIENT_LOG = {"response_ms": 1234, "plays": {"r": 1, "A": 1, "B": 1},
              "heard": {"r": 1.0, "A": 1.0, "B": 1.0}, "audio_sample_rate": 48000}  # fmt: skip


class LoadTestError(RuntimeError):
    """The benchmark could not run (bad configuration, server did not start)."""


@dataclass
class Recorder:
    """Latencies per request kind, errors, and the answers acknowledged to the clients."""

    latencies: dict = field(default_factory=lambda: defaultdict(list))  # kind -> [(end, s)]
    errors: dict = field(default_factory=lambda: defaultdict(int))  # kind -> count
    acked: list = field(default_factory=list)  # (participant token, trial index)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float) -> None:
        # (monotonic end time, latency); list.append is atomic under the GIL
        self.latencies[kind].append((time.monotonic(), seconds))

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


class Participant:
    """One simulated participant: a requests session walking the participant pages."""

    _ids = itertools.count()

    def __init__(self, base: str, slug: str, rec: Recorder):
        self.base, self.slug, self.rec = base, slug, rec
        self.http = requests.Session()
        self.page_url = ""
        self.token = ""

    def request(self, kind: str, method: str, url: str, **kwargs) -> requests.Response:
        """Timed request; connection errors (a killed worker) are retried, each one counted."""
        for attempt in range(RETRIES):
            start = time.perf_counter()
            try:
                r = self.http.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
            except requests.RequestException:
                self.rec.error(kind)
                time.sleep(0.05 * (attempt + 1))
                continue
            self.rec.add(kind, time.perf_counter() - start)
            if r.status_code >= 500:
                self.rec.error(kind)
                time.sleep(0.05 * (attempt + 1))
                continue
            return r
        raise LoadTestError(f"{method} {url}: failed {RETRIES} times")

    def post_step(self, step: str, **data) -> requests.Response:
        data |= {"step": step, "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", "")}
        return self.request("flow", "POST", self.page_url, data=data, allow_redirects=False)

    def enter(self) -> None:
        """Study link -> first trial, through every step of the real flow."""
        self.http.cookies.clear()
        pid = f"load{os.getpid()}-{next(self._ids)}"
        r = self.request("flow", "GET", f"{self.base}/s/{self.slug}/?pid={pid}")
        self.page_url = r.url
        self.token = self.page_url.rstrip("/").rsplit("/", 1)[-1]
        self.post_step("browser_check", web_audio="1", sample_rate="48000", touch="0",
                       screen="1920x1080", ua_mobile="0")  # fmt: skip
        self.post_step("consent", decision="agree")
        self.post_step("questionnaire", musical_training="none", device="laptop",
                       headphones="over_ear")  # fmt: skip
        self.post_step("calibration")
        self.post_step("instructions")

    def trial_page(self, kind: str = "trial_page") -> int | None:
        r = self.request(kind, "GET", self.page_url)
        match = INDEX_RE.search(r.text)
        return int(match.group(1)) if match else None

    def answer(self, index: int, kind: str = "answer") -> None:
        log = json.dumps(CLIENT_LOG)
        data = {"step": "trials", "index": index, "choice": "AB"[index % 2], "log": log,
                "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", "")}  # fmt: skip
        self.request(kind, "POST", self.page_url, data=data, allow_redirects=False)

    def run_answers(self, stop: threading.Event, n_trials: int, kind: str = "answer") -> None:
        """Answer submission alone: POST the next answer as soon as the previous one returned.

        The next index is the previous one + 1 (slots are numbered in the order shown and the
        load-test study has no practice trials), so no trial page is needed in between. A POST
        that returned counts as acknowledged; had the server not stored it, every later POST of
        this participant would name the wrong slot, be refused, and show as acknowledged but
        not stored."""
        index = self.trial_page("setup")
        while not stop.is_set():
            if index is None:  # all trials answered: a new participant enters
                self.enter()
                index = self.trial_page("setup")
                continue
            self.answer(index, kind)
            self.rec.acked.append((self.token, index))
            index = index + 1 if index + 1 < n_trials else self.trial_page("setup")

    def run_trials(self, stop: threading.Event, think: float = 0.0, prefix: str = "") -> None:
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
            if index is None:  # all trials answered: a new participant enters
                self.enter()
                index = self.trial_page(page_kind)
                continue
            if think and stop.wait(think * rng.uniform(0.5, 1.5)):  # listening to the clips
                return  # the phase ended while listening: no answer after the stop
            self.answer(index, answer_kind)
            pending = index
            index = self.trial_page(page_kind)


def participant_thread(p, rec, barrier, stops, errors, think, n_trials):
    """One thread's life: enter, then the phases in order, separated by `barrier`:
    /healthz and answers alone (ROUNDS times), the trial loop, and (with `think`) the paced
    trial loop."""
    try:
        p.enter()
        barrier.wait()
        url = f"{p.base}/healthz"
        for r in range(ROUNDS):  # reference and answers alternate (see loadtest.ROUNDS)
            while not stops[f"healthz{r}"].is_set():
                p.request("healthz", "GET", url)
            barrier.wait()
            p.run_answers(stops[f"answers{r}"], n_trials)
            barrier.wait()
        p.run_trials(stops["loop"], 0.0, prefix="loop_")
        if think:
            barrier.wait()
            p.run_trials(stops["paced"], think, prefix="paced_")
    except threading.BrokenBarrierError:
        pass
    except Exception as exc:  # noqa: BLE001 (reported, and the run is marked failed)
        errors.append(f"{type(exc).__name__}: {exc}")
        barrier.abort()
