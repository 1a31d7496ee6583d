"""The progress page in real headless Chromium updates its figures in place: the page is not
reloaded, focus and scroll position stay where the reader left them, the status line says when
the figures changed (and is otherwise left alone, so a screen reader does not announce every
update), and the "Update automatically" checkbox pauses the updates (and is remembered). A failed
update (session expired) keeps the figures and says so.

The interval is 0.3 s here (CSN_PROGRESS_REFRESH_S; the live server runs in this process). On a
loaded machine any number of intervals can pass between two lines of a test, so the tests wait
for events the page reports (_WATCH), not for time; a fixed wait only where a test shows that
nothing happens.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from evalsite.studies.models import Participant
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WAIT_MS = 15000
INTERVAL_S = 0.3
STARTED = "#participants .card b >> nth=0"  # participants started
STATUS = "#progress-status"
UPDATED = re.compile(r"^Figures updated at \d\d:\d\d UTC$")
FAILED = re.compile(r"^Could not update: ")

# What the page does, counted in the page: fetches started (progress.js calls the global fetch,
# wrapped here), updates that put new figures in place, and each text the status line took.
_WATCH = """() => {
  window.fetches = 0;
  const fetch = window.fetch;
  window.fetch = (...args) => { window.fetches += 1; return fetch(...args); };
  window.updates = 0;
  new MutationObserver(() => { window.updates += 1; })
    .observe(document.getElementById("progress-figures"), {childList: true});
  window.statusTexts = [];
  const status = document.getElementById("progress-status");
  new MutationObserver(() => { window.statusTexts.push(status.textContent); })
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


@pytest.fixture
def page(browser, live_server, client, alice, study, settings):
    settings.CSN_PROGRESS_REFRESH_S = INTERVAL_S
    client.force_login(alice)  # a session made here, handed to the browser as its cookie
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    # A short viewport so that the page scrolls.
    context = browser.new_context(locale="en-US", viewport={"width": 1000, "height": 400})
    context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(f"{live_server.url}/studies/{study.pk}/progress/")
    page.evaluate("window.notReloaded = true")  # a reload or navigation would lose it
    page.evaluate(_WATCH)
    yield page
    context.close()


def _join(study, name: str) -> None:
    Participant.objects.create(study=study, external_pid=name, step=Participant.Step.TRIALS)


def _wait_for(page, counter: str, more: int) -> None:
    """Until the page's counter (fetches, updates) has gone up by `more` from now."""
    start = page.evaluate(f"window.{counter}")
    page.wait_for_function(f"window.{counter} >= {start + more}", timeout=WAIT_MS)


def _nothing_happens_for(intervals: int, page) -> None:
    # A fixed wait, the one kind here: what is shown is that nothing starts in this time.
    fetches = page.evaluate("window.fetches")
    page.wait_for_timeout(int(intervals * INTERVAL_S * 1000))
    assert page.evaluate("window.fetches") == fetches


def test_it_updates_the_figures_in_place_and_pauses_when_asked(page, study):
    expect(page.locator(STARTED)).to_have_text("0")
    toggle = page.locator("#auto-update")
    expect(toggle).to_be_checked()  # on by default, and shown now that the script runs
    toggle.focus()
    page.evaluate("window.scrollTo(0, 120)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0

    _join(study, "p1")
    expect(page.locator(STARTED)).to_have_text("1")
    expect(page.locator(STATUS)).to_have_text(UPDATED)
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("document.activeElement.id") == "auto-update"
    assert page.evaluate("window.scrollY") == scrolled

    toggle.press("Space")  # keyboard: untick
    expect(toggle).not_to_be_checked()
    expect(page.locator(STATUS)).to_have_text("Automatic updates paused.")
    _join(study, "p2")
    _nothing_happens_for(4, page)  # paused: no fetch, and the figure stays
    expect(page.locator(STARTED)).to_have_text("1")

    page.reload()  # the choice is remembered; the full page shows the new count
    expect(page.locator("#auto-update")).not_to_be_checked()
    expect(page.locator(STARTED)).to_have_text("2")


def test_it_announces_an_automatic_update_only_when_the_figures_changed(page, study):
    as_of = page.locator("#figures-as-of time")
    first = as_of.get_attribute("datetime")
    _wait_for(page, "updates", 3)  # the figures are the same each time
    assert page.evaluate("window.statusTexts") == []
    assert as_of.get_attribute("datetime") != first  # the visible time is updated, silently

    _join(study, "p1")
    expect(page.locator(STARTED)).to_have_text("1")
    _wait_for(page, "updates", 3)  # and the same again after that
    texts = _said(page)
    assert len(texts) == 1 and UPDATED.match(texts[0]), texts


def test_it_announces_each_change_even_within_the_same_minute(page, study):
    for n, name in enumerate(["p1", "p2"], start=1):
        _join(study, name)
        expect(page.locator(STARTED)).to_have_text(str(n))
        page.wait_for_function(f"window.statusTexts.filter(t => t).length >= {n}")
    texts = _said(page)
    # Two changes 0.3 s apart, mostly in one clock minute: the same words, said twice.
    assert len(texts) == 2 and all(UPDATED.match(t) for t in texts), texts


def _said(page) -> list[str]:
    """What the status line said, without the moments it was emptied to be said again."""
    return [t for t in page.evaluate("window.statusTexts") if t]


def test_it_keeps_the_figures_and_says_so_when_an_update_fails(page, study):
    expect(page.locator("#auto-update")).to_be_checked()
    page.context.clear_cookies()  # the session is gone: the figures view redirects to login
    # A fetch sent before the cookies went could still count a participant added now; once one
    # has failed, every later one is sent without the cookie (they run one after another).
    expect(page.locator(STATUS)).to_have_text(FAILED)
    _join(study, "p1")
    _wait_for(page, "fetches", 2)  # the first has been answered once the second starts
    expect(page.locator(STARTED)).to_have_text("0")
    expect(page.locator(STATUS)).to_have_text(FAILED)  # further tries fail the same way
    expect(page.locator("#id_username")).to_have_count(0)  # no login form put in the page
    assert page.evaluate("window.notReloaded") is True


def test_it_answers_every_refresh_and_says_when_updating_works_again(page, study):
    status = page.locator(STATUS)
    page.locator("#progress-refresh").click()  # asked: told, though nothing changed
    expect(status).to_have_text(UPDATED)
    cookies = page.context.cookies()
    page.context.clear_cookies()
    expect(status).to_have_text(FAILED)
    told = len(page.evaluate("window.statusTexts"))
    page.locator("#progress-refresh").click()  # the same failure: told again, line emptied first
    page.wait_for_function(f"window.statusTexts.length >= {told + 2}", timeout=WAIT_MS)
    assert page.evaluate("window.statusTexts")[told] == ""
    expect(status).to_have_text(FAILED)

    page.context.add_cookies(cookies)  # an automatic update works again: said, though the
    expect(status).to_have_text(UPDATED)  # figures are the same as before the failure
    expect(page.locator(STARTED)).to_have_text("0")


def test_it_stops_while_the_tab_is_hidden_and_updates_once_it_is_visible(page, study):
    expect(page.locator("#auto-update")).to_be_checked()
    page.evaluate(_SET_VISIBILITY, "hidden")  # the fetch under way is dropped
    _join(study, "p1")
    _nothing_happens_for(4, page)  # hidden: no fetch starts, and the figure stays
    expect(page.locator(STARTED)).to_have_text("0")
    page.evaluate(_SET_VISIBILITY, "visible")
    expect(page.locator(STARTED)).to_have_text("1")


# Headless Chromium never hides its tab: pretend it does, as the browser would report it.
_SET_VISIBILITY = """(state) => {
  Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
