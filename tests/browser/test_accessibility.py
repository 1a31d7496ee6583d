"""An automated accessibility audit: axe-core (the engine behind Lighthouse's and most browser
extensions' accessibility checks) run in headless Chromium on every page a participant sees, in
English and in Japanese, and on the experimenter's pages, against the WCAG 2.0 and 2.1 level A
and AA rules. A test fails naming each page, rule, impact and the offending elements.

axe checks what a machine can: contrast, names of buttons, links and form fields, the page's
language, landmarks, ARIA use. It cannot tell whether a label makes sense or whether the keys
work (test_participant_keys.py does that). The clips are 0.6 s tones, the screening the short
one, so a whole study is walked in well under a minute per language.
"""

from __future__ import annotations

import pytest

from evalsite.studies.models import Participant, Study
from tests.browser.axe_audit import audit
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import CLIP_S, NO_CATCH, WAIT_MS
from tests.browser.participant_steps import (
    answer_every_trial,
    enter_to_calibration,
    practice_and_first_trial,
    screen_checking,
    study_url,
    through_calibration,
)
from tests.evalsite.studies.conftest import make_catalogue, make_study
from tests.evalsite.studies.experimenter_personas import (
    PASSWORD,
    alice,
    answered_study,
    carol,
    study,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["alice", "answered_study", "audit", "carol", "study"]  # fixtures, used by name

# The experimenter's pages of one study (under /studies/<pk>), English only.
STUDY_PAGES = [
    ("study overview", "/"),
    ("study settings", "/edit/"),
    ("clips", "/clips/"),
    ("trials", "/trials/"),
    ("progress", "/progress/"),
    ("export", "/export/"),
]


@pytest.fixture
def listening_study(owner):
    """The headphone screening, one practice trial with feedback and the main trials. No catch
    trial is given: a catch trial is the main trials' page (trial.html) with other clips, never
    checked here, and walking three of them took ~2.5 s each (their clips play in real time)."""
    return make_study(owner, make_catalogue(owner, seconds=CLIP_S), 1, practice_trials=1,
                      catch=NO_CATCH)  # fmt: skip


@pytest.mark.parametrize(
    "lang",
    ["en", pytest.param("ja", marks=pytest.mark.slow)],  # ja: the same templates
)
def test_it_finds_no_violations_on_a_participants_pages(
    live_server, page, listening_study, audit, lang
):
    page.goto(study_url(live_server, listening_study, pid=f"axe-{lang}", lang=lang))
    enter_to_calibration(page, audit, lang)
    p = Participant.objects.get(external_pid=f"axe-{lang}")
    assert p.language == lang
    screen_checking(page, p, correct=True, check=audit, lang=lang)
    page.wait_for_selector("#continue")
    audit(page, f"{lang} instructions")
    page.click("#continue")
    practice_and_first_trial(page, audit, p, lang)
    answer_every_trial(page, p)
    page.wait_for_selector("#completion-code")
    audit(page, f"{lang} completion (debrief)")
    audit.assert_clean()


def test_it_finds_no_violations_on_the_screened_out_and_refusal_pages(
    live_server, page, listening_study, audit
):
    for lang in ("en", "ja"):
        page.goto(study_url(live_server, listening_study, pid=f"out-{lang}", lang=lang))
        through_calibration(page)  # those pages are audited in the test above
        p = Participant.objects.get(external_pid=f"out-{lang}")
        screen_checking(page, p, correct=False)
        page.wait_for_selector("#screen-out-code")
        audit(page, f"{lang} screened out")
    Study.objects.filter(pk=listening_study.pk).update(status=Study.Status.CLOSED)
    for lang in ("en", "ja"):
        page.goto(study_url(live_server, listening_study, pid=f"late-{lang}", lang=lang))
        page.wait_for_selector("#refused")
        audit(page, f"{lang} refused (study closed)")
    for lang in ("en-US", "ja-JP"):  # a link to nothing: the page in the browser's language
        context = page.context.browser.new_context(locale=lang)
        other = context.new_page()
        other.goto(f"{live_server.url}/s/no-such-study/")
        other.wait_for_selector("#refused")
        assert other.get_attribute("html", "lang") == lang[:2]
        audit(other, f"{lang} link to nothing (404)")
        context.close()
    audit.assert_clean()


@pytest.fixture
def experimenter_page(browser, live_server):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def test_it_finds_no_violations_on_the_experimenters_pages(
    live_server, experimenter_page, answered_study, audit
):
    page = experimenter_page
    page.goto(f"{live_server.url}/accounts/login/?next=/studies/")
    page.wait_for_selector("#id_username")
    audit(page, "login")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("main button[type=submit]")
    audit(page, "dashboard")
    base = f"{live_server.url}/studies/{answered_study.pk}"
    for name, path in STUDY_PAGES:
        page.goto(base + path)
        page.wait_for_load_state()
        audit(page, name)
    audit.assert_clean()


def test_it_names_the_page_rule_impact_and_element_of_a_violation(page, audit):
    # The audit itself: a page with an unnamed button and an image without alt text must fail
    # (a misspelt tag would otherwise run no rule and pass everything).
    page.set_content('<html lang="en"><title>t</title><main><button id="b"></button>'
                     '<img id="i" src="data:,"></main></html>')  # fmt: skip
    audit(page, "bad page")
    assert set(audit.found) >= {
        "bad page: button-name (critical): Buttons must have discernible text -- #b",
        "bad page: image-alt (critical): Images must have alternative text -- #i",
    }
