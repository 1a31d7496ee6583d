"""Participants in real headless Chromium against the site on the live server (PostgreSQL).

Screenshots of every step go to artifacts/screens/ (01_entry.png ... 11_refused.png).
Clips are ~1 s tones generated here and the screening is shortened (tests' CSN_SCREENING).
"""

from __future__ import annotations

import json
import time

import pytest
from django.urls import reverse

from evalsite.studies import flow_trials
from evalsite.studies.loadtest_client import CLIENT_LOG
from evalsite.studies.models import Answer, Participant
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_steps import (
    listen_all,
    right_choice,
    screen,
    scripted,
    through_calibration,
    to_calibration,
)
from tests.evalsite.studies.conftest import make_catalogue, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CLIP_S = 0.6


@pytest.fixture
def screens(artifacts_dir):
    folder = artifacts_dir / "screens"
    folder.mkdir(exist_ok=True)
    return folder


def study_url(live_server, study, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{live_server.url}{reverse('studies:entry', args=[study.slug])}?{query}"


def test_it_takes_a_participant_through_a_whole_study(live_server, page, owner, screens):
    prolific = "https://app.prolific.com/submissions/complete"
    catalogue = make_catalogue(owner, seconds=CLIP_S)
    study = make_study(owner, catalogue, 1, practice_trials=1, prolific_completion_url=prolific)
    shot = lambda name: str(screens / f"{name}.png")  # noqa: E731
    page.goto(study_url(live_server, study, PROLIFIC_PID="pp-1", STUDY_ID="s1", SESSION_ID="x1"))
    through_calibration(page, shot)
    p = Participant.objects.get(prolific_pid="pp-1")
    screen(page, p, correct=True, shot=shot, reload_at=1)
    page.wait_for_selector("text=Instructions")
    p.refresh_from_db()
    assert [a["draw"] for a in p.screening["answers"]] == [0, 1] + [0] * (
        len(p.screening["answers"]) - 2
    )
    assert all(a["correct"] for a in p.screening["answers"])  # each scored against its own draw
    page.screenshot(path=shot("06_instructions"))
    page.click("#continue")

    answered_before_reload = None
    main_seen = 0
    while True:
        p.refresh_from_db()
        if p.step == "done":
            break
        if page.query_selector("#feedback"):
            page.screenshot(path=shot("07_practice_feedback"))
            page.click("#continue")
            page.wait_for_load_state()
            continue
        page.wait_for_selector("#play-r")
        main_seen += p.step == "trials"
        if p.step == "trials" and main_seen == 1:
            page.click("a[lang=ja]")  # the same trial in Japanese, then back to English
            page.wait_for_selector("text=どちらの候補")
            page.screenshot(path=shot("08_trial_ja"))
            page.click("a[lang=en]")
            page.wait_for_selector("#play-r")
        listen_all(page)
        if p.step == "trials":
            if main_seen == 1:
                page.screenshot(path=shot("08_trial"))
            if main_seen == 2 and answered_before_reload is None:
                # Reload mid-study, then come back through the study link: same trial again.
                index = flow_trials.current_slot(p).index
                answered_before_reload = Answer.objects.filter(participant=p).count()
                page.reload()
                page.goto(study_url(live_server, study, PROLIFIC_PID="pp-1"))
                page.wait_for_selector(f"form[data-trial='{index}']", state="attached")
                assert Answer.objects.filter(participant=p).count() == answered_before_reload
                listen_all(page)
        choice = right_choice(p)
        with page.expect_navigation():
            page.keyboard.press(choice.lower())

    page.wait_for_selector("#completion-code")
    page.screenshot(path=shot("09_done"))
    p.refresh_from_db()
    answers = Answer.objects.filter(participant=p)
    assert answers.count() == p.slots.count() and answered_before_reload is not None
    assert all(a.plays_reference >= 1 and a.plays_a >= 1 and a.plays_b >= 1 for a in answers)
    assert all(a.response_ms is not None and a.audio_sample_rate for a in answers)
    assert all(min(a.heard_reference, a.heard_a, a.heard_b) > 0.9 for a in answers)
    assert {a.trial.catch_kind for a in answers if a.trial.is_catch} == {
        "identical", "attention", "repeat"}  # fmt: skip
    catch = [a for a in answers if a.trial.is_catch and a.trial.expected]
    assert all(a.chosen == a.trial.expected for a in catch)
    href = page.get_attribute("#prolific", "href")
    assert href.endswith(f"cc={p.completion_code}")


def test_it_screens_out_a_participant_who_fails_the_headphone_check(
    live_server, page, owner, screens
):
    study = make_study(owner, make_catalogue(owner, seconds=CLIP_S), per_instrument=1)
    page.goto(study_url(live_server, study, pid="fails"))
    through_calibration(page)
    p = Participant.objects.get(external_pid="fails")
    screen(page, p, correct=False)
    page.wait_for_selector("#screen-out-code")
    page.screenshot(path=str(screens / "10_screened_out.png"))
    p.refresh_from_db()
    assert p.step == "screened_out" and page.inner_text("#screen-out-code") == p.screen_out_code
    assert not p.slots.exists()


def to_first_trial(live_server, page, study, pid) -> Participant:
    page.goto(study_url(live_server, study, pid=pid))
    through_calibration(page)
    page.click("#continue")  # instructions (no screening, no practice in this study)
    page.wait_for_selector("#play-r")
    return Participant.objects.get(external_pid=pid)


def quick_study(owner):
    return make_study(owner, make_catalogue(owner, seconds=CLIP_S), per_instrument=1,
                      screening=False, practice_trials=0)  # fmt: skip


def test_it_stores_one_answer_for_a_double_click_and_a_replayed_post(live_server, page, owner):
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "dbl")
    slot = flow_trials.current_slot(p)
    listen_all(page)
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.post_data))
    with page.expect_navigation():
        page.dblclick("#choose-B")
    page.wait_for_selector(f"form[data-trial='{slot.index + 1}']", state="attached")
    assert len(posts) == 1  # the page sent one submission
    replay = page.request.post(
        page.url, data=posts[0], headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert replay.ok  # redirected back to the current step, nothing stored
    stored = Answer.objects.filter(participant=p, trial=slot.trial)
    assert stored.count() == 1 and stored.get().chosen_position == "B"
    assert Answer.objects.filter(participant=p).count() == 1


def test_it_refuses_an_answer_sent_before_the_clips_played_and_says_so_once(
    live_server, page, owner
):
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "too-fast")
    slot = flow_trials.current_slot(p)
    with page.expect_navigation():  # a script fills the form and sends it without listening
        page.evaluate("""() => { const f = document.querySelector('form[data-answer]');
                                 f.elements.choice.value = 'A'; f.submit(); }""")
    page.wait_for_selector("#early", state="visible")
    assert page.url.endswith(f"/p/{p.token}/")  # the notice is not kept in the address
    assert not Answer.objects.filter(participant=p).exists()
    assert page.is_disabled("#choose-A")  # the same trial, locked until its clips play
    p.refresh_from_db()
    assert p.early_answers == 1
    page.reload()
    page.wait_for_selector("#play-r")
    assert page.locator("#early").count() == 0  # said once, not at every reload
    listen_all(page)
    with page.expect_navigation():
        page.click("#choose-B")
    assert Answer.objects.get(participant=p, trial=slot.trial).chosen_position == "B"


def test_leaving_the_study_asks_first_and_then_deletes_the_answers(live_server, page, owner):
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "leaver")
    listen_all(page)
    with page.expect_navigation():
        page.click("#choose-A")
    page.wait_for_selector("#play-r")
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.evaluate("window.stayed = true")  # gone if the page were replaced
    page.once("dialog", lambda dialog: dialog.dismiss())  # "Leave the study now?" -> no
    page.click("#leave")
    assert page.evaluate("window.stayed === true") and posts == []  # nothing was sent
    p.refresh_from_db()
    assert p.step == "trials" and Answer.objects.filter(participant=p).count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#leave")
    page.wait_for_selector("#withdrawn")
    p.refresh_from_db()
    assert p.step == "withdrawn" and not Answer.objects.filter(participant=p).exists()


def hold_back_script(page, seconds=1.5):
    """Serve the page's script late: the audio loads (or fails) before it runs, as with cached
    clips."""
    page.route("**/studies/participant.js", lambda r: (time.sleep(seconds), r.continue_()))


def test_it_measures_the_fraction_heard_when_the_audio_loads_before_the_script(
    live_server, page, owner
):
    # The fraction heard must still be measured, not stored as 0.
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "slow-script")
    hold_back_script(page)
    page.reload()
    page.wait_for_selector("#play-r")
    listen_all(page)
    with page.expect_navigation():
        page.keyboard.press("a")
    answer = Answer.objects.get(participant=p)
    assert min(answer.heard_reference, answer.heard_a, answer.heard_b) > 0.9


def test_it_shows_a_clip_that_failed_to_load_before_the_script_ran(live_server, page, owner):
    study = quick_study(owner)
    to_first_trial(live_server, page, study, "broken-clip")
    hold_back_script(page)
    page.route("**/audio/*/A", lambda route: route.abort())
    page.reload()
    page.wait_for_selector("[data-state='A'][data-value='error']", state="attached")
    assert page.is_disabled("#choose-A")
    assert "could not be loaded" in page.locator("[data-load-error]").inner_text()  # visible


def test_a_clip_that_failed_to_load_is_fetched_again_when_played(live_server, page, owner):
    # The network is back: pressing play asks for the sound again instead of failing at once.
    study = quick_study(owner)
    p = to_first_trial(live_server, page, study, "clip-back")
    offline, asked = [True], []

    def clip_a(route):
        asked.append(route.request.url)
        route.abort() if offline[0] else route.continue_()

    page.route("**/audio/*/A", clip_a)
    page.reload()
    page.wait_for_selector("[data-state='A'][data-value='error']", state="attached")
    offline[0], failed_requests = False, len(asked)
    listen_all(page)
    assert len(asked) > failed_requests
    assert page.is_hidden("[data-load-error]")  # nothing is wrong any more
    with page.expect_navigation():
        page.keyboard.press("a")
    assert Answer.objects.get(participant=p).plays_a == 1


def test_a_clip_whose_request_hangs_says_it_could_not_be_loaded(live_server, page, owner):
    study = quick_study(owner)
    to_first_trial(live_server, page, study, "clip-hangs")
    page.route("**/audio/*/A", lambda route: None)  # never answered
    page.reload()
    scripted(page)
    # The watchdog's wait, shortened (the page's default is several seconds).
    page.evaluate("document.querySelector('form[data-listen]').dataset.stallMs = '500'")
    page.click("#play-A")
    page.wait_for_selector("[data-state='A'][data-value='error']", state="attached", timeout=5000)
    assert page.is_visible("[data-load-error]") and page.is_enabled("#play-A")
    assert "playing" not in page.get_attribute("#play-A", "class")
    page.unroute("**/audio/*/A")
    listen_all(page)  # played again, it is asked for again


def test_it_refuses_another_participants_pages_and_audio(
    live_server, browser, page, owner, screens
):
    study = quick_study(owner)
    victim = to_first_trial(live_server, page, study, "victim")
    slot = flow_trials.current_slot(victim)
    other = browser.new_context(locale="en-US")
    intruder = other.new_page()
    try:
        intruder.goto(study_url(live_server, study, pid="intruder"))
        csrf = intruder.get_attribute("input[name=csrfmiddlewaretoken]", "value")
        own_page = live_server.url + reverse("studies:participant", args=[victim.token])
        response = intruder.goto(own_page)
        assert response.status == 403
        assert "another session" in intruder.inner_text("#refused")
        intruder.screenshot(path=str(screens / "11_refused.png"))
        audio = live_server.url + reverse("studies:audio", args=[victim.token, slot.index, "A"])
        assert intruder.request.get(audio).status == 404
        assert page.request.get(audio).status == 200
        data = {"step": "trials", "index": str(slot.index), "choice": "A",
                "csrfmiddlewaretoken": csrf}  # fmt: skip
        form = intruder.request.post(own_page, form=data, headers={"Referer": own_page})
        assert form.status == 403
        assert not Answer.objects.filter(participant=victim).exists()
    finally:
        other.close()


def hold_then_listen(page, key: str, presses: int) -> None:
    """Hold `key` (a press, then auto-repeats) to play the reference, then play A and B."""
    for _ in range(presses):
        page.keyboard.down(key)
    page.keyboard.up(key)
    page.wait_for_selector("[data-state='r'][data-value='done']")
    for clip in ("A", "B"):
        page.click(f"#play-{clip}")
        page.wait_for_selector(f"[data-state='{clip}'][data-value='done']")


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
