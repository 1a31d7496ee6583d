"""WCAG 1.4.10 Reflow, which axe cannot judge: every page a participant sees, in English and in
Japanese, in a window 320 CSS px wide (a 1280 px screen at 400 % zoom) needs no scrolling
sideways, the header's language links keep each name on one line, and on a trial page each play
button and both answer buttons can be brought whole into the window by scrolling vertically
alone. A test names each page and what sticks out.

The walk is test_accessibility.py's, with the layout check in place of the audit. A screenshot
of the narrow trial page goes to artifacts/screens/12_trial_320px_ja.png.
"""

from __future__ import annotations

import pytest

from evalsite.studies.models import Participant
from tests.browser.page_layout import REFLOW, out_of_reach, too_wide, wrapped
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import CLIP_S, NO_CATCH, WAIT_MS
from tests.browser.participant_steps import (
    answer_every_trial,
    enter_to_calibration,
    practice_and_first_trial,
    screen_checking,
    scripted,
    study_url,
    through_calibration,
)
from tests.evalsite.studies.conftest import make_catalogue, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGS = ("en", "ja")
OTHER = {"en": "ja", "ja": "en"}
# The walk's names of the pages shown once their sounds were played (participant_steps.py).
AFTER_LISTENING = ("answers unlocked", "every clip played")
LANGUAGE_LINKS = ".participant-header .languages a"
TRIAL_CONTROLS = ("#play-r", "#play-A", "#play-B", "#choose-A", "#choose-B")


class Reflow:
    """Checks the page shown now for sideways scrolling (and, on a trial page, that its controls
    are in reach), keeping what it found so that one walk reports every page at once.

    With `switching`, it then shows the same page in the other language (its language link: a
    reload) and checks it too, and the walk goes on in that language; a page whose sounds were
    just played is checked in the language it is in, since a reload would undo the listening."""

    def __init__(self, switching: bool = False) -> None:
        self.switching = switching
        self.found: list[str] = []

    def __call__(self, page, name: str) -> None:
        self._check(page, name)
        if self.switching and not name.endswith(AFTER_LISTENING):
            lang = page.evaluate("document.documentElement.lang")
            with page.expect_navigation():  # the page's own link: the study link's welcome
                page.click(f"nav.languages a[lang={OTHER[lang]}]")  # page keeps its pid
            scripted(page)
            now = page.evaluate("document.documentElement.lang")
            assert now == OTHER[lang], f"{name}: its {OTHER[lang]} link showed it in {now}"
            self._check(page, name)

    def _check(self, page, name: str) -> None:
        name = f"{page.evaluate('document.documentElement.lang')} {name.strip()}"
        self.found += [f"{name}: {f}" for f in too_wide(page) + wrapped(page, LANGUAGE_LINKS)]
        if page.query_selector("#play-r"):
            self.found += [f"{name}: {f}" for f in out_of_reach(page, TRIAL_CONTROLS)]

    def assert_clean(self) -> None:
        assert not self.found, "pages that do not reflow at 320 px (WCAG 1.4.10):\n" + "\n".join(
            self.found
        )


@pytest.fixture
def narrow_page(browser):
    context = browser.new_context(locale="en-US", viewport=REFLOW)
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def listening_study(owner):
    """The headphone screening, one practice trial with feedback and the main trials. No catch
    trial is given: a catch trial is the main trials' page (trial.html) with other clips, never
    checked here, and walking three of them took ~2.5 s each (their clips play in real time)."""
    return make_study(owner, make_catalogue(owner, seconds=CLIP_S), 1, practice_trials=1,
                      catch=NO_CATCH)  # fmt: skip


def test_it_reflows_a_participants_pages_at_320_px(
    live_server, narrow_page, listening_study, screens
):
    page, reflow = narrow_page, Reflow(switching=True)  # each page in English and in Japanese
    page.goto(study_url(live_server, listening_study, pid="reflow", lang="en"))
    enter_to_calibration(page, reflow, "")
    p = Participant.objects.get(external_pid="reflow")
    screen_checking(page, p, correct=True, check=reflow)
    page.wait_for_selector("#continue")
    reflow(page, "instructions")
    page.click("#continue")
    practice_and_first_trial(page, reflow, p, "")
    page.screenshot(path=str(screens / "12_trial_320px_ja.png"))  # the walk is in Japanese here
    answer_every_trial(page, p)
    page.wait_for_selector("#completion-code")
    reflow(page, "completion (debrief)")
    reflow.assert_clean()


@pytest.mark.slow  # the participant steps' reflow stays in the default tier
def test_it_reflows_the_screened_out_and_study_full_pages_at_320_px(
    live_server, narrow_page, listening_study
):
    page, reflow = narrow_page, Reflow(switching=True)
    page.goto(study_url(live_server, listening_study, pid="reflow-out"))
    through_calibration(page)
    p = Participant.objects.get(external_pid="reflow-out")
    screen_checking(page, p, correct=False)
    page.wait_for_selector("#screen-out-code")
    reflow(page, "screened out")
    # The page a participant sees once the study is full (how it fills: test_entry.py), shown
    # to this one for the test, with a Prolific id for that page's extra line.
    Participant.objects.filter(pk=p.pk).update(step="full", prolific_pid="5f0c0ffee0c0ffee0c0ffee0")
    page.reload()
    page.wait_for_selector("main h1")
    reflow(page, "study full")
    reflow.assert_clean()


def test_it_names_what_sticks_out_and_what_is_out_of_reach(narrow_page):
    # The checks themselves: a 400 px wide box makes the 320 px window scroll sideways, a
    # language's name in a too narrow header is split over lines, and a button placed past the
    # window's right edge cannot be reached by scrolling down.
    page, reflow = narrow_page, Reflow()
    page.set_content('<html lang="en"><body style="margin:0"><header class="participant-header">'
                     '<nav class="languages" style="display:flex;width:1em"><a href="#">日本語</a>'
                     '</nav></header><div id="wide" style="width:400px">x</div>'
                     '<button id="play-r" style="margin-left:330px">r</button>'
                     "</body></html>")  # fmt: skip
    reflow(page, "bad page")
    assert reflow.found[0].startswith("en bad page: the page is 400 px wide in a 320 px window: ")
    assert "div#wide (right edge 400)" in reflow.found[0]
    assert reflow.found[1] == f"en bad page: {LANGUAGE_LINKS} '日本語' is broken over 3 lines"
    assert reflow.found[2].startswith("en bad page: #play-r is out of reach by vertical scrolling")
    assert "#play-A is not shown" in reflow.found[3]
