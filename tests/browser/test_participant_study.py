"""A participant in real headless Chromium against the site on the live server (PostgreSQL)
through a whole study, one screened out by the headphone check, and a browser that blocks cookies
stopped at the welcome page.

Screenshots of every step go to artifacts/screens/ (01_entry.png ... 10_screened_out.png).
Clips are ~1 s tones generated here and the screening is shortened (tests' CSN_SCREENING).
"""

from __future__ import annotations

import pytest

from evalsite.studies import flow_trials
from evalsite.studies.models import Answer, Participant
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import CLIP_S, quick_study
from tests.browser.participant_steps import (
    listen_all,
    right_choice,
    screen,
    study_url,
    through_calibration,
)
from tests.evalsite.studies.conftest import make_catalogue, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


def test_a_browser_that_blocks_cookies_is_told_so_at_the_welcome_page(live_server, page, owner):
    # Chromium has no switch to block a site's cookies: the page is made to see what such a
    # browser reports. Its Continue would only meet the CSRF refusal (test_lost_cookies).
    page.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'cookieEnabled', {get: () => false})"
    )
    page.goto(study_url(live_server, quick_study(owner), pid="no-cookies"))
    page.wait_for_selector("#check-status.error")
    assert "allow cookies for this site" in page.inner_text("#check-status")
    assert page.is_disabled("#continue")
    assert not Participant.objects.exists()
