"""A participant's answers in real headless Chromium (live server, PostgreSQL): stored once for
a double click or a replayed POST, refused before the clips played, deleted on leaving the study,
and out of another session's reach (screenshot artifacts/screens/11_refused.png)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evalsite.studies import flow_trials
from evalsite.studies.models import Answer
from tests.browser.participant_fixtures import *  # noqa: F403 (fixtures, WAIT_MS)
from tests.browser.participant_fixtures import quick_study
from tests.browser.participant_steps import listen_all, study_url, to_first_trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
        audio = live_server.url + reverse("studies:audio", args=[victim.token, slot.pk, "A"])
        assert intruder.request.get(audio).status == 404
        assert page.request.get(audio).status == 200
        data = {"step": "trials", "index": str(slot.index), "slot": str(slot.pk), "choice": "A",
                "csrfmiddlewaretoken": csrf}  # fmt: skip
        form = intruder.request.post(own_page, form=data, headers={"Referer": own_page})
        assert form.status == 403
        assert not Answer.objects.filter(participant=victim).exists()
    finally:
        other.close()
