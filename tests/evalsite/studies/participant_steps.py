"""Helpers that walk a participant through the flow with Django's test client."""

from __future__ import annotations

import json

from django.urls import reverse

from evalsite.studies import flow_screening, flow_trials
from evalsite.studies.models import Assignment, Participant

DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def url(p: Participant) -> str:
    return reverse("studies:participant", args=[p.token])


def post(client, p: Participant, step: str, **data):
    return client.post(url(p), {"step": step, **data}, HTTP_USER_AGENT=DESKTOP_UA)


def pass_browser_check(client, p):
    return post(client, p, "browser_check", web_audio="1", sample_rate="48000", ua_mobile="0")


def answer_questionnaire(client, p):
    return post(client, p, "questionnaire", musical_training="lt2", device="laptop",
                headphones="over_ear")  # fmt: skip


def screen(client, p, correct: bool = True):
    """Answer every screening trial (correctly or always wrongly)."""
    p.refresh_from_db()
    while p.step == "screening":
        n = len(p.screening.get("answers", []))
        target = flow_screening.screening_key(p)["target"]
        choice = target if correct else (target % 3) + 1
        draw = flow_screening.screening_draw(p)
        post(client, p, "screening", n=n, draw=draw, choice=choice, rt_ms=900)
        p.refresh_from_db()


def to_step(client, p, step: str) -> Participant:
    """Walk p forward (passing every check) until it reaches `step`."""
    actions = {
        "browser_check": lambda: pass_browser_check(client, p),
        "consent": lambda: post(client, p, "consent", decision="agree"),
        "questionnaire": lambda: answer_questionnaire(client, p),
        "calibration": lambda: post(client, p, "calibration"),
        "screening": lambda: screen(client, p),
        "instructions": lambda: post(client, p, "instructions"),
    }
    p.refresh_from_db()
    while p.step != step:
        actions[p.step]()
        p.refresh_from_db()
    return p


def client_log(**overrides) -> str:
    log = {"response_ms": 1234, "plays": {"r": 1, "A": 2, "B": 1},
           "heard": {"r": 1.0, "A": 1.0, "B": 0.95}, "blur_events": 1,
           "audio_sample_rate": 48000}  # fmt: skip
    return json.dumps(log | overrides)


def listened(slot: Assignment) -> None:
    """Fast-forward past the slot's listening time (its clips take seconds to play): an answer
    to it is stored from now on, if its page was shown."""
    Assignment.objects.filter(pk=slot.pk, answerable_ms__isnull=False).update(answerable_ms=0)


def open_trial(client, p) -> Assignment:
    """Show the current trial's page, as a browser does (stamps its first view), and let its
    listening time pass: the slot, ready to be answered."""
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    slot = flow_trials.current_slot(p)
    listened(slot)
    return slot


def answer_current(client, p, choice: str = "A", expected: bool = False):
    """Answer the current slot (with the right answer to practice trials when `expected`)."""
    slot = open_trial(client, p)
    if expected and slot.trial.expected:
        choice = "A" if slot.displayed_first == slot.trial.expected else "B"
    response = answer(client, p, slot, choice)
    p.refresh_from_db()
    return slot, response


def answer(client, p, slot: Assignment, choice: str = "A", step: str = "", **log):
    """POST an answer as the trial form of `slot`'s page sends it: its number and its id."""
    return post(client, p, step or p.step, index=slot.index, slot=slot.pk, choice=choice,
                log=client_log(**log))  # fmt: skip


def acknowledge(client, p):
    """Press Continue on the practice feedback now stored (its form names the slot it follows)."""
    p.refresh_from_db()
    return post(client, p, p.step, action="continue", slot=p.state["feedback"]["slot"])


def finish(client, p) -> Participant:
    """Answer every remaining slot (acknowledging practice feedback) until the end."""
    p.refresh_from_db()
    while p.step in ("practice", "trials"):
        if p.state.get("feedback"):
            acknowledge(client, p)
            p.refresh_from_db()
            continue
        answer_current(client, p, expected=True)
    return p


def finish_practice(client, p):
    while p.step == "practice":
        if p.state.get("feedback"):
            acknowledge(client, p)
        else:
            answer_current(client, p, expected=True)
        p.refresh_from_db()


def leave(client, p):
    return client.post(url(p), {"step": p.step, "action": "withdraw"}, HTTP_USER_AGENT=DESKTOP_UA)
