"""The listening check: an answer sent before the trial's clips could have been played (or to
a page never shown) is refused and counted as early; studies without the check, and one that
turns it on mid-study.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import soundfile as sf
from django.urls import reverse
from django.utils import timezone

from evalsite.studies import export_answers, flow_trials, served_audio
from evalsite.studies.models import Answer, Assignment
from evalsite.studies.participant_writes import epoch_ms
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    acknowledge,
    answer_current,
    client_log,
    finish_practice,
    listened,
    open_trial,
    post,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db


def _listen_ms(slot, share: float) -> int:
    """`share` of the time the slot's three served renditions take to play (each the clip with
    its padding of silence, `served_audio`), from the rendition module itself."""
    key, t = f"{slot.participant_id}.{slot.participant.seed}", slot.trial
    shown_b = "b" if slot.displayed_first == "a" else "a"
    clips = {"r": t.reference, "A": getattr(t, f"candidate_{slot.displayed_first}"),
             "B": getattr(t, f"candidate_{shown_b}")}  # fmt: skip
    total = 0.0
    for part, clip in clips.items():
        lead, tail = served_audio.pads(key, slot.pk, clip.sample_rate)[part]
        total += clip.duration_s + (lead + tail) / clip.sample_rate
    return round(share * 1000 * total)  # the database rounds (PostgreSQL) or truncates (SQLite)


def test_it_waits_for_the_renditions_served_not_the_bare_clips(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    slot = flow_trials.current_slot(p)
    served_s = 0.0  # what the participant's browser is sent to play, read from the responses
    for part in "rAB":
        response = client.get(reverse("studies:audio", args=[p.token, slot.pk, part]))
        served_s += sf.info(io.BytesIO(b"".join(response.streaming_content))).duration
    bare_s = sum(c.duration_s for c in (slot.trial.reference, slot.trial.candidate_a,
                                        slot.trial.candidate_b))  # fmt: skip
    share = listening_study.setting("min_listen_share")
    assert served_s > bare_s  # padded: the check below tells the two apart
    waited = slot.answerable_ms - epoch_ms(slot.shown_at)
    assert abs(waited - share * 1000 * served_s) <= 1


def test_it_starts_a_trials_listening_time_at_its_own_page_not_at_the_feedback_before_it(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    answer_current(client, p)  # a practice trial: its feedback is shown next
    after_feedback = flow_trials.current_slot(p)
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert 'id="feedback"' in page and 'id="play-r"' not in page
    after_feedback.refresh_from_db()
    assert (after_feedback.shown_at, after_feedback.answerable_ms) == (None, None)
    acknowledge(client, p)
    before = timezone.now()
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert 'id="play-r"' in page
    after_feedback.refresh_from_db()
    assert after_feedback.shown_at >= before  # first served now, as the export says
    listen = _listen_ms(after_feedback, listening_study.setting("min_listen_share"))
    assert after_feedback.answerable_ms >= epoch_ms(before) + listen - 1


def test_it_refuses_and_counts_an_answer_sent_before_the_clips_could_have_been_played(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    before = epoch_ms(timezone.now())
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)  # the page is shown; a script answers at once
    slot = flow_trials.current_slot(p)
    shown_ms = epoch_ms(slot.shown_at)
    assert before <= shown_ms and abs(slot.answerable_ms - shown_ms - _listen_ms(slot, 0.9)) <= 1
    response = post(
        client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log()
    )
    assert response.status_code == 302 and response["Location"] == url(p) + "?early=1"
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()
    p.refresh_from_db()
    assert p.early_answers == 1
    again = client.get(response["Location"], HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert 'id="early"' in again and f'name="index" value="{slot.index}"' in again  # same trial
    assert 'id="early"' not in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    slot.refresh_from_db()
    assert epoch_ms(slot.shown_at) == shown_ms
    assert abs(slot.answerable_ms - shown_ms - _listen_ms(slot, 0.9)) <= 1
    listened(slot)  # as when that time has passed
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log())
    assert Answer.objects.filter(participant=p, trial=slot.trial).count() == 1
    p.refresh_from_db()
    assert p.early_answers == 1
    frame = export_answers.participants_dataframe(listening_study).set_index("participant")
    assert frame.loc[p.pk, "early_answers"] == 1


def test_it_refuses_an_answer_to_a_trial_whose_page_was_never_shown(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = flow_trials.current_slot(p)
    assert slot.shown_at is None and slot.answerable_ms is None
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log())
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()
    p.refresh_from_db()
    assert p.early_answers == 1


def test_a_stale_or_forged_answer_is_refused_without_being_counted_early(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    ahead = post(
        client,
        p,
        "trials",
        index=slot.index + 1,
        slot=p.slots.get(index=slot.index + 1).pk,
        choice="A",
        log=client_log(),
    )
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log())
    replayed = post(
        client, p, "trials", index=slot.index, slot=slot.pk, choice="B", log=client_log()
    )
    assert ahead["Location"] == replayed["Location"] == url(p)  # no "too early" notice
    p.refresh_from_db()
    assert p.early_answers == 0 and Answer.objects.filter(participant=p).count() == slot.index + 1


def test_a_study_without_the_listening_check_stores_answers_at_once(
    client, experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, min_listen_share=0)
    p = to_step(client, enter(client, study), "practice")
    finish_practice(client, p)
    slot = flow_trials.current_slot(p)
    assert slot.answerable_ms == 0  # answerable from the start: no page view needed
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log())
    assert Answer.objects.filter(participant=p, trial=slot.trial).count() == 1
    p.refresh_from_db()
    assert p.early_answers == 0


def test_a_slot_shown_without_a_listening_time_gets_one_at_its_next_view(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = flow_trials.current_slot(p)
    shown = timezone.now() - timedelta(minutes=5)  # shown by code from before the check
    Assignment.objects.filter(pk=slot.pk).update(shown_at=shown, answerable_ms=None)
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    slot.refresh_from_db()
    assert slot.shown_at == shown  # the first view's time is kept
    assert slot.answerable_ms is not None and slot.answerable_ms > epoch_ms(shown)
    listened(slot)
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log())
    assert Answer.objects.filter(participant=p, trial=slot.trial).count() == 1


def test_a_listening_check_turned_on_mid_study_applies_to_trials_not_yet_shown(
    client, experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, min_listen_share=0)
    p = to_step(client, enter(client, study), "practice")
    finish_practice(client, p)
    study.settings = {**study.settings, "min_listen_share": 1.0}
    study.save()
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    slot = flow_trials.current_slot(p)
    assert abs(slot.answerable_ms - epoch_ms(slot.shown_at) - _listen_ms(slot, 1.0)) <= 1
    post(client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log())
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()
    p.refresh_from_db()
    assert p.early_answers == 1
