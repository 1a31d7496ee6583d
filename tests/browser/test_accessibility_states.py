"""The accessibility audit of test_accessibility.py (axe-core, WCAG 2.0/2.1 A and AA) on what its
walk through a study never shows: the messages of a trial and of the screening, shown only when a
clip fails to load, stops part-way or an answer came too early; the pages of a participant who
declined, left the study or found it full, and a researcher's preview banner; and the consent
and trial pages on a small laptop's screen (1024x640), where nothing may need scrolling sideways.

Each state is audited in English and in Japanese: the page is switched with its `?lang=` link
and the state brought about again. Clips are the 0.6 s tones of the other browser tests.
"""

from __future__ import annotations

import pytest

from evalsite.studies.models import Participant, Study
from tests.browser.axe_audit import audit
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import CLIP_S, quick_study
from tests.browser.participant_steps import scripted, study_url, through_calibration, to_first_trial
from tests.evalsite.studies.conftest import make_catalogue, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["audit"]  # a fixture, used by name

LANGS = ("en", "ja")
STALL_MS = 300  # the page's stall watchdog, shortened (its default is several seconds)
SMALL_LAPTOP = {"width": 1024, "height": 640}


def in_language(page, url: str, lang: str) -> None:
    """The participant page at `url` in `lang` (its language link: it redirects to itself)."""
    page.goto(f"{url}?lang={lang}")
    scripted(page)


def stop_part_way(page, key: str) -> None:
    """Clip `key`, once played, stops after its first moments and moves no further, as when its
    download stalls mid-file: the page's watchdog (shortened) then reports it stopped part-way.
    (test_participant_stall.py stalls a real download; the page cannot tell the two apart.)"""
    page.evaluate(
        """([key, ms]) => {
        document.querySelector('form[data-listen]').dataset.stallMs = String(ms);
        const a = document.querySelector(`audio[data-key='${key}']`);
        a.addEventListener('timeupdate', function stop() {
            if (a.currentTime > 0) { a.pause(); a.removeEventListener('timeupdate', stop); }
        }); }""",
        [key, STALL_MS],
    )


def show_failed_clip(page, pattern: str) -> None:
    """Reload the page with the sounds matching `pattern` refused: it says one failed to load."""
    page.route(pattern, lambda route: route.abort())
    page.reload()
    page.wait_for_selector("[data-load-error]", state="visible")
    page.unroute(pattern)


def test_it_finds_no_violations_in_a_trials_messages(live_server, page, owner, audit):
    to_first_trial(live_server, page, quick_study(owner), "trial-states")
    url = page.url
    for lang in LANGS:
        in_language(page, url, lang)
        show_failed_clip(page, "**/audio/*/A")
        audit(page, f"{lang} trial, a clip failed to load")
        page.reload()
        scripted(page)
        stop_part_way(page, "B")
        page.click("#play-B")
        page.wait_for_selector("[data-stalled]", state="visible")
        audit(page, f"{lang} trial, a clip stopped part-way")
        page.goto(f"{url}?early=1")  # where an answer sent too early is redirected
        page.wait_for_selector("#early")
        audit(page, f"{lang} trial, an answer refused as too early")
    audit.assert_clean()


def test_it_finds_no_violations_in_the_screenings_messages(live_server, page, owner, audit):
    study = make_study(owner, make_catalogue(owner, seconds=CLIP_S), per_instrument=1)
    page.goto(study_url(live_server, study, pid="screening-states"))
    through_calibration(page)
    page.wait_for_selector("input[name=n][value='0']", state="attached")
    url = page.url
    for lang in LANGS:
        in_language(page, url, lang)
        show_failed_clip(page, "**/screening/*/*")
        audit(page, f"{lang} screening, its sound failed to load")
        page.reload()  # a new draw of the sounds
        scripted(page)
        stop_part_way(page, "s")
        page.click("#play")
        page.wait_for_selector("[data-stalled]", state="visible")
        audit(page, f"{lang} screening, its sound stopped part-way (reload asked for)")
    audit.assert_clean()


def assert_fits(page, name: str, selectors: tuple[str, ...]) -> None:
    """Nothing is wider than the window, and each of `selectors` is shown whole across it."""
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client, f"{name}: the page is {scroll} px wide in a {client} px window"
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert page.is_visible(selector) and box, f"{name}: {selector} is not shown"
        assert 0 <= box["x"] and box["x"] + box["width"] <= client, f"{name}: {selector} {box}"


def audit_both_languages(page, audit, name: str, ready: str, fits: tuple[str, ...] = ()) -> None:
    """Audit the participant page shown now in each language, once `ready` is on it; with
    `fits`, check that nothing needs scrolling sideways and that those elements are in view."""
    url = page.url
    for lang in LANGS:
        in_language(page, url, lang)
        page.wait_for_selector(ready)
        audit(page, f"{lang} {name}")
        if fits:
            assert_fits(page, f"{lang} {name}", fits)


@pytest.mark.slow  # final pages; the steps' audit stays in the default tier
def test_it_finds_no_violations_on_the_declined_left_and_full_pages(
    live_server, page, owner, audit
):
    study = quick_study(owner)
    page.goto(study_url(live_server, study, pid="declines"))
    page.wait_for_selector("#continue:not([disabled])")
    page.click("#continue")
    with page.expect_navigation():
        page.click("#decline")
    assert Participant.objects.get(external_pid="declines").step == "declined"
    audit_both_languages(page, audit, "declined consent", "main h1")

    to_first_trial(live_server, page, study, "leaves")
    page.once("dialog", lambda dialog: dialog.accept())  # "Leave the study now?"
    with page.expect_navigation():
        page.click("#leave")
    audit_both_languages(page, audit, "left the study", "#withdrawn")
    # The page a participant sees once the study is full (how it fills: test_entry.py); a
    # newcomer stands in, with a Prolific id for that page's extra line. (Not the participant
    # who left: leaving unbinds them from the browser, which now shows only that they left.)
    prolific_pid = "5f0c0ffee0c0ffee0c0ffee0"
    page.goto(study_url(live_server, study, PROLIFIC_PID=prolific_pid))
    page.wait_for_selector("#continue:not([disabled])")
    page.click("#continue")
    page.wait_for_selector("#agree")
    Participant.objects.filter(prolific_pid=prolific_pid).update(step="full")
    audit_both_languages(page, audit, "study full", "main h1")
    # turned away only for now (flow.turn_away), its trials free again: the page's other wording
    for_now = {"full_for_now": "browser_check"}
    Participant.objects.filter(prolific_pid=prolific_pid).update(state=for_now)
    audit_both_languages(page, audit, "study full for now", "main h1")
    audit.assert_clean()


def test_it_finds_no_violations_on_a_researchers_preview(live_server, page, owner, audit):
    study = quick_study(owner)
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", "listen-42-carefully")  # participant_fixtures' owner
    with page.expect_navigation():
        page.click("main button[type=submit]")
    page.goto(study_url(live_server, study, pid="preview-axe"))
    page.wait_for_selector("#continue:not([disabled])")
    page.click("#continue")
    page.wait_for_selector("#agree")
    assert page.is_visible("#preview-banner")
    audit_both_languages(page, audit, "preview of a draft study (consent)", "#preview-banner")
    audit.assert_clean()


def test_it_fits_the_consent_and_trial_pages_on_a_small_laptop(live_server, page, owner, audit):
    # The issue asks for pages readable on a laptop screen (no phone layouts: studies may refuse
    # phones); 1024x640 is a small laptop's window.
    page.set_viewport_size(SMALL_LAPTOP)
    study = quick_study(owner)
    page.goto(study_url(live_server, study, pid="small-consent"))
    page.wait_for_selector("#continue:not([disabled])")
    page.click("#continue")
    page.wait_for_selector("#agree")
    audit_both_languages(page, audit, "consent at 1024x640", "#agree", ("#agree", "#decline"))

    to_first_trial(live_server, page, study, "small-trial")
    controls = ("#play-r", "#play-A", "#play-B", "#choose-A", "#choose-B")
    audit_both_languages(page, audit, "trial at 1024x640", "#play-r", controls)
    audit.assert_clean()
