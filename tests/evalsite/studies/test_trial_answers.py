"""Practice and main trials through the participant's page: feedback, answers stored once and
only to the current slot at the posted step, the first view's time, reservations kept, the
trial's sounds by position, uncacheable pages, and completion once every answer is stored.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import parse_http_date

from evalsite.studies import flow_trials, participant_writes
from evalsite.studies.models import Answer, Participant
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    acknowledge,
    answer_current,
    client_log,
    finish,
    finish_practice,
    open_trial,
    post,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db


def test_it_gives_feedback_after_each_practice_trial(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    slot, _ = answer_current(client, p, expected=True)
    assert slot.trial.is_practice and p.state["feedback"]["correct"] is True
    page = client.get(url(p)).content.decode()
    assert 'id="feedback"' in page and 'id="play-r"' not in page
    acknowledge(client, p)
    p.refresh_from_db()
    assert p.state == {}


def test_it_keeps_a_later_feedback_when_an_older_pages_continue_arrives(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    first, _ = answer_current(client, p)  # tabs 1 and 2 both show this trial's feedback
    old_continue = {"action": "continue", "slot": first.pk}
    acknowledge(client, p)  # tab 1 goes on and answers the next practice trial
    second, _ = answer_current(client, p)
    assert second.trial.is_practice and p.state["feedback"]["slot"] == second.pk
    response = post(client, p, "practice", **old_continue)  # tab 2's Continue, for the first
    assert response.status_code == 302 and response["Location"] == url(p)
    p.refresh_from_db()
    assert p.state["feedback"]["slot"] == second.pk  # the second feedback is still to be seen
    page = client.get(url(p)).content.decode()
    assert 'id="feedback"' in page and f'name="slot" value="{second.pk}"' in page
    acknowledge(client, p)
    p.refresh_from_db()
    assert p.state == {}


def test_it_stores_exactly_one_answer_for_a_replayed_post(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    data = {
        "step": "trials",
        "index": slot.index,
        "slot": slot.pk,
        "choice": "A",
        "log": client_log(),
    }
    first = client.post(url(p), data, HTTP_USER_AGENT=DESKTOP_UA)
    replay = client.post(url(p), data | {"choice": "B"}, HTTP_USER_AGENT=DESKTOP_UA)
    assert first.status_code == replay.status_code == 302
    answers = Answer.objects.filter(participant=p, trial=slot.trial)
    assert answers.count() == 1 and answers.get().chosen_position == "A"


@pytest.mark.parametrize(
    "bad",
    [{"index": "-1"}, {"index": "x"}, {"index": "\uff11"}, {"index": "10000000"}, {"index": ""},
     {"choice": "C"}, {"choice": ""}, {"log": "x" * 20_001}],
    ids=["negative", "text", "fullwidth-digit", "huge", "empty-index", "choice-C", "no-choice",
         "log-too-long"],
)  # fmt: skip
def test_it_stores_nothing_for_a_malformed_answer(client, listening_study, bad):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = flow_trials.current_slot(p)
    data = {
        "step": "trials",
        "index": str(slot.index),
        "slot": slot.pk,
        "choice": "A",
        "log": client_log(),
    }
    response = client.post(url(p), data | bad, HTTP_USER_AGENT=DESKTOP_UA)
    assert response.status_code == 302 and response["Location"] == url(p)
    assert not Answer.objects.filter(participant=p, trial_index__gte=slot.index).exists()
    assert flow_trials.current_slot(p).index == slot.index  # the same trial is shown again


@pytest.mark.parametrize(
    ("log", "expected"),
    [("not json", (None, 0, None)), ("[1, 2]", (None, 0, None)),
     ('{"response_ms": "soon", "heard": {"r": "nan", "A": NaN, "B": 7}, "plays": {"A": -3}}',
      (None, 0, 1.0)),
     ('{"response_ms": 1e400, "blur_events": 99999}', (None, 1000, None)),
     ('{"response_ms": ' + "9" * 5000 + "}", (None, 0, None)),
     ('{"response_ms": %s, "heard": {"A": %s, "B": %s}, "plays": {"r": %s}, "blur_events": %s}'
      % (("9" * 400,) * 5), (None, 0, None)),
     ("[" * 9000 + "]" * 9000, (None, 0, None))],
    ids=["not-json", "not-an-object", "wrong-types-and-nan", "out-of-range",
         "integer-over-4300-digits", "integer-beyond-a-float", "nested-too-deep"],
)  # fmt: skip
def test_it_stores_an_answer_with_a_garbled_client_log_as_unknowns(
    client, listening_study, log, expected
):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=log)
    a = Answer.objects.get(participant=p, trial=slot.trial)
    heard_shown_b = a.heard_b if slot.displayed_first == "a" else a.heard_a
    assert (a.response_ms, a.blur_events, heard_shown_b) == expected
    assert (a.plays_a, a.plays_b, a.heard_reference) == (0, 0, None)


def test_it_refuses_a_second_answer_even_when_bypassing_the_view(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    log = participant_writes.ClientLog(1000, {"r": 1, "A": 1, "B": 1}, {}, 0, 48000, {})
    assert (
        participant_writes.store_answer(p.token, "trials", slot.index, slot.pk, "A", log)
        is not None
    )
    assert participant_writes.store_answer(p.token, "trials", slot.index, slot.pk, "B", log) is None
    assert Answer.objects.filter(participant=p, trial=slot.trial).count() == 1


def test_it_keeps_a_trials_first_view_time_through_reloads_and_stores_it_with_the_answer(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = flow_trials.current_slot(p)
    assert slot.shown_at is None  # not yet seen on the server
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    slot.refresh_from_db()
    first = slot.shown_at
    assert first is not None
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)  # a reload
    slot.refresh_from_db()
    assert slot.shown_at == first
    answer_current(client, p)
    assert Answer.objects.get(participant=p, trial=slot.trial).shown_at == first


def test_it_stores_canonical_choice_positions_and_client_log(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot, _ = answer_current(client, p, choice="B")
    a = Answer.objects.get(participant=p, trial=slot.trial)
    shown_b = "b" if slot.displayed_first == "a" else "a"
    assert (a.chosen_position, a.chosen, a.displayed_first) == ("B", shown_b, slot.displayed_first)
    plays_shown_a = a.plays_a if slot.displayed_first == "a" else a.plays_b
    assert plays_shown_a == 2 and a.plays_reference == 1  # the log played position A twice
    assert (a.response_ms, a.blur_events, a.audio_sample_rate) == (1234, 1, 48000)
    assert a.trial_index == slot.index and a.shown_at is not None


def test_it_never_shows_an_answered_trial_again(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot, _ = answer_current(client, p)
    assert flow_trials.current_slot(p).index == slot.index + 1
    stale = post(client, p, "trials", index=slot.index, slot=slot.pk, choice="B", log=client_log())
    assert stale.status_code == 302
    assert Answer.objects.filter(participant=p).count() == slot.index + 1


def test_it_keeps_the_slots_of_an_active_participant_reserved(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    timeout = timedelta(seconds=listening_study.setting("reservation_timeout_s"))
    unanswered = p.slots.filter(index__gte=flow_trials.current_slot(p).index)
    fresh = timezone.now() + timeout * 0.95  # more than 90 % left: the page leaves it alone
    unanswered.update(reserved_until=fresh)
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 200
    assert set(unanswered.values_list("reserved_until", flat=True)) == {fresh}
    stale = timezone.now() - timedelta(seconds=1)  # expired while away: renewed in full
    unanswered.update(reserved_until=stale)
    answered = p.slots.filter(index__lt=flow_trials.current_slot(p).index).order_by("index")
    kept = list(answered.values_list("reserved_until", flat=True))
    before = timezone.now()
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 200
    renewed = set(unanswered.values_list("reserved_until", flat=True))
    assert len(renewed) == 1 and min(renewed) >= before + timeout
    assert list(answered.values_list("reserved_until", flat=True)) == kept


def test_it_serves_only_the_current_trials_audio_by_position(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    slot = flow_trials.current_slot(p)
    page = client.get(url(p)).content.decode()
    for clip in (slot.trial.reference, slot.trial.candidate_a, slot.trial.candidate_b):
        assert clip.token not in page
    # the URLs name the slot (its id) and the position, nothing of the clips
    urls = [reverse("studies:audio", args=[p.token, slot.pk, k]) for k in "rAB"]
    assert re.findall(r'<audio data-key="[rAB]" preload="auto" src="([^"]+)"', page) == urls
    audio = urls[1]
    whole = client.get(audio)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert "Content-Disposition" not in whole
    part = client.get(audio, HTTP_RANGE="bytes=0-99")
    assert part.status_code == 206 and part["Content-Range"].startswith("bytes 0-99/")
    assert len(b"".join(part.streaming_content)) == 100
    nxt = reverse("studies:audio", args=[p.token, p.slots.get(index=slot.index + 1).pk, "A"])
    assert client.get(nxt).status_code == 404


def test_it_completes_only_when_every_answer_is_stored(client, listening_study):
    listening_study.settings |= {"prolific_completion_url": "https://app.prolific.com/c"}
    listening_study.save()
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="x1"), "practice")
    finish(client, p)
    assert p.step == "done" and p.finished_at is not None
    assert Answer.objects.filter(participant=p).count() == p.slots.count()
    page = client.get(url(p)).content.decode()
    assert p.completion_code in page
    assert f"https://app.prolific.com/c?cc={p.completion_code}" in page


def test_it_does_not_finish_while_an_answer_is_missing(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish(client, p)
    Answer.objects.filter(participant=p).order_by("-trial_index").first().delete()
    Participant.objects.filter(pk=p.pk).update(step="trials")
    p.refresh_from_db()
    assert flow_trials.finish_if_complete(p) is False


def test_it_gives_neutral_feedback_to_a_practice_trial_without_a_key(client, listening_study):
    listening_study.trials.filter(is_practice=True).update(expected="")
    p = to_step(client, enter(client, listening_study), "practice")
    answer_current(client, p)
    assert p.state["feedback"]["correct"] is None
    assert "Practice answer recorded." in client.get(url(p)).content.decode()


def test_it_marks_participant_pages_and_answers_uncacheable_as_never_cache_does(
    client, listening_study
):
    reference = HttpResponse()
    add_never_cache_headers(reference)
    entry = reverse("studies:entry", args=[listening_study.slug])
    welcome = client.get(entry)
    link = client.post(entry)
    p = Participant.objects.get(study=listening_study)
    p = to_step(client, p, "practice")
    page = client.get(url(p))
    _, answer = answer_current(client, p)
    codes = (welcome.status_code, link.status_code, page.status_code, answer.status_code)
    assert codes == (200, 302, 200, 302)
    for response in (welcome, link, page, answer):
        assert set(response["Cache-Control"].split(", ")) == set(
            reference["Cache-Control"].split(", ")
        )
        assert parse_http_date(response["Expires"]) < time.time()


def test_it_stores_an_answer_only_for_the_current_slot_at_the_posted_step(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    log = client_log()
    ahead = post(
        client,
        p,
        "trials",
        index=slot.index + 1,
        slot=p.slots.get(index=slot.index + 1).pk,
        choice="A",
        log=log,
    )  # forged
    wrong_step = post(client, p, "practice", index=slot.index, slot=slot.pk, choice="A", log=log)
    assert ahead.status_code == wrong_step.status_code == 302
    assert not Answer.objects.filter(participant=p, trial_index__gte=slot.index).exists()
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="B", log=log)
    stored = Answer.objects.get(participant=p, trial_index=slot.index)
    assert (stored.trial_id, stored.chosen_position) == (slot.trial_id, "B")
    assert flow_trials.current_slot(p).index == slot.index + 1


def test_it_refuses_an_answer_from_a_browser_not_bound_to_the_participant(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = flow_trials.current_slot(p)
    other = Client()
    data = {
        "step": "trials",
        "index": slot.index,
        "slot": slot.pk,
        "choice": "A",
        "log": client_log(),
    }
    assert other.post(url(p), data, HTTP_USER_AGENT=DESKTOP_UA).status_code == 403
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()
