"""Simulated participants for the demo: real HTTP through the participant pages.

Every step (entry link, browser check, consent, questionnaire, calibration, headphone screening,
instructions, practice, trials) is a GET/POST against the running site, exactly what a browser
sends, so answers are stored by the same views and rules as a person's. What a simulated
listener *decides* comes from an oracle that reads the database (it must: the pages are blind):
attentive listeners pass screening and catch trials, and on a main trial agree with the model's
choice with the probability given for that trial's instrument. A repeat catch trial (a main trial
again, A/B swapped) has no correct answer: they choose the same candidate as on the original, now
in the other position, as an attentive listener would (a repeat shown before its original is
answered as a main trial). Simulated listeners do not wait for the clips to play
(`skip_listening`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass

import requests

INDEX_RE = re.compile(r'name="index" value="(\d+)"')
SLOT_RE = re.compile(r'name="slot" value="(\d+)"')  # the slot a trial or its feedback names
MAX_REQUESTS = 2000  # per participant: a bound so a flow bug cannot loop forever
SIMULATED_PID_PREFIX = "sim-"  # pids sim-<seed>-<rates>-<i>: see simulated_prefix


class SimulationError(RuntimeError):
    pass


@dataclass
class Outcome:
    participant: str
    step: str
    answers: int
    earlier: bool = False  # finished by an earlier run with the same options: nothing done now


def simulated_prefix(seed: int, rates: dict[str, float]) -> str:
    """The pid prefix of one run's simulated participants, sim-<seed>-<rates' short hash>-: a
    rerun with the same seed and rates resumes and skips its own participants (idempotent), and
    one with other rates simulates new ones instead of counting the first run's answers as its
    own; the demo recovers each run's agreement from its prefix only."""
    canonical = json.dumps(sorted(rates.items()))  # the same rates in any order
    tag = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    return f"{SIMULATED_PID_PREFIX}{seed}-{tag}-"


def simulation_summary(outcomes: list[Outcome]) -> str:
    """The simulate stage's line: participants simulated now (with the steps they ended at) apart
    from those an earlier run with the same options had finished, and the answers of all."""
    now = [o for o in outcomes if not o.earlier]
    steps = ", ".join(sorted({o.step for o in now})) or "none"
    answers = sum(o.answers for o in outcomes)
    return (
        f"{len(outcomes)} participants: {len(now)} simulated now ({steps}), "
        f"{len(outcomes) - len(now)} done earlier with these options; {answers} answers"
    )


def _position(displayed_first: str, canonical: str) -> str:
    return "A" if displayed_first == canonical else "B"


def decide(slot, rates: dict[str, float], rng: random.Random, earlier: int | None = None) -> str:
    """The screen position ("A"/"B") a simulated listener picks for an assignment slot.
    earlier: on a repeat, the clip it chose on the original trial (None: not answered yet)."""
    trial = slot.trial
    if trial.expected:  # practice and catch trials with a correct answer
        return _position(slot.displayed_first, trial.expected)
    if trial.repeat_of_id is not None and earlier is not None:
        return _position(slot.displayed_first, "a" if earlier == trial.candidate_a_id else "b")
    if trial.is_practice or trial.model_choice is None:
        return rng.choice("AB")
    other = "b" if trial.model_choice == "a" else "a"
    agree = rng.random() < rates.get(trial.instrument, 0.5)
    return _position(slot.displayed_first, trial.model_choice if agree else other)


class SimulatedParticipant:
    def __init__(self, base_url: str, slug: str, pid: str, rates: dict[str, float], seed: int):
        self.base, self.slug, self.pid = base_url.rstrip("/"), slug, pid
        self.rates, self.rng = rates, random.Random(seed)
        self.http = requests.Session()
        self.page_url = ""
        self.requests = 0

    def _req(self, method: str, url: str, **kw) -> requests.Response:
        self.requests += 1
        if self.requests > MAX_REQUESTS:
            raise SimulationError(f"{self.pid}: more than {MAX_REQUESTS} requests; flow stuck?")
        r = self.http.request(method, url, timeout=30, **kw)
        if r.status_code >= 400:
            raise SimulationError(f"{self.pid}: {method} {url} -> HTTP {r.status_code}")
        return r

    def post(self, step: str, **data) -> requests.Response:
        data |= {"step": step, "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", "")}
        return self._req("POST", self.page_url, data=data)

    def participant(self):
        from evalsite.studies.models import Participant

        token = self.page_url.rstrip("/").rsplit("/", 1)[-1]
        return Participant.objects.select_related("study").get(token=token)

    def run(self) -> Outcome:
        self.page_url = f"{self.base}/s/{self.slug}/?pid={self.pid}"
        r = self._req("GET", self.page_url)
        if not r.history:  # the welcome page: the participant is made when its browser check
            r = self.post("browser_check", web_audio="1", sample_rate="48000", touch="0",
                          screen="1920x1080", ua_mobile="0")  # is posted back  # fmt: skip
        # (else its pid was known, from an earlier run of the demo: resumed, at its own page)
        self.page_url = r.url
        first = True
        while True:
            p = self.participant()
            if p.step in type(p).FINAL_STEPS:
                return Outcome(self.pid, p.step, p.answers.count(), earlier=first)
            first = False
            self.step(p)

    def step(self, p) -> None:
        from evalsite.studies import flow_screening

        s = p.step
        if s == "browser_check":
            self.post(s, web_audio="1", sample_rate="48000", touch="0", screen="1920x1080",
                      ua_mobile="0")  # fmt: skip
        elif s == "consent":
            self.post(s, decision="agree")
        elif s == "questionnaire":
            self.post(s, musical_training="none", device="laptop", headphones="over_ear")
        elif s in {"calibration", "instructions"}:
            self.post(s)
        elif s == "screening":
            n = len(p.screening.get("answers", []))
            target = flow_screening.screening_key(p)["target"]  # of the page last drawn
            self.post(s, n=str(n), draw=str(flow_screening.screening_draw(p)), choice=str(target),
                      rt_ms="2500")  # fmt: skip
        elif s in {"practice", "trials"}:
            self.trial(p, s)
        else:
            raise SimulationError(f"{self.pid}: no simulated action for step {s!r}")

    def trial(self, p, step: str) -> None:
        from evalsite.studies import flow_trials

        page = self._req("GET", self.page_url).text
        named = SLOT_RE.search(page)
        if p.state.get("feedback"):
            self.post(step, action="continue", slot=named.group(1) if named else "")
            return
        match = INDEX_RE.search(page)
        slot = flow_trials.current_slot(p)
        if match is None or named is None or slot is None:
            return  # the server finishes the participant on the next GET
        choice = decide(slot, self.rates, self.rng, original_choice(p, slot.trial))
        skip_listening(slot)
        log = {"response_ms": self.rng.randint(1500, 6000), "plays": {"r": 1, "A": 1, "B": 1},
               "heard": {"r": 1.0, "A": 1.0, "B": 1.0}, "audio_sample_rate": 48000}  # fmt: skip
        self.post(
            step, index=match.group(1), slot=named.group(1), choice=choice, log=json.dumps(log)
        )


def original_choice(p, trial) -> int | None:
    """The clip p chose on the trial that `trial` repeats; None if p has not answered it."""
    if trial.repeat_of_id is None:
        return None
    first = p.answers.filter(trial_id=trial.repeat_of_id).select_related("trial").first()
    if first is None:
        return None
    return first.trial.candidate_a_id if first.chosen == "a" else first.trial.candidate_b_id


def skip_listening(slot) -> None:
    """A simulated listener does not play the clips: its trial's listening time (the study's
    `min_listen_share` of the three clips, which the server waits for before it stores an
    answer) is skipped by moving the slot's earliest answer time to its first view, instead of
    waiting seconds per trial. The one shortcut the simulation takes past the site's rules."""
    from evalsite.studies.models import Assignment

    Assignment.objects.filter(pk=slot.pk, answerable_ms__isnull=False).update(answerable_ms=0)


def simulate(base_url: str, slug: str, n: int, rates: dict[str, float], seed: int) -> list:
    """Run n simulated participants one after another (pids `simulated_prefix` + i); returns
    their outcomes."""
    outcomes, prefix = [], simulated_prefix(seed, rates)
    for i in range(n):
        sim = SimulatedParticipant(base_url, slug, f"{prefix}{i:04d}", rates, seed * 7919 + i)
        outcomes.append(sim.run())
    return outcomes
