"""The keyboard on the participant pages in real headless Chromium (live server, PostgreSQL):
a trial taken by keyboard alone with the focus shown, held keys play a clip once, Space and Enter
press the focused button, the focus lands on the answers; and the time the page was hidden, as
the client log records it."""

from __future__ import annotations

import json

import pytest

from evalsite.studies.loadtest_client import CLIENT_LOG
from evalsite.studies.models import Answer, Participant
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import CLIP_S, quick_study
from tests.browser.participant_steps import (
    listen_all,
    scripted,
    study_url,
    through_calibration,
    to_calibration,
    to_first_trial,
)
from tests.evalsite.studies.conftest import make_catalogue, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def hold_then_listen(page, key: str, presses: int) -> None:
    """Hold `key` (a press, then auto-repeats) to play the reference, then play A and B."""
    for _ in range(presses):
        page.keyboard.down(key)
    page.keyboard.up(key)
    page.wait_for_selector("[data-state='r'][data-value='done']")
    for clip in ("A", "B"):
        page.click(f"#play-{clip}")
        page.wait_for_selector(f"[data-state='{clip}'][data-value='done']")


@pytest.mark.slow  # a keyboard variant; the keyboard-only trial stays in the default tier
def test_a_held_key_plays_a_clip_once_and_the_log_holds_the_hidden_time(live_server, page, owner):
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "held-key")
    scripted(page)
    hold_then_listen(page, "1", presses=4)  # key auto-repeat: one press, three repeats
    assert "answer now" in page.inner_text("[data-locked-hint]")  # said on unlock
    with page.expect_navigation():
        page.keyboard.press("b")
    answer = Answer.objects.get(participant=p)
    assert answer.plays_reference == 1 and answer.client["hidden_ms"] == 0
    # the load benchmark posts the log this script writes: the same keys (jsonb keeps no order)
    assert sorted(json.loads(CLIENT_LOG)) == sorted(answer.client)


def hide_page(page, ms: int) -> None:
    """The page hidden (another tab) for `ms`: headless Chromium never hides it, so document.hidden
    and its visibilitychange are faked."""
    page.evaluate("""() => { window.fakeHidden = true;
        const hidden = {configurable: true, get: () => window.fakeHidden};
        Object.defineProperty(document, 'hidden', hidden);
        document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_timeout(ms)
    page.evaluate("""() => { window.fakeHidden = false;
        document.dispatchEvent(new Event('visibilitychange')); }""")


# Whether the focused element shows it (WCAG 2.4.7): an outline or a box shadow is drawn.
FOCUS_SHOWN = """() => { const s = getComputedStyle(document.activeElement);
    return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
        || s.boxShadow !== 'none'; }"""


def tab_to(page, element_id: str, most: int = 8) -> None:
    """Press Tab until `element_id` has the focus; every element it stops at must show it."""
    for _ in range(most):
        page.keyboard.press("Tab")
        at = page.evaluate("document.activeElement.id || document.activeElement.outerHTML")
        assert page.evaluate(FOCUS_SHOWN), f"no visible focus on {at[:80]}"
        if at == element_id:
            return
    raise AssertionError(f"#{element_id} not reached in {most} presses of Tab")


def test_a_trial_can_be_taken_by_keyboard_alone_with_the_focus_shown(live_server, page, owner):
    # test_participant_keys' other tests use a focus set by the test or the shortcuts: here the
    # participant moves with Tab, presses play and answer buttons, then answers the next trial
    # with the documented shortcuts, the arrow keys included.
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "keyboard-only")
    scripted(page)
    for clip, key in (("r", "Enter"), ("A", " "), ("B", "Enter")):
        tab_to(page, f"play-{clip}")
        page.keyboard.press(key)
        page.wait_for_selector(f"[data-state='{clip}'][data-value='done']")
    tab_to(page, "choose-A", most=1)  # unlocked: the next stop after B's play button
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#play-r")
    scripted(page)
    for key, clip in (("1", "r"), ("2", "A"), ("3", "B")):
        page.keyboard.press(key)
        page.wait_for_selector(f"[data-state='{clip}'][data-value='done']")
    with page.expect_navigation():
        page.keyboard.press("ArrowRight")
    answers = Answer.objects.filter(participant=p).order_by("pk")
    assert [a.chosen_position for a in answers] == ["A", "B"]


@pytest.mark.slow  # a keyboard variant; the keyboard-only trial stays in the default tier
def test_the_hidden_time_logged_is_within_the_response_time(live_server, page, owner):
    # response_ms counts from the unlock: so does hidden_ms; the time hidden before is apart.
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "hidden")
    scripted(page)
    hide_page(page, 1000)  # before the clips played
    listen_all(page)
    hide_page(page, 300)  # after the unlock
    with page.expect_navigation():
        page.keyboard.press("b")
    answer = Answer.objects.get(participant=p)
    assert 300 <= answer.client["hidden_ms"] <= answer.response_ms
    assert answer.client["hidden_before_unlock_ms"] >= 1000


def test_the_keyboard_focus_lands_on_the_answers_after_a_play_once_sound(live_server, page, owner):
    study = make_study(owner, make_catalogue(owner, seconds=CLIP_S), per_instrument=1)
    page.goto(study_url(live_server, study, pid="focus"))
    through_calibration(page)
    page.wait_for_selector("input[name=n][value='0']", state="attached")
    scripted(page)
    page.focus("#play")
    page.keyboard.press("Enter")  # plays the sounds once: the button disables itself
    page.wait_for_selector("[data-choice='1']:not([disabled])")
    assert page.evaluate("document.activeElement.dataset.choice") == "1"


@pytest.mark.slow  # a keyboard variant; the keyboard-only trial stays in the default tier
def test_a_held_enter_on_a_focused_play_button_plays_the_clip_once(live_server, page, owner):
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "held-enter")
    scripted(page)
    page.focus("#play-r")
    hold_then_listen(page, "Enter", presses=6)  # one press, five repeats
    with page.expect_navigation():
        page.keyboard.press("b")
    assert Answer.objects.get(participant=p).plays_reference == 1


def test_space_on_a_focused_button_presses_it_instead_of_replaying(live_server, page, owner):
    study = quick_study(owner)
    page.goto(study_url(live_server, study, pid="space"))
    to_calibration(page)
    page.keyboard.press(" ")  # nothing focused: the shortcut plays the noise
    page.wait_for_selector("#continue:not([disabled])")
    page.focus("#continue")
    with page.expect_navigation():
        page.keyboard.press(" ")  # the focused button is pressed
    assert Participant.objects.get(external_pid="space").step == "instructions"


def test_space_after_the_play_keys_does_not_answer_a_trial(live_server, page, owner):
    # The answer keys answer; Space, which plays nothing on a trial page, must not press "A".
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "space-trial")
    scripted(page)
    for key, clip in (("1", "r"), ("2", "A"), ("3", "B")):
        page.keyboard.press(key)
        page.wait_for_selector(f"[data-state='{clip}'][data-value='done']")
    page.keyboard.press(" ")
    with page.expect_navigation():
        page.keyboard.press("b")
    assert [a.chosen_position for a in Answer.objects.filter(participant=p)] == ["B"]


@pytest.mark.slow  # a keyboard variant; the keyboard-only trial stays in the default tier
def test_a_second_space_replays_the_noise_and_leaves_the_screening_unanswered(
    live_server, page, owner
):
    study = make_study(owner, make_catalogue(owner, seconds=CLIP_S), per_instrument=1)
    page.goto(study_url(live_server, study, pid="space-twice"))
    to_calibration(page)
    page.keyboard.press(" ")  # plays the noise
    page.wait_for_selector("#continue:not([disabled])")
    page.keyboard.press(" ")  # plays it again: the documented shortcut, not "continue"
    page.wait_for_function("!document.querySelector('audio[data-key=cal]').paused")
    p = Participant.objects.get(external_pid="space-twice")
    assert p.step == "calibration"
    with page.expect_navigation():
        page.click("#continue")
    page.wait_for_selector("input[name=n][value='0']", state="attached")
    scripted(page)
    page.keyboard.press(" ")  # plays the sounds, once
    page.wait_for_selector("[data-choice='1']:not([disabled])")
    page.keyboard.press(" ")  # played already: nothing happens
    with page.expect_navigation():
        page.keyboard.press("2")
    p.refresh_from_db()
    assert [a["choice"] for a in p.screening["answers"]] == [2]
