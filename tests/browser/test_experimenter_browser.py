"""An experimenter in real headless Chromium: log in, create a study, upload clips, draw trials,
open it and copy the participant link; a participant takes the whole study through that link;
the experimenter sees the progress and downloads the export, which holds every answer once.

Screenshots: artifacts/screens/experimenter_01_login.png ... experimenter_09_export.png.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest
from django.conf import settings as django_settings

from evalsite.stimuli.models import Clip
from evalsite.studies.models import Answer, Participant, Study
from tests.browser.participant_steps import answer_every_trial, listen_all, through_calibration
from tests.evalsite.studies.conftest import SHORT_SCREENING
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)
from tests.evalsite.studies.experimenter_personas import PASSWORD, wav_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WAIT_MS = 15000
# Each trial plays its three clips through in real time: clips just over the 0.5 s an upload
# must last (evalsite.stimuli.audio) keep the whole study short, as CLIP_S does for the
# participant tests.
CLIP_S = 0.6


@pytest.fixture
def screens(artifacts_dir):
    folder = artifacts_dir / "screens"
    folder.mkdir(exist_ok=True)
    return lambda name: str(folder / f"experimenter_{name}.png")


@pytest.fixture
def context(browser, live_server):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


N_CLIPS = 6


@pytest.fixture
def audio_files(tmp_path):
    paths = []  # six pieces: the catch trials' candidates leave two for practice (practice_clips)
    for i in range(N_CLIPS):
        path = tmp_path / f"piece{i}.wav"
        path.write_bytes(wav_bytes(seconds=CLIP_S, freq=220 * 1.25**i))
        paths.append(str(path))
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"not audio")
    return [*paths, str(bad)]


def test_a_study_made_here_is_taken_end_to_end_and_exported_with_each_answer_once(
    context, live_server, django_user_model, screens, audio_files, settings, tmp_path
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = str(tmp_path / "media")  # the live server runs in this process
    # The short calibration noise of the participant tests (0.5 s): the papers' 4 s noise,
    # played through by the preview and by the participant, took 8 s and is checked nowhere.
    settings.CSN_SCREENING = SHORT_SCREENING
    django_user_model.objects.create_user("alice", "alice@example.org", PASSWORD)
    page = context.new_page()
    page.goto(f"{live_server.url}/studies/")
    page.wait_for_selector("#id_username")  # login required: redirected to the login page
    page.screenshot(path=screens("01_login"))
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_selector("text=My studies")
    page.screenshot(path=screens("02_dashboard"))

    page.click("text=New study")
    page.fill("#id_name", "Drums and guitar, browser")
    page.check("input[name=instruments][value=drums]")
    page.check("input[name=instruments][value=guitar]")
    page.uncheck("#id_screening")
    page.fill("#id_consent_text", "You agree to listen carefully.")
    page.screenshot(path=screens("03_new_study"), full_page=True)
    page.click("main button[type=submit]")

    link = page.locator("#participant-link")
    link.wait_for()
    study = Study.objects.get(name="Drums and guitar, browser")
    url = link.input_value()
    assert url == f"{live_server.url}/s/{study.slug}/"
    page.click("#copy-link")
    page.wait_for_selector("#copy-done:has-text('Cop')")  # "Copied." (or the Ctrl+C hint)
    page.screenshot(path=screens("04_study"), full_page=True)

    page.click("nav.ex-tabs >> text=Clips")
    page.set_input_files("input[name=files]", audio_files)
    page.click("button:has-text('Upload')")
    page.wait_for_selector("#upload-results")
    assert page.locator("#upload-results tr.ok").count() == N_CLIPS
    assert "notes.txt: cannot decode" in page.locator("#upload-results tr.error").inner_text()
    page.screenshot(path=screens("05_clips"), full_page=True)

    page.click("nav.ex-tabs >> text=Trials")
    page.fill("#id_per_instrument", "2")
    page.fill("#id_catch_per_kind", "1")
    page.click("button:has-text('Draw trials')")
    page.wait_for_selector("text=drawn at random")
    page.screenshot(path=screens("06_trials"), full_page=True)

    page.click("nav.ex-tabs >> text=Overview")
    with page.expect_popup() as popup:  # the researcher tries the draft first
        page.click("#preview a")
    preview = popup.value
    preview.set_default_timeout(WAIT_MS)
    preview.wait_for_selector("#preview-banner")
    through_calibration(preview)
    preview.wait_for_selector("text=Instructions")
    preview.click("#continue")
    listen_all(preview)
    with preview.expect_navigation():
        preview.click("#choose-A")
    assert Answer.objects.filter(participant__study=study).count() == 1  # stored while a draft
    preview.close()
    page.reload()
    page.click("button[data-action=open]")
    page.wait_for_selector("[data-testid=status]:has-text('open')")
    page.screenshot(path=screens("07_open"), full_page=True)

    participant = context.browser.new_context(locale="en-US").new_page()
    participant.set_default_timeout(WAIT_MS)
    participant.goto(f"{url}?pid=browser-1")  # the welcome page, at the link: nothing made yet
    assert not Participant.objects.filter(study=study, external_pid="browser-1").exists()
    through_calibration(participant)  # no headphone screening in this study
    participant.wait_for_selector("text=Instructions")
    participant.click("#continue")
    p = Participant.objects.get(study=study, external_pid="browser-1")
    chosen = answer_every_trial(participant, p)
    participant.wait_for_selector("#completion-code")
    participant.context.close()

    page.click("nav.ex-tabs >> text=Progress")
    assert page.locator("#participants .card").first.inner_text().startswith("1")  # no preview
    page.screenshot(path=screens("08_progress"), full_page=True)

    page.click("nav.ex-tabs >> text=Export")
    page.screenshot(path=screens("09_export"), full_page=True)
    with page.expect_download() as download:
        page.click("a:text-is('answers.csv')")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(chosen) == p.slots.count() == Answer.objects.filter(participant=p).count() > 4
    pairs = Counter((row["participant"], row["trial"]) for row in rows)
    assert set(pairs.values()) == {1}  # each answer once
    assert {int(trial) for _, trial in pairs} == set(chosen)  # and every answer given
    assert {int(r["trial"]): r["chosen_position"] for r in rows} == chosen
    assert {r["is_practice"] for r in rows} == {"True", "False"}


def _slowly_locking_page_of(views, monkeypatch, context, url: str):
    """A page of `url` logged in as alice, whose views module's `lock_editable` takes 0.8 s (a
    busy server: a second click comes while the first request is under way)."""
    import time

    lock = views.lock_editable

    def slow_lock(request, locked_study):
        time.sleep(0.8)
        return lock(request, locked_study)

    monkeypatch.setattr(views, "lock_editable", slow_lock)
    page = context.new_page()
    page.goto(url)
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    return page


def test_add_trial_disables_its_button_while_the_trial_is_sent(
    context, live_server, alice, study, settings, monkeypatch
):
    """The Trials page's forms disable their button once sent (static/studies/submit-once.js),
    so a second click while a slow request is under way sends nothing. (Chromium itself drops a
    second submit of a form whose first is pending; other browsers and a click after a stopped
    load do not, and the server refuses the repeat either way: trial_identity.)"""
    from evalsite.studies import experimenter_trials

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    study.status = Study.Status.OPEN
    study.save()
    page = _slowly_locking_page_of(
        experimenter_trials, monkeypatch, context, f"{live_server.url}/studies/{study.pk}/trials/"
    )
    page.wait_for_selector("h1:text('Trials')")
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue).order_by("id")[4:7]  # no trial's
    page.click("summary:text('Add one trial')")
    form = "form[action$='/trials/add/']"
    for field, clip in (("reference", ref), ("candidate_a", a), ("candidate_b", b)):
        page.select_option(f"{form} select[name={field}]", str(clip.pk))
    before = study.trials.count()
    disabled = page.evaluate(
        """form => new Promise(done => {
            const button = document.querySelector(form + " button[type=submit]");
            button.click();  // the request is under way for a while (slow_lock)
            setTimeout(() => done(button.disabled), 50);
        })""",
        form,
    )
    page.wait_for_selector("text=/Trial \\d+ added\\./")
    assert disabled is True
    assert study.trials.count() == before + 1


def test_the_settings_form_disables_its_save_button_while_the_save_is_sent(
    context, live_server, alice, study, settings, monkeypatch
):
    """The settings form is sent once too (data-submit-once): a second click while a slow Save
    is under way sends nothing, so the page the researcher reads is the first Save's answer.
    (The server saves a page sent twice as it saved the first: edit_conflicts.)"""
    from evalsite.studies import experimenter

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    page = _slowly_locking_page_of(
        experimenter, monkeypatch, context, f"{live_server.url}/studies/{study.pk}/edit/"
    )
    page.wait_for_selector("h1:text('Study settings')")
    page.fill("#id_name", "Renamed")
    clicked = page.evaluate(
        """() => new Promise(done => {
            const button = document.querySelector("main form button[type=submit]");
            button.click();  // the Save is under way for a while (slow_lock)
            setTimeout(() => { const was = button.disabled; button.click(); done(was); }, 50);
        })"""
    )
    page.wait_for_selector("text=Study saved.")
    assert clicked is True
    study.refresh_from_db()
    assert study.name == "Renamed"
    assert study.events.filter(kind="edited").count() == 1


@pytest.fixture
def trials_page(context, live_server, client, alice, study):
    """alice's Trials page, logged in, the "Add one trial" form open and filled with clips no
    trial of the study uses; yields (page, the form's selector)."""
    client.force_login(alice)  # a session made here, handed to the browser as its cookie
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/studies/{study.pk}/trials/")
    ref, a, b = Clip.objects.filter(catalogue=study.catalogue).order_by("id")[4:7]  # no trial's
    page.click("summary:text('Add one trial')")
    form = "form[action$='/trials/add/']"
    for field, clip in (("reference", ref), ("candidate_a", a), ("candidate_b", b)):
        page.select_option(f"{form} select[name={field}]", str(clip.pk))
    yield page, form
    page.close()


def _hold_posts(page, posts: list[str]) -> None:
    """The browser's POSTs are counted and held unanswered (a busy server, as long as the test
    needs), until page.unroute("**/*")."""
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.route("**/*", lambda route: None if route.request.method == "POST" else route.continue_())


ACTIVE = "document.activeElement === document.body ? 'BODY' : document.activeElement.textContent"

# Presses the form's focused button (b.focus(); b.click(): what Enter on it does), waits in the
# page until the button is disabled, notes what the page then shows (window.sending), and stops
# the load as Esc or the Stop button does. Run in the page, not step by step from here: while
# the navigation is pending Playwright waits for it to finish before it reads the page.
_SEND_AND_STOP = """form => {
  const f = document.querySelector(form), b = f.querySelector("button[type=submit]");
  b.focus();
  setTimeout(() => b.click(), 0);
  (function stopWhenSending() {
    if (!b.disabled) return setTimeout(stopWhenSending, 20);
    const s = f.querySelector("[role=status]");
    const a = document.activeElement;
    window.sending = {focus: a === document.body ? "BODY" : a.textContent,
                      status: s && s.textContent, busy: b.getAttribute("aria-busy")};
    window.stop();
  })();
}"""


def _send_and_stop(page, form: str) -> dict:
    page.evaluate(_SEND_AND_STOP, form)
    page.wait_for_function("window.sending !== undefined", timeout=WAIT_MS)
    return page.evaluate("window.sending")


def _button_enabled(page, form: str) -> None:
    page.wait_for_function(
        "form => !document.querySelector(form + ' button[type=submit]').disabled",
        arg=form,
        timeout=WAIT_MS,
    )


def test_a_stopped_submission_can_be_sent_again_and_focus_is_never_dropped(trials_page, study):
    """A submission stopped before its page came (Esc, the Stop button, window.stop()) leaves
    the form as it was: after a few seconds its button works again, focus came back to it,
    and a second press sends the form. While sending, focus is on the form's status line,
    which says so politely, not on the page's body."""
    page, form = trials_page
    posts: list[str] = []
    _hold_posts(page, posts)
    before = study.trials.count()
    sending = _send_and_stop(page, form)
    # The status line took focus from the button it disabled, and says why.
    assert sending == {"focus": "Sending…", "status": "Sending…", "busy": "true"}
    _button_enabled(page, form)  # no page came: the form can be sent again
    button = page.locator(f"{form} button[type=submit]")
    assert button.get_attribute("aria-busy") is None
    assert page.evaluate(ACTIVE) == "Add trial"  # focus is back on the button
    assert "send the form again" in page.inner_text(f"{form} [role=status]")
    page.unroute("**/*")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("text=/Trial \\d+ added\\./")
    assert len(posts) == 2
    assert study.trials.count() == before + 1


def test_escape_makes_a_sending_form_sendable_again_at_once(trials_page):
    """Esc stops the page's loading in the browser; the form is sendable again at that key, not
    only after the wait (set here far beyond the test's length: data-submit-once's ms)."""
    page, form = trials_page
    _hold_posts(page, [])
    page.eval_on_selector(form, "f => { f.dataset.submitOnce = '600000'; }")
    _send_and_stop(page, form)  # what the browser does with Esc
    page.keyboard.press("Escape")
    _button_enabled(page, form)
    assert page.evaluate(ACTIVE) == "Add trial"


def test_two_quick_submits_send_one_request(trials_page, study):
    """The guard itself: a second submit of the form before its page came is cancelled by the
    script (Chromium would drop it too, other browsers do not), and one POST is sent."""
    page, form = trials_page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    before = study.trials.count()
    cancelled = page.evaluate(
        """form => {
            const seen = [];
            window.addEventListener("submit", e => seen.push(e.defaultPrevented));
            const f = document.querySelector(form);
            f.requestSubmit();
            f.requestSubmit();  // a second Enter or click before the page leaves
            return seen;
        }""",
        form,
    )
    page.wait_for_selector("text=/Trial \\d+ added\\./")
    assert cancelled == [False, True]
    assert len(posts) == 1
    assert study.trials.count() == before + 1
