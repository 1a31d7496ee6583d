"""A trial's clips loading in real headless Chromium (live server, PostgreSQL): before the page's
script ran, failing and fetched again, or never answered."""

from __future__ import annotations

import time

import pytest

from evalsite.studies.models import Answer
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import quick_study
from tests.browser.participant_steps import listen_all, scripted, to_first_trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


@pytest.mark.slow  # waits out a hung request; failed loads stay in the default tier
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
