"""The participant flow through Django's test client: entry, steps, answers, resume, refusals."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import parse_http_date

from evalsite.reports.models import ReportSnapshot
from evalsite.studies import (
    design_fill,
    export_answers,
    flow_screening,
    flow_trials,
    flow_withdraw,
    participant,
    participant_forms,
    participant_sql,
    participant_writes,
    screening,
)
from evalsite.studies.models import (
    Answer,
    Assignment,
    FoldedParticipant,
    Participant,
    Study,
    StudyFold,
)
from evalsite.studies.participant_sql import Position
from evalsite.studies.participant_writes import epoch_ms
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    client_log,
    finish,
    listened,
    open_trial,
    post,
    screen,
    to_step,
    url,
)
from tests.lock_waits import until_blocked

pytestmark = pytest.mark.django_db


def test_it_records_recruitment_parameters_and_binds_the_session(client, listening_study):
    p = enter(client, listening_study, PROLIFIC_PID="pp1", STUDY_ID="st1", SESSION_ID="se1")
    assert (p.prolific_pid, p.prolific_study_id, p.prolific_session_id) == ("pp1", "st1", "se1")
    assert p.session == "se1" and p.recruitment["PROLIFIC_PID"] == "pp1"
    assert client.get(url(p)).status_code == 200
    assert p.step == "browser_check"


def test_it_resumes_the_same_participant_by_recruitment_id(client, listening_study):
    p = enter(client, listening_study, pid="abc")
    to_step(client, p, "questionnaire")
    other_browser = Client()
    again = enter(other_browser, listening_study, pid="abc")
    assert again.pk == p.pk and again.step == "questionnaire"
    assert Participant.objects.filter(study=listening_study).count() == 1


def test_it_refuses_pages_and_audio_of_another_session(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    stranger = Client()
    enter(stranger, listening_study)
    response = stranger.get(url(p))
    assert response.status_code == 403
    assert stranger.post(url(p), {"step": "practice"}).status_code == 403
    audio = reverse("studies:audio", args=[p.token, 0, "r"])
    assert stranger.get(audio).status_code == 404
    assert client.get(audio).status_code == 200


def test_it_refuses_a_forged_or_edited_binding_cookie(client, listening_study):
    p = enter(client, listening_study)
    stranger = Client()
    mine = enter(stranger, listening_study)
    signed = stranger.cookies[participant.BINDING_COOKIE].value
    stranger.cookies[participant.BINDING_COOKIE] = signed.replace(mine.token, p.token)
    assert stranger.get(url(p)).status_code == 403
    stranger.cookies[participant.BINDING_COOKIE] = p.token  # unsigned
    assert stranger.get(url(p)).status_code == 403
    assert client.get(url(p)).status_code == 200


def test_it_refuses_a_binding_cookie_once_older_than_the_session_age_though_checked_before(
    client, listening_study, settings
):
    p = enter(client, listening_study)
    assert client.get(url(p)).status_code == 200  # its signature checked (and kept) once
    settings.SESSION_COOKIE_AGE = -1  # every cookie is now too old
    assert client.get(url(p)).status_code == 403


def test_it_keeps_no_forged_binding_cookie_among_the_checked_ones(client, listening_study):
    p = enter(client, listening_study)
    stranger = Client()
    participant._verified_binding.cache_clear()
    for n in range(3):
        stranger.cookies[participant.BINDING_COOKIE] = f"{p.token}:1xZW1u:forged{n}"
        assert stranger.get(url(p)).status_code == 403
    assert participant._verified_binding.cache_info().currsize == 0
    assert client.get(url(p)).status_code == 200
    assert participant._verified_binding.cache_info().currsize == 1


def test_it_still_serves_a_browser_bound_through_its_session(client, listening_study):
    p = enter(client, listening_study)
    earlier = Client()  # bound before the binding cookie existed: tokens in the session only
    session = earlier.session
    session[participant.SESSION_KEY] = [p.token]
    session.save()
    assert earlier.get(url(p)).status_code == 200
    assert earlier.get(reverse("studies:entry", args=[listening_study.slug])).url == url(p)


def test_it_refuses_new_participants_when_the_study_is_paused(client, listening_study):
    listening_study.status = Study.Status.PAUSED
    listening_study.save()
    response = client.get(reverse("studies:entry", args=[listening_study.slug]))
    assert response.status_code == 403
    assert not listening_study.participants.exists()


@pytest.mark.parametrize("status", [Study.Status.PAUSED, Study.Status.CLOSED])
def test_it_lets_only_started_participants_back_into_a_paused_or_closed_study(
    client, listening_study, status
):
    long_id = "L" * 80  # stored cut to 64 characters
    started = enter(client, listening_study, pid="known-1")
    returning = enter(Client(), listening_study, PROLIFIC_PID=long_id)
    Study.objects.filter(pk=listening_study.pk).update(status=status)
    entry = reverse("studies:entry", args=[listening_study.slug])
    stranger = Client()
    # a new PROLIFIC_PID next to someone else's pid: the resume looks up PROLIFIC_PID first, so
    # letting this in would have made a new participant in a study that takes none
    assert stranger.get(entry, {"PROLIFIC_PID": "NEWCOMER", "pid": "known-1"}).status_code == 403
    assert stranger.get(entry, {"PROLIFIC_PID": "NEWCOMER"}).status_code == 403
    assert set(listening_study.participants.values_list("pk", flat=True)) == {
        started.pk,
        returning.pk,
    }
    assert stranger.get(entry, {"pid": "known-1"})["Location"] == url(started)
    assert Client().get(entry, {"PROLIFIC_PID": long_id})["Location"] == url(returning)


@pytest.mark.parametrize("status", [Study.Status.OPEN, Study.Status.PAUSED, Study.Status.CLOSED])
def test_another_browser_with_a_prolific_id_but_not_its_session_id_cannot_take_the_participant_over(
    client, listening_study, status
):
    p = enter(client, listening_study, PROLIFIC_PID="pp-own", STUDY_ID="st1", SESSION_ID="se-own")
    p = to_step(client, p, "practice")
    Study.objects.filter(pk=listening_study.pk).update(status=status)
    entry = reverse("studies:entry", args=[listening_study.slug])
    for params in (
        {"PROLIFIC_PID": "pp-own"},
        {"PROLIFIC_PID": "pp-own", "STUDY_ID": "st1", "SESSION_ID": "se-guessed"},
        {"PROLIFIC_PID": "pp-own", "SESSION_ID": ""},
        {"PROLIFIC_PID": "pp-own", "SESSION_ID": "se-own\u00e9"},  # not ASCII: still compared
    ):
        stranger = Client()
        response = stranger.get(entry, params)
        assert response.status_code == 403, params
        page = response.content.decode()
        assert "does not match the session" in page and p.token not in page
        assert participant.BINDING_COOKIE not in response.cookies
        assert stranger.get(url(p)).status_code == 403
        assert leave(stranger, p).status_code == 403
    japanese = Client().get(entry, {"PROLIFIC_PID": "pp-own", "lang": "ja"}).content.decode()
    assert "セッション" in japanese
    p.refresh_from_db()
    assert p.step == "practice" and listening_study.participants.count() == 1


@pytest.mark.parametrize("status", [Study.Status.OPEN, Study.Status.PAUSED])
def test_a_prolific_participant_resumes_in_another_browser_with_the_same_session_id(
    client, listening_study, status
):
    link = {"PROLIFIC_PID": "pp-back", "STUDY_ID": "st1", "SESSION_ID": "se-1"}
    p = to_step(client, enter(client, listening_study, **link), "questionnaire")
    Study.objects.filter(pk=listening_study.pk).update(status=status)
    laptop = Client()
    again = enter(laptop, listening_study, **link)
    assert again == p and again.step == "questionnaire"
    assert laptop.get(url(p)).status_code == 200
    # a browser already bound to the participant comes back by any link naming it
    assert enter(client, listening_study, PROLIFIC_PID="pp-back") == p
    assert listening_study.participants.count() == 1


@pytest.mark.parametrize("rate", ["\u00b2", "99999999999", "-1", "48k"])
def test_it_stores_an_unreadable_output_sample_rate_as_unknown(client, listening_study, rate):
    p = enter(client, listening_study)
    response = post(client, p, "browser_check", web_audio="1", ua_mobile="0", sample_rate=rate)
    assert response.status_code == 302
    p.refresh_from_db()
    assert p.step == "consent" and p.audio_sample_rate is None


def test_it_refuses_phones_when_the_study_does(client, listening_study):
    p = enter(client, listening_study)
    post(client, p, "browser_check", web_audio="1", ua_mobile="1")
    p.refresh_from_db()
    assert p.step == "refused" and p.browser["phone"] is True


def test_it_refuses_a_browser_without_web_audio(client, listening_study):
    p = enter(client, listening_study)
    post(client, p, "browser_check", web_audio="0", ua_mobile="0")
    p.refresh_from_db()
    assert p.step == "refused" and p.state == {"reason": "web_audio"}
    assert b"cannot play the sounds" in client.get(url(p)).content


def test_a_participant_refused_on_a_phone_takes_the_check_again_on_another_device(
    client, listening_study
):
    p = enter(client, listening_study, PROLIFIC_PID="pp-phone")
    post(client, p, "browser_check", web_audio="1", ua_mobile="1")
    design_fill.count_fill(listening_study, timezone.now())  # folds the refused participant
    assert FoldedParticipant.objects.filter(participant=p).exists()

    laptop = Client()
    assert enter(laptop, listening_study, PROLIFIC_PID="pp-phone") == p  # same link, same id
    p.refresh_from_db()
    assert p.step == "browser_check" and p.finished_at is None and p.state == {}
    assert not FoldedParticipant.objects.filter(participant=p).exists()
    fold = StudyFold.objects.get(study=listening_study)
    assert fold.participants == FoldedParticipant.objects.filter(study=listening_study).count()
    post(laptop, p, "browser_check", web_audio="1", ua_mobile="0")
    p.refresh_from_db()
    assert p.step == "consent" and p.browser["phone"] is False
    assert listening_study.participants.count() == 1


def test_a_participant_who_declined_stays_declined_when_coming_back(client, listening_study):
    p = to_step(client, enter(client, listening_study, pid="no-thanks"), "consent")
    post(client, p, "consent", decision="decline")
    assert enter(Client(), listening_study, pid="no-thanks") == p
    p.refresh_from_db()
    assert p.step == "declined"


def test_it_records_a_declined_consent_and_stops(client, listening_study):
    p = to_step(client, enter(client, listening_study), "consent")
    post(client, p, "consent", decision="decline")
    p.refresh_from_db()
    assert p.step == "declined" and not p.slots.exists()


def test_it_shows_questionnaire_errors_without_advancing(client, listening_study):
    p = to_step(client, enter(client, listening_study), "questionnaire")
    response = post(client, p, "questionnaire", musical_training="", device="laptop")
    assert response.status_code == 200 and b'role="alert"' in response.content
    p.refresh_from_db()
    assert p.step == "questionnaire"


@pytest.mark.parametrize(
    ("back", "expected"),
    [("https://app.prolific.com/submissions/complete?cc=DONE1", "?cc=C1SCREEN"),
     ("https://app.prolific.com/submissions/complete", "?cc=C1SCREEN"),
     ("https://example.org/back?code={code}&x=1", "?code=C1SCREEN&x=1")],
)  # fmt: skip
def test_it_sends_a_screened_out_prolific_participant_back_with_the_screen_out_code(
    client, listening_study, back, expected
):
    listening_study.settings = {**listening_study.settings, "screen_out_code": "C1SCREEN",
                                "prolific_completion_url": back}  # fmt: skip
    listening_study.save()
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-so"), "screening")
    screen(client, p, correct=False)
    p.refresh_from_db()
    assert p.screen_out_code == "C1SCREEN"
    page = client.get(url(p)).content.decode()
    assert f'href="{back.split("?")[0]}{expected}"'.replace("&", "&amp;") in page
    assert "DONE1" not in page  # never the completion code


def test_it_offers_no_prolific_link_with_a_random_screen_out_code(client, listening_study):
    back = {"prolific_completion_url": "https://app.prolific.com/x"}
    listening_study.settings = {**listening_study.settings, **back}
    listening_study.save()
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-so2"), "screening")
    screen(client, p, correct=False)
    assert b'id="prolific"' not in client.get(url(p)).content


def test_it_screens_out_a_participant_who_fails_the_antiphase_test(client, listening_study):
    p = to_step(client, enter(client, listening_study), "screening")
    screen(client, p, correct=False)
    p.refresh_from_db()
    assert p.step == "screened_out" and p.screening_passed is False
    assert p.screen_out_code.startswith("SO-")
    assert not p.slots.exists()  # no trial reserved for someone who cannot take part
    assert b"screen-out-code" in client.get(url(p)).content


def test_it_runs_huggins_after_antiphase_when_enabled(client, experimenter, listening_catalogue):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, huggins=True)
    p = to_step(client, enter(client, study), "screening")
    screen(client, p)
    p.refresh_from_db()
    kinds = [a["kind"] for a in p.screening["answers"]]
    assert kinds == ["antiphase", "antiphase", "huggins", "huggins"]
    assert p.step == "instructions" and p.screening_passed is True


def test_it_serves_the_screening_sound_of_the_current_trial_only(client, listening_study, settings):
    p = to_step(client, enter(client, listening_study), "screening")
    page = client.get(url(p))
    audio = reverse("studies:screening_audio", args=[p.token, 0, 0])
    assert audio in page.content.decode()
    ok = client.get(audio)
    assert ok.status_code == 200 and ok["Content-Type"] == "audio/wav"
    again = client.get(audio, HTTP_RANGE="bytes=0-")
    assert b"".join(again.streaming_content) == b"".join(ok.streaming_content)  # the same sound
    assert not list(Path(settings.MEDIA_ROOT).glob("**/screen_*"))  # nothing kept per participant
    assert client.get(reverse("studies:screening_audio", args=[p.token, 1, 0])).status_code == 404
    assert client.get(reverse("studies:screening_audio", args=[p.token, 0, 1])).status_code == 404


def test_a_reloaded_screening_page_draws_a_new_trial_and_refuses_answers_to_the_old_one(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "screening")
    first = reverse("studies:screening_audio", args=[p.token, 0, 0])
    assert first in client.get(url(p)).content.decode()
    reloaded = client.get(url(p)).content.decode()  # the sound was heard once; now a reload
    second = reverse("studies:screening_audio", args=[p.token, 0, 1])
    assert second in reloaded and 'name="draw" value="1"' in reloaded
    assert client.get(first).status_code == 404  # the first draw cannot be heard again
    assert client.get(second).status_code == 200
    p.refresh_from_db()
    assert flow_screening.screening_draw(p) == 1 and p.screening["views"] == [2]
    old_key = screening.answer_key(p.seed, "antiphase", 0, 0)["target"]
    post(client, p, "screening", n=0, draw=0, choice=old_key, rt_ms=800)  # the old tab's answer
    p.refresh_from_db()
    assert p.screening.get("answers", []) == []  # not stored: it answers sounds not shown now
    key = flow_screening.screening_key(p)["target"]
    assert key == screening.answer_key(p.seed, "antiphase", 0, 1)["target"]
    post(client, p, "screening", n=0, draw=1, choice=key, rt_ms=800)
    p.refresh_from_db()
    assert p.screening["answers"] == [
        {"kind": "antiphase", "i": 0, "draw": 1, "choice": key, "rt_ms": 800, "correct": True}
    ]
    client.get(url(p))  # the next trial's first view is its draw 0
    p.refresh_from_db()
    assert p.screening["views"] == [2, 1] and flow_screening.screening_draw(p) == 0


def test_it_promises_practice_trials_only_when_the_study_has_some(client, listening_study):
    p = to_step(client, enter(client, listening_study), "instructions")
    assert b"practice trials" in client.get(url(p)).content
    listening_study.settings = {**listening_study.settings, "practice_trials": 0}
    listening_study.save()
    assert b"practice trials" not in client.get(url(p)).content


def test_it_lists_the_instruments_with_the_language_s_separator(client, listening_study):
    p = to_step(client, enter(client, listening_study, lang="ja"), "instructions")
    Participant.objects.filter(pk=p.pk).update(language="ja")
    assert "ドラム、ギター" in client.get(url(p)).content.decode()


def test_it_gives_feedback_after_each_practice_trial(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    slot, _ = answer_current(client, p, expected=True)
    assert slot.trial.is_practice and p.state["feedback"]["correct"] is True
    page = client.get(url(p)).content.decode()
    assert 'id="feedback"' in page and 'id="play-r"' not in page
    post(client, p, "practice", action="continue")
    p.refresh_from_db()
    assert p.state == {}


def test_it_stores_exactly_one_answer_for_a_replayed_post(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    data = {"step": "trials", "index": slot.index, "choice": "A", "log": client_log()}
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
    data = {"step": "trials", "index": str(slot.index), "choice": "A", "log": client_log()}
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
     ("[" * 9000 + "]" * 9000, (None, 0, None))],
    ids=["not-json", "not-an-object", "wrong-types-and-nan", "out-of-range",
         "integer-over-4300-digits", "nested-too-deep"],
)  # fmt: skip
def test_it_stores_an_answer_with_a_garbled_client_log_as_unknowns(
    client, listening_study, log, expected
):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    post(client, p, "trials", index=slot.index, choice="A", log=log)
    a = Answer.objects.get(participant=p, trial=slot.trial)
    heard_shown_b = a.heard_b if slot.displayed_first == "a" else a.heard_a
    assert (a.response_ms, a.blur_events, heard_shown_b) == expected
    assert (a.plays_a, a.plays_b, a.heard_reference) == (0, 0, None)


def test_it_refuses_a_second_answer_even_when_bypassing_the_view(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    log = participant_writes.ClientLog(1000, {"r": 1, "A": 1, "B": 1}, {}, 0, 48000, {})
    assert participant_writes.store_answer(p.token, "trials", slot.index, "A", log) is not None
    assert participant_writes.store_answer(p.token, "trials", slot.index, "B", log) is None
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
    stale = post(client, p, "trials", index=slot.index, choice="B", log=client_log())
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
        assert clip.token not in page and f"/{clip.pk}" not in page
    audio = reverse("studies:audio", args=[p.token, slot.index, "A"])
    assert audio in page
    whole = client.get(audio)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert "Content-Disposition" not in whole
    part = client.get(audio, HTTP_RANGE="bytes=0-99")
    assert part.status_code == 206 and part["Content-Range"].startswith("bytes 0-99/")
    assert len(b"".join(part.streaming_content)) == 100
    nxt = reverse("studies:audio", args=[p.token, slot.index + 1, "A"])
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


def test_it_translates_participant_pages_to_japanese(client, listening_study):
    p = enter(client, listening_study, lang="ja")
    assert p.language == "ja"
    page = client.get(url(p)).content.decode()
    assert "ようこそ" in page and 'lang="ja"' in page
    client.get(url(p), {"lang": "en"})
    assert "Welcome" in client.get(url(p)).content.decode()


def finish_practice(client, p):
    while p.step == "practice":
        if p.state.get("feedback"):
            post(client, p, "practice", action="continue")
        else:
            answer_current(client, p, expected=True)
        p.refresh_from_db()


def test_it_tells_a_participant_when_the_study_is_full(client, experimenter, listening_catalogue):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    finish(client, to_step(client, enter(client, study, pid="first"), "practice"))
    late = Client()
    p = to_step(late, enter(late, study, pid="late"), "instructions")
    post(late, p, "instructions")
    p.refresh_from_db()
    assert p.step == "full" and not p.slots.exists()
    assert "The study is full" in late.get(url(p)).content.decode()

    # Now the finished participant's answers are in the fold: a newcomer is told at the door,
    # before consent and screening.
    door = Client()
    newcomer = enter(door, study, PROLIFIC_PID="pp-door")
    assert newcomer.step == "full" and newcomer.finished_at is not None
    page = door.get(url(newcomer)).content.decode()
    assert "The study is full" in page and "return your submission" in page


def test_a_participant_refused_on_a_phone_is_told_at_once_when_the_study_filled_meanwhile(
    client, experimenter, listening_catalogue
):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    phone = Client()
    p = enter(phone, study, pid="phone-first")
    post(phone, p, "browser_check", web_audio="1", ua_mobile="1")
    finish(client, to_step(client, enter(client, study, pid="first"), "practice"))
    design_fill.count_fill(study, timezone.now())  # the finished participant folded: study full
    assert enter(Client(), study, pid="phone-first") == p
    p.refresh_from_db()
    assert p.step == "full"


def test_it_does_not_turn_newcomers_away_while_the_trials_still_need_answers(
    client, experimenter, listening_catalogue
):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=2)
    finish(client, to_step(client, enter(client, study, pid="first"), "practice"))
    design_fill.count_fill(study, timezone.now())  # the first participant folded: one answer each
    assert enter(Client(), study, pid="second").step == "browser_check"


def test_it_gives_neutral_feedback_to_a_practice_trial_without_a_key(client, listening_study):
    listening_study.trials.filter(is_practice=True).update(expected="")
    p = to_step(client, enter(client, listening_study), "practice")
    answer_current(client, p)
    assert p.state["feedback"]["correct"] is None
    assert "Practice answer recorded." in client.get(url(p)).content.decode()


def test_it_computes_the_position_like_the_orm_at_every_slot(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    main = p.slots.filter(trial__is_practice=False)
    fields = ["id", "instrument", "is_practice", "is_catch", "catch_kind", "expected",
              "reference_id", "candidate_a_id", "candidate_b_id", "repeat_of_id"]  # fmt: skip
    while (expected := flow_trials.current_slot(p)) is not None:
        at = participant_sql.position(p)
        assert [getattr(at.slot, f.attname) for f in at.slot._meta.concrete_fields] == [
            getattr(expected, f.attname) for f in expected._meta.concrete_fields
        ]
        assert [getattr(at.slot.trial, f) for f in fields] == [
            getattr(expected.trial, f) for f in fields
        ]
        done = main.filter(index__lt=expected.index).count()
        assert (at.done, at.total) == (done, main.count())
        assert at.is_last == (expected.index == p.slots.count() - 1)
        p.refresh_from_db()
        if p.state.get("feedback"):
            post(client, p, p.step, action="continue")
        else:
            answer_current(client, p)
    assert participant_sql.position(p) == Position(None, main.count(), main.count(), True)


def test_it_loads_a_participant_and_study_by_token_like_the_orm(client, listening_study):
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp9"), "practice")
    expected = Participant.objects.select_related("study").get(pk=p.pk)
    loaded = participant_sql.participant_by_token(p.token)
    for want, got in ((expected, loaded), (expected.study, loaded.study)):
        assert {f.attname: getattr(got, f.attname) for f in want._meta.concrete_fields} == {
            f.attname: getattr(want, f.attname) for f in want._meta.concrete_fields
        }
    assert loaded.questionnaire and loaded.study.settings  # JSON fields decoded, not strings
    assert participant_sql.participant_by_token("no-such-token") is None


def test_it_marks_participant_pages_and_answers_uncacheable_as_never_cache_does(
    client, listening_study
):
    reference = HttpResponse()
    add_never_cache_headers(reference)
    link = client.get(reverse("studies:entry", args=[listening_study.slug]))
    p = Participant.objects.get(study=listening_study)
    p = to_step(client, p, "practice")
    page = client.get(url(p))
    _, answer = answer_current(client, p)
    assert (link.status_code, page.status_code, answer.status_code) == (302, 200, 302)
    for response in (link, page, answer):
        assert set(response["Cache-Control"].split(", ")) == set(
            reference["Cache-Control"].split(", ")
        )
        assert parse_http_date(response["Expires"]) < time.time()


@pytest.mark.django_db(transaction=True)  # closes the database connection
@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared on PostgreSQL only")
def test_it_reuses_one_prepared_cursor_per_connection_and_logs_its_queries(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    participant_sql.participant_by_token(p.token)
    cursor = connection._csn_hot_cursor
    with CaptureQueriesContext(connection) as queries:
        assert participant_sql.participant_by_token(p.token).pk == p.pk
    assert connection._csn_hot_cursor is cursor
    assert len(queries) == 1  # still seen by Django (debug cursor), as every query is
    connection.close()  # as CONN_MAX_AGE does between requests
    assert participant_sql.participant_by_token(p.token).pk == p.pk
    assert connection._csn_hot_cursor is not cursor and not connection._csn_hot_cursor.closed


def test_it_stores_an_answer_only_for_the_current_slot_at_the_posted_step(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    log = client_log()
    ahead = post(client, p, "trials", index=slot.index + 1, choice="A", log=log)  # forged
    wrong_step = post(client, p, "practice", index=slot.index, choice="A", log=log)
    assert ahead.status_code == wrong_step.status_code == 302
    assert not Answer.objects.filter(participant=p, trial_index__gte=slot.index).exists()
    post(client, p, "trials", index=slot.index, choice="B", log=log)
    stored = Answer.objects.get(participant=p, trial_index=slot.index)
    assert (stored.trial_id, stored.chosen_position) == (slot.trial_id, "B")
    assert flow_trials.current_slot(p).index == slot.index + 1


def test_it_refuses_an_answer_from_a_browser_not_bound_to_the_participant(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = flow_trials.current_slot(p)
    other = Client()
    data = {"step": "trials", "index": slot.index, "choice": "A", "log": client_log()}
    assert other.post(url(p), data, HTTP_USER_AGENT=DESKTOP_UA).status_code == 403
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()


def _listen_ms(slot, share: float) -> int:
    t = slot.trial
    total = t.reference.duration_s + t.candidate_a.duration_s + t.candidate_b.duration_s
    return round(share * 1000 * total)  # the database rounds (PostgreSQL) or truncates (SQLite)


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
    response = post(client, p, "trials", index=slot.index, choice="A", log=client_log())
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
    post(client, p, "trials", index=slot.index, choice="A", log=client_log())
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
    post(client, p, "trials", index=slot.index, choice="A", log=client_log())
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()
    p.refresh_from_db()
    assert p.early_answers == 1


def test_a_stale_or_forged_answer_is_refused_without_being_counted_early(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot = open_trial(client, p)
    ahead = post(client, p, "trials", index=slot.index + 1, choice="A", log=client_log())
    post(client, p, "trials", index=slot.index, choice="A", log=client_log())
    replayed = post(client, p, "trials", index=slot.index, choice="B", log=client_log())
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
    post(client, p, "trials", index=slot.index, choice="A", log=client_log())
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
    post(client, p, "trials", index=slot.index, choice="A", log=client_log())
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
    post(client, p, "trials", index=slot.index, choice="A", log=client_log())
    assert not Answer.objects.filter(participant=p, trial=slot.trial).exists()
    p.refresh_from_db()
    assert p.early_answers == 1


def test_researchers_who_can_see_a_draft_study_can_preview_it_and_nobody_else_can(
    client, listening_study, experimenter, django_user_model
):
    listening_study.status = Study.Status.DRAFT
    listening_study.save()
    link = reverse("studies:entry", args=[listening_study.slug]) + "?pid=preview-1"
    assert Client().get(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 403  # a participant
    other = Client()
    other.force_login(django_user_model.objects.create_user("olga", "o@example.org", "pw-olga-42"))
    assert other.get(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 403  # not shared with her
    assert not listening_study.participants.exists()
    client.force_login(experimenter)
    assert client.get(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 302
    p = listening_study.participants.get(external_pid="preview-1")
    assert 'id="preview-banner"' in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert p.is_preview
    p = to_step(client, p, "practice")
    finish(client, p)  # the whole draft study, answers stored as a participant's
    assert Answer.objects.filter(participant=p).exists()
    stranger = Client()  # the used preview link names a known id: still not for strangers
    assert stranger.get(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 403
    assert stranger.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 403


def test_opening_a_draft_deletes_what_its_previews_stored_and_nothing_else(
    client, listening_study, experimenter
):
    listening_study.status = Study.Status.DRAFT
    listening_study.save()
    client.force_login(experimenter)
    client.get(reverse("studies:entry", args=[listening_study.slug]) + "?pid=preview-2")
    p = to_step(client, listening_study.participants.get(), "practice")
    answer_current(client, p, expected=True)
    assert Answer.objects.filter(participant=p).exists() and StudyFold.objects.exists()
    ReportSnapshot.objects.create(study=listening_study, bundle=b"preview answers")
    earlier = Participant.objects.create(study=listening_study, external_pid="from-when-open")
    response = client.post(reverse("studies:study_status", args=[listening_study.pk]),
                           {"action": "open"})  # fmt: skip
    assert response.status_code == 302
    listening_study.refresh_from_db()
    assert listening_study.status == Study.Status.OPEN
    assert list(listening_study.participants.all()) == [earlier]  # not a preview: kept
    assert not Answer.objects.filter(trial__study=listening_study).exists()
    assert not StudyFold.objects.filter(study=listening_study).exists()
    assert not ReportSnapshot.objects.filter(study=listening_study).exists()
    event = listening_study.events.latest("at")
    assert event.changes == {"status": ["draft", "open"], "preview participants": [1, 0]}
    page = client.get(reverse("studies:entry", args=[listening_study.slug]) + "?pid=real-1")
    real = listening_study.participants.get(external_pid="real-1")
    assert page.status_code == 302
    assert 'id="preview-banner"' not in client.get(url(real)).content.decode()


def leave(client, p):
    return client.post(url(p), {"step": p.step, "action": "withdraw"}, HTTP_USER_AGENT=DESKTOP_UA)


def test_a_participant_who_leaves_the_study_has_their_answers_deleted_and_trials_freed(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study, PROLIFIC_PID="pp-leave"), "practice")
    finish_practice(client, p)
    answer_current(client, p)
    snapshot = ReportSnapshot.objects.create(study=listening_study, bundle=b"every answer")
    assert 'id="leave"' in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert leave(client, p).status_code == 302
    p.refresh_from_db()
    assert p.step == "withdrawn" and p.finished_at is not None
    assert not Answer.objects.filter(participant=p).exists() and not p.slots.exists()
    assert p.questionnaire == {} and p.screening == {} and p.prolific_pid == "pp-leave"
    snapshot.refresh_from_db()
    assert bytes(snapshot.bundle) == b""  # an earlier report's answers went with them
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert 'id="withdrawn"' in page and "have been deleted" in page and "Prolific" in page
    assert 'id="leave"' not in page
    counts = design_fill.fill_counts(listening_study, timezone.now())
    assert all(n == 0 for n in counts.values())  # nothing of p is counted any more
    frame = export_answers.participants_dataframe(listening_study).set_index("participant")
    assert frame.loc[p.pk, "status"] == "withdrawn" and frame.loc[p.pk, "answers"] == 0


def test_a_study_may_keep_the_answers_of_participants_who_leave(client, listening_study):
    listening_study.settings = {**listening_study.settings, "withdrawn_answers": "keep"}
    listening_study.save()
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    slot, _ = answer_current(client, p)
    assert "are kept" in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    leave(client, p)
    p.refresh_from_db()
    assert p.step == "withdrawn"
    assert Answer.objects.filter(participant=p, trial=slot.trial).exists()
    assert not p.slots.filter(reserved_until__gt=timezone.now()).exists()  # given back
    assert "are kept" in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the other tab commits on its own connection
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
def test_an_answer_sent_from_another_tab_while_the_participant_leaves_is_not_kept(
    client, listening_study, monkeypatch
):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    answer_current(client, p)
    slot = open_trial(client, p)
    tab = {}

    def answer_from_another_tab():
        try:
            log = participant_forms.client_log(client_log())
            tab["stored"] = participant_writes.store_answer(p.token, p.step, slot.index, "A", log)
        finally:
            connection.close()

    forget = flow_withdraw._forget

    def answered_while_forgetting(q):
        forget(q)  # answers and slots deleted; leaving not committed yet
        tab["thread"] = threading.Thread(target=answer_from_another_tab)
        tab["thread"].start()
        until_blocked(tab["thread"], 30)  # the other tab waits for the leaving to end

    monkeypatch.setattr(flow_withdraw, "_forget", answered_while_forgetting)
    assert leave(client, p).status_code == 302
    tab["thread"].join(timeout=30)
    assert not tab["thread"].is_alive() and tab["stored"] is None
    p.refresh_from_db()
    assert p.step == "withdrawn" and not Answer.objects.filter(participant=p).exists()


def test_leaving_is_refused_before_consent_after_the_end_and_from_a_stale_page(
    client, listening_study
):
    p = enter(client, listening_study)
    assert 'id="leave"' not in client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    leave(client, p)  # at the browser check: nothing to leave yet
    p.refresh_from_db()
    assert p.step == "browser_check"
    p = to_step(client, p, "calibration")
    client.post(url(p), {"step": "consent", "action": "withdraw"}, HTTP_USER_AGENT=DESKTOP_UA)
    p.refresh_from_db()
    assert p.step == "calibration"  # a form from an earlier page does nothing
    p = finish(client, to_step(client, p, "practice"))
    assert p.step == "done"
    leave(client, p)
    p.refresh_from_db()
    assert p.step == "done" and Answer.objects.filter(participant=p).exists()


def test_it_takes_an_answer_whose_participant_was_deleted_meanwhile(
    client, listening_study, monkeypatch
):
    # A preview removed as its study leaves draft (or a participant deleted in the admin) between
    # storing its practice answer and reading it back for the feedback: no 500.
    p = to_step(client, enter(client, listening_study), "practice")
    store = participant_writes.store_answer

    def store_then_delete(*args, **kwargs):
        stored = store(*args, **kwargs)
        flow_withdraw.delete_participants([p])
        return stored

    monkeypatch.setattr(participant_writes, "store_answer", store_then_delete)
    slot = open_trial(client, p)
    response = post(client, p, "practice", index=slot.index, choice="A", log=client_log())
    assert response.status_code == 302
    assert not Participant.objects.filter(pk=p.pk).exists()
