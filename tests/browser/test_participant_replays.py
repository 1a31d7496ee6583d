"""Replays counted across reloads of one trial page in one browser tab (sessionStorage, keyed by
the slot's id, which the page and its sound URLs carry already): play, reload, play again, and
the stored answer counts every play; the next trial starts from nothing."""

from __future__ import annotations

import pytest

from evalsite.studies import flow_trials
from evalsite.studies.models import Answer
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import quick_study
from tests.browser.participant_steps import listen_all, scripted, to_first_trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _play(page, key: str) -> None:
    page.click(f"#play-{key}")
    page.wait_for_selector(f"[data-state='{key}'][data-value='done']")


def test_plays_survive_a_reload_of_the_same_trial_in_the_same_tab(live_server, page, owner):
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "reloader")
    first = flow_trials.current_slot(p)
    scripted(page)
    _play(page, "r")
    _play(page, "A")
    page.reload()
    page.wait_for_selector("#play-r")
    assert page.is_disabled("#choose-A")  # a reload still asks for every clip to be played
    kept = page.evaluate(f"JSON.parse(sessionStorage.getItem('csn-listened:{first.pk}'))")
    assert kept["plays"] == {"r": 1, "A": 1, "B": 0}
    assert set(kept["bins"]["r"]) == {"1"}  # heard to the end, kept for the reloaded page
    assert "1" not in kept["bins"].get("B", "")  # not played yet
    listen_all(page)
    with page.expect_navigation():
        page.click("#choose-A")
    answer = Answer.objects.get(participant=p, trial=first.trial)
    played = {first.displayed_first: 2, "ab".replace(first.displayed_first, ""): 1}  # A twice
    assert answer.plays_reference == 2
    assert (answer.plays_a, answer.plays_b) == (played["a"], played["b"])
    assert min(answer.heard_reference, answer.heard_a, answer.heard_b) > 0.9
    page.wait_for_selector("#play-r")
    second = flow_trials.current_slot(p)
    listen_all(page)  # another slot: its counts start from nothing
    with page.expect_navigation():
        page.click("#choose-A")
    answer = Answer.objects.get(participant=p, trial=second.trial)
    assert (answer.plays_reference, answer.plays_a, answer.plays_b) == (1, 1, 1)
