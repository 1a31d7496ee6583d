"""What a participant does in the browser, step by step: the browser tests' shared moves."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse

from evalsite.studies import flow_screening, flow_trials
from evalsite.studies.models import Participant
from tests.evalsite.studies.conftest import SHORT_SCREENING

# What a walk through the pages runs on each one it reaches, with a name for it ("en consent"):
# the axe audit (axe_audit.Audit) or a layout check (test_accessibility_reflow.py).
Check = Callable[[object, str], None]


def scripted(page):
    """Wait until the page's script has attached its players and shortcuts: the markup can be
    there before the deferred script ran, and a click or key press then does nothing."""
    page.wait_for_selector("html[data-listening]", state="attached")


def to_calibration(page, shot=None):
    """Browser check, consent, questionnaire: at the calibration page, its script attached."""
    page.wait_for_selector("#continue:not([disabled])")
    shot and page.screenshot(path=shot("01_entry"))
    page.click("#continue")
    page.wait_for_selector("#agree")
    shot and page.screenshot(path=shot("02_consent"))
    page.click("#agree")
    page.select_option("#id_musical_training", "2to5")
    page.select_option("#id_device", "laptop")
    page.select_option("#id_headphones", "over_ear")
    shot and page.screenshot(path=shot("03_questionnaire"))
    page.click("#continue")
    page.wait_for_selector("[data-play=cal]")
    scripted(page)


def through_calibration(page, shot=None):
    """Browser check, consent, questionnaire, calibration (taking screenshots if asked)."""
    to_calibration(page, shot)
    page.click("[data-play=cal]")
    page.wait_for_selector("#continue:not([disabled])")
    shot and page.screenshot(path=shot("04_calibration"))
    page.click("#continue")


def study_url(live_server, study, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{live_server.url}{reverse('studies:entry', args=[study.slug])}?{query}"


def to_first_trial(live_server, page, study, pid) -> Participant:
    page.goto(study_url(live_server, study, pid=pid))
    through_calibration(page)
    page.click("#continue")  # instructions (no screening, no practice in this study)
    page.wait_for_selector("#play-r")
    return Participant.objects.get(external_pid=pid)


def screen(page, p: Participant, correct: bool, shot=None, reload_at: int | None = None):
    """Answer the screening; with `reload_at`, reload that trial's page once its sound played
    (the reloaded page must offer a newly drawn sound, playable again)."""
    for n in range(SHORT_SCREENING["trials"]):
        page.wait_for_selector(f"input[name=n][value='{n}']", state="attached")
        scripted(page)
        page.keyboard.press(" ")  # the play shortcut
        page.wait_for_selector("[data-choice='1']:not([disabled])")
        shot and n == 0 and page.screenshot(path=shot("05_screening"))
        if n == reload_at:
            assert page.is_disabled("#play")  # played once
            page.reload()
            page.wait_for_selector("input[name=draw][value='1']", state="attached")
            assert page.is_enabled("#play") and page.is_disabled("[data-choice='1']")
            scripted(page)
            page.keyboard.press(" ")
            page.wait_for_selector("[data-choice='1']:not([disabled])")
        p.refresh_from_db()
        target = flow_screening.screening_key(p)["target"]  # of the trial as this page drew it
        page.keyboard.press(str(target if correct else target % 3 + 1))


def listen_all(page):
    scripted(page)
    for key in ("r", "A", "B"):
        page.click(f"#play-{key}")
        page.wait_for_selector(f"[data-state='{key}'][data-value='done']")
    page.wait_for_selector("#choose-A:not([disabled])")


def right_choice(p: Participant) -> str:
    slot = flow_trials.current_slot(p)
    if slot.trial.expected:
        return "A" if slot.displayed_first == slot.trial.expected else "B"
    return "A"


def answer_every_trial(page, p: Participant) -> dict[int, str]:
    """Practice (acknowledging its feedback), main and catch trials until the participant is
    done; trial id -> the position ("A"/"B") chosen on its page, by keyboard."""
    chosen = {}
    while True:
        p.refresh_from_db()
        if p.step == "done":
            return chosen
        if page.query_selector("#feedback"):
            page.click("#continue")
            page.wait_for_load_state()
            continue
        page.wait_for_selector("#play-r")
        listen_all(page)
        slot = flow_trials.current_slot(p)
        chosen[slot.trial_id] = right_choice(p)
        with page.expect_navigation():
            page.keyboard.press(chosen[slot.trial_id].lower())


def enter_to_calibration(page, check: Check, lang: str) -> None:
    """Browser check, consent, questionnaire and calibration, `check`ing each page."""
    page.wait_for_selector("#continue:not([disabled])")
    check(page, f"{lang} entry (browser check)")
    page.click("#continue")
    page.wait_for_selector("#agree")
    check(page, f"{lang} consent")
    page.click("#agree")
    page.wait_for_selector("#id_musical_training")
    check(page, f"{lang} questionnaire")
    page.select_option("#id_musical_training", "2to5")
    page.select_option("#id_device", "laptop")
    page.select_option("#id_headphones", "over_ear")
    page.click("#continue")
    page.wait_for_selector("[data-play=cal]")
    scripted(page)
    check(page, f"{lang} calibration")
    page.click("[data-play=cal]")
    page.wait_for_selector("#continue:not([disabled])")
    page.click("#continue")


def screen_checking(
    page, p: Participant, correct: bool, check: Check | None = None, lang: str = ""
) -> None:
    """The headphone check, as `screen`, `check`ing its first page before and after its sound
    played, if asked."""
    for n in range(SHORT_SCREENING["trials"]):
        page.wait_for_selector(f"input[name=n][value='{n}']", state="attached")
        scripted(page)
        n == 0 and check and check(page, f"{lang} screening")
        page.keyboard.press(" ")  # the play shortcut
        page.wait_for_selector("[data-choice='1']:not([disabled])")
        n == 0 and check and check(page, f"{lang} screening, answers unlocked")
        p.refresh_from_db()
        target = flow_screening.screening_key(p)["target"]
        page.keyboard.press(str(target if correct else target % 3 + 1))


def practice_and_first_trial(page, check: Check, p: Participant, lang: str) -> None:
    """From the practice trial through its feedback to the first main trial, `check`ing the
    practice trial before and after listening, its feedback and the main trial."""
    page.wait_for_selector("#play-r")
    scripted(page)
    check(page, f"{lang} practice trial")
    listen_all(page)
    check(page, f"{lang} practice trial, every clip played")
    with page.expect_navigation():
        page.keyboard.press(right_choice(p).lower())
    page.wait_for_selector("#feedback")
    check(page, f"{lang} practice feedback")
    page.click("#continue")
    page.wait_for_selector("#progress-text")
    scripted(page)
    check(page, f"{lang} main trial")
