"""Entering a study by its link, through Django's test client: recruitment ids, the browser's
binding to its participant, resuming (Prolific's session id), paused and closed studies, a
study full at the door or at the instructions, and researchers' previews of a draft.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evalsite.reports.models import ReportSnapshot
from evalsite.studies import design_fill, participant
from evalsite.studies.models import Answer, Participant, Study, StudyFold
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    finish,
    leave,
    post,
    screen,
    to_step,
    url,
)

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
    audio = reverse("studies:audio", args=[p.token, p.slots.get(index=0).pk, "r"])
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


def _end(client, p: Participant, how: str) -> Participant:
    """Take p to the final step `how`: done, screened_out or declined."""
    if how == "done":
        return finish(client, to_step(client, p, "practice"))
    if how == "screened_out":
        screen(client, to_step(client, p, "screening"), correct=False)
    else:
        post(client, to_step(client, p, "consent"), "consent", decision="decline")
    p.refresh_from_db()
    return p


@pytest.mark.parametrize("how", ["done", "screened_out", "declined"])
def test_the_link_without_an_id_starts_the_next_persons_entry_once_the_browsers_participant_ended(
    client, listening_study, how
):
    # A lab computer: participant 1 finished; the next person opens the same generic link.
    link = _link(listening_study)
    p1 = enter(client, listening_study)
    assert client.get(link)["Location"] == url(p1)  # unfinished: a closed tab comes back to it
    p1 = _end(client, p1, how)
    assert p1.step == how
    code = p1.completion_code or p1.screen_out_code  # none for one who declined
    own = client.get(url(p1))  # its own final page still reloads, code and all
    assert own.status_code == 200 and code in own.content.decode()
    welcome = client.get(link)
    assert welcome.status_code == 200 and b'value="browser_check"' in welcome.content
    assert not code or code not in welcome.content.decode()
    entered = client.post(link, BROWSER_CHECK, HTTP_USER_AGENT=DESKTOP_UA)
    p2 = Participant.objects.get(token=_token(entered))
    assert p2 != p1 and p2.step == "consent"
    assert client.get(url(p1)).status_code == 403  # the previous participant's page, code, gone
    assert client.get(url(p2)).status_code == 200


def test_a_new_participant_in_the_browser_drops_its_earlier_participant_of_that_study_only(
    client, listening_study, experimenter, listening_catalogue
):
    from tests.evalsite.studies.conftest import make_study

    elsewhere = enter(client, make_study(experimenter, listening_catalogue))
    p1 = to_step(client, enter(client, listening_study, pid="lab-001"), "practice")
    audio = reverse("studies:audio", args=[p1.token, p1.slots.get(index=0).pk, "r"])
    assert client.get(audio).status_code == 200
    p2 = enter(client, listening_study, pid="lab-002")  # the next person, own id, same browser
    assert p2 != p1
    assert client.get(url(p1)).status_code == 403 and client.get(audio).status_code == 404
    assert client.get(_link(listening_study))["Location"] == url(p2)
    assert client.get(url(elsewhere)).status_code == 200  # another study's participant stays
    # participant 1 back with their own id: resumed, and participant 2 dropped in turn
    assert enter(client, listening_study, pid="lab-001") == p1
    assert client.get(url(p1)).status_code == 200 and client.get(url(p2)).status_code == 403


def test_a_new_participant_drops_the_earlier_one_from_a_browser_bound_through_its_session(
    client, listening_study
):
    p1 = enter(client, listening_study)
    earlier = Client()  # bound before the binding cookie existed: tokens in the session only
    session = earlier.session
    session[participant.SESSION_KEY] = [p1.token]
    session.save()
    p2 = enter(earlier, listening_study, pid="next-person")
    assert p2 != p1 and earlier.get(url(p2)).status_code == 200
    assert earlier.get(url(p1)).status_code == 403
    assert p1.token not in earlier.session[participant.SESSION_KEY]


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


def test_it_tells_a_participant_when_the_study_is_full(client, experimenter, listening_catalogue):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    finish(client, to_step(client, enter(client, study, pid="first"), "practice"))
    # Told at the door, before consent and screening: the kept fill says full, counted again.
    # (Reservations taken after a newcomer's entry: test_entry_full.)
    late = Client()
    p = enter(late, study, pid="late")
    assert p.step == "full" and not p.slots.exists()
    assert "Every trial already has enough answers" in late.get(url(p)).content.decode()

    # Now the finished participant's answers are in the fold: full for good, without a count.
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
    assert client.get(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 200  # the welcome page
    assert client.post(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 302
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
    client.post(reverse("studies:entry", args=[listening_study.slug]) + "?pid=preview-2")
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
    page = client.post(reverse("studies:entry", args=[listening_study.slug]) + "?pid=real-1")
    real = listening_study.participants.get(external_pid="real-1")
    assert page.status_code == 302
    assert 'id="preview-banner"' not in client.get(url(real)).content.decode()


# -- the welcome page: the study link's GET stores nothing -----------------------------------
def _link(study: Study, **params) -> str:
    from urllib.parse import urlencode

    return reverse("studies:entry", args=[study.slug]) + ("?" + urlencode(params) if params else "")


def _token(response) -> str:
    return response["Location"].rstrip("/").split("/")[-1]


BROWSER_CHECK = {"step": "browser_check", "web_audio": "1", "sample_rate": "44100",
                 "touch": "0", "screen": "1920x1080", "ua_mobile": "0"}  # fmt: skip


def test_opening_the_study_link_shows_the_welcome_page_and_stores_nothing(client, listening_study):
    # A link previewer (a chat app, a mail scanner) fetches the link as often as it likes: no
    # participant is made, none counted as started or against the address's entry limit.
    for _ in range(3):
        response = client.get(_link(listening_study, PROLIFIC_PID="pp9", SESSION_ID="se9"))
        assert response.status_code == 200
        assert b'name="step" value="browser_check"' in response.content
        assert (
            response["Cache-Control"].startswith("no-store")
            or "no-store" in response["Cache-Control"]
        )
    assert not Participant.objects.filter(study=listening_study).exists()


def test_continuing_from_the_welcome_page_makes_the_participant_and_takes_its_browser_check(
    client, listening_study
):
    link = _link(listening_study, PROLIFIC_PID="pp1", STUDY_ID="st1", SESSION_ID="se1")
    client.get(link)
    response = client.post(link, BROWSER_CHECK, HTTP_USER_AGENT=DESKTOP_UA)
    p = Participant.objects.get(study=listening_study)
    assert response.status_code == 302 and response["Location"] == url(p)
    assert (p.prolific_pid, p.prolific_session_id) == ("pp1", "se1")
    assert p.step == "consent" and p.audio_sample_rate == 44100
    assert p.browser["screen"] == "1920x1080"
    assert client.get(url(p)).status_code == 200  # the browser is bound to it


def test_a_double_submitted_welcome_page_with_a_recruitment_id_makes_one_participant(
    client, listening_study
):
    link = _link(listening_study, pid="twice")
    first = client.post(link, BROWSER_CHECK, HTTP_USER_AGENT=DESKTOP_UA)
    second = client.post(link, BROWSER_CHECK, HTTP_USER_AGENT=DESKTOP_UA)
    assert first["Location"] == second["Location"]
    assert Participant.objects.filter(study=listening_study).count() == 1
    assert Participant.objects.get(study=listening_study).step == "consent"


def test_a_phone_is_refused_when_it_continues_from_the_welcome_page(
    client, experimenter, listening_catalogue
):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, refuse_phones=True)
    client.post(_link(study, pid="ph"), BROWSER_CHECK | {"ua_mobile": "1"})
    p = Participant.objects.get(study=study)
    assert p.step == "refused" and p.state == {"reason": "phone"}


def test_the_welcome_page_keeps_the_link_parameters_in_its_language_links(
    client, experimenter, listening_catalogue
):
    from tests.evalsite.studies.conftest import make_study

    study = make_study(experimenter, listening_catalogue, languages=["en", "ja"])
    response = client.get(_link(study, pid="lang1"))
    ja = _link(study, pid="lang1", lang="ja").replace("&", "&amp;")
    assert f'href="{ja}"'.encode() in response.content
    client.post(_link(study, pid="lang1", lang="ja"), BROWSER_CHECK)
    assert Participant.objects.get(study=study).language == "ja"


def test_the_welcome_page_is_refused_when_the_study_is_not_open(client, listening_study):
    Study.objects.filter(pk=listening_study.pk).update(status=Study.Status.PAUSED)
    assert client.get(_link(listening_study)).status_code == 403
    assert client.post(_link(listening_study), BROWSER_CHECK).status_code == 403
    assert not Participant.objects.filter(study=listening_study).exists()


def test_the_entry_limit_counts_participants_who_continued_not_page_views(
    client, listening_study, settings
):
    settings.CSN_ENTRY_LIMIT = 1
    for _ in range(3):
        assert client.get(_link(listening_study)).status_code == 200
    assert Client().post(_link(listening_study), BROWSER_CHECK).status_code == 302
    assert Client().get(_link(listening_study)).status_code == 200  # a look is never refused
    assert Client().post(_link(listening_study), BROWSER_CHECK).status_code == 429
