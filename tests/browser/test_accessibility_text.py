"""WCAG 1.4.4 Resize text and 1.4.12 Text spacing, which axe cannot judge, in English and in
Japanese. At 200 % zoom (1280x800 shown as 640x400 CSS px) a trial page still shows the named
instrument, the three play buttons and both answer buttons whole, side by side or stacked but
never overlapping or cut off. With the text-spacing bookmarklet's spacing applied (line height
1.5, paragraphs 2 em apart, letters 0.12 em, words 0.16 em) the consent and trial pages cut off
no text and every button's label stays inside the button.

A screenshot of the zoomed trial page goes to artifacts/screens/13_trial_zoom_200.png.
"""

from __future__ import annotations

import pytest

from tests.browser.page_layout import TEXT_SPACING, ZOOM_200, clipped_text, overlapping, too_wide
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import WAIT_MS, quick_study
from tests.browser.participant_steps import scripted, study_url, to_first_trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGS = ("en", "ja")
# What a participant must see to answer a trial: the instrument named in the question, the
# three play buttons and the two answers.
TRIAL_PARTS = (".question strong", "#play-r", "#play-A", "#play-B", "#choose-A", "#choose-B")


def in_language(page, url: str, lang: str) -> None:
    """The participant page at `url` in `lang` (its language link: it redirects to itself)."""
    page.goto(f"{url}?lang={lang}")
    scripted(page)


@pytest.fixture
def zoomed_page(browser):
    context = browser.new_context(locale="en-US", **ZOOM_200)
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def test_it_shows_a_trial_whole_at_200_percent_zoom(live_server, zoomed_page, owner, screens):
    page = zoomed_page
    to_first_trial(live_server, page, quick_study(owner), "zoomed")
    url, found = page.url, []
    for lang in LANGS:
        in_language(page, url, lang)
        shown = too_wide(page) + overlapping(page, TRIAL_PARTS)
        found += [f"{lang} trial at 200 %: {f}" for f in shown]
        lang == "en" and page.screenshot(path=str(screens / "13_trial_zoom_200.png"))
    assert not found, "a trial page at 200 % zoom (WCAG 1.4.4):\n" + "\n".join(found)


@pytest.mark.slow  # WCAG 1.4.12 on two pages; the steps' audit stays in the default tier
def test_it_cuts_off_no_text_with_wider_text_spacing(live_server, page, owner):
    study, found = quick_study(owner), []
    page.goto(study_url(live_server, study, pid="spaced-consent"))
    page.wait_for_selector("#continue:not([disabled])")
    page.click("#continue")
    page.wait_for_selector("#agree")
    found += _clipped_with_wider_spacing(page, "consent")
    # A second participant in this browser: its entry unbinds the first (one participant per
    # study per browser), whose consent page was checked above.
    to_first_trial(live_server, page, study, "spaced-trial")
    found += _clipped_with_wider_spacing(page, "trial")
    assert not found, "text cut off with wider text spacing (WCAG 1.4.12):\n" + "\n".join(found)


def _clipped_with_wider_spacing(page, name: str) -> list[str]:
    """The current page in each language with the wider text spacing: the text it cuts off."""
    url, found = page.url.split("?")[0], []
    for lang in LANGS:
        in_language(page, url, lang)
        page.add_style_tag(content=TEXT_SPACING)
        found += [f"{lang} {name}: {f}" for f in clipped_text(page)]
    return found


def test_it_names_clipped_text_and_overlapping_parts(page):
    # The checks themselves: a box hiding what overflows it clips its second line, a label wider
    # than its fixed-width button runs out of it, and two buttons drawn on top of each other
    # overlap; text hidden for screen readers only (.sr-only) is clipped on purpose and passes.
    page.set_content('<html lang="en"><body><p id="cut" style="height:1em;overflow:hidden">'
                     "one<br>two</p><button id=\"a\" style=\"width:20px;white-space:nowrap\">"
                     'a long label</button><button id="b" style="margin-left:-20px">b</button>'
                     '<span style="position:absolute;width:1px;height:1px;overflow:hidden;'
                     'clip:rect(0,0,0,0)">hidden words</span></body></html>')  # fmt: skip
    found = clipped_text(page)
    assert found[0].startswith("p#cut clips its text (") and found[1:] == [
        "button#a: its label runs outside the button"
    ]
    assert [f.split(":")[0] for f in overlapping(page, ("#a", "#b", "#c"))] == [
        "#c is not shown",
        "#a",  # its content spills over its box (the label, kept on one line)
        "#a overlaps #b",
    ]
