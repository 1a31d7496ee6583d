"""A participant leaving the study from its page: its answers deleted (or kept, where the study
says so) and its trials freed, an answer from another tab meanwhile not kept, a leave from a page
left open at an earlier step honoured, leaving refused where there is nothing to leave, and an
answer whose participant was deleted meanwhile.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evalsite.reports.models import ReportSnapshot
from evalsite.studies import (
    design_fill,
    export_answers,
    flow_withdraw,
    participant,
    participant_forms,
    participant_writes,
)
from evalsite.studies.models import Answer, Participant
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    client_log,
    finish,
    finish_practice,
    leave,
    open_trial,
    post,
    to_step,
    url,
)
from tests.lock_waits import until_blocked

pytestmark = pytest.mark.django_db


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
            tab["stored"] = participant_writes.store_answer(
                p.token, p.step, slot.index, slot.pk, "A", log
            )
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


def test_leaving_is_refused_before_consent_after_the_end_and_from_a_page_without_leave(
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
    assert p.step == "calibration"  # a page without a Leave button cannot leave
    p = finish(client, to_step(client, p, "practice"))
    assert p.step == "done"
    leave(client, p)
    p.refresh_from_db()
    assert p.step == "done" and Answer.objects.filter(participant=p).exists()


def test_leaving_from_a_page_left_open_at_an_earlier_step_is_honoured(client, listening_study):
    # Tab 2 still shows the practice trial; tab 1 went on and answered a main trial. The Leave
    # confirmed in tab 2 is the participant's choice all the same: they leave, answers deleted.
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    answer_current(client, p)
    assert p.step == "trials" and Answer.objects.filter(participant=p).exists()
    response = client.post(
        url(p), {"step": "practice", "action": "withdraw"}, HTTP_USER_AGENT=DESKTOP_UA
    )
    assert response.status_code == 302 and response["Location"] == url(p)
    p.refresh_from_db()
    assert p.step == "withdrawn"
    assert not Answer.objects.filter(participant=p).exists() and not p.slots.exists()
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert 'id="withdrawn"' in page


def test_leaving_from_an_older_page_is_refused_for_another_session(client, listening_study):
    p = to_step(client, enter(client, listening_study), "instructions")
    other = Client()
    response = other.post(
        url(p), {"step": "questionnaire", "action": "withdraw"}, HTTP_USER_AGENT=DESKTOP_UA
    )
    assert response.status_code == 403
    p.refresh_from_db()
    assert p.step == "instructions"


def test_the_next_participant_at_the_same_browser_cannot_leave_for_the_previous_one(
    client, listening_study
):
    p1 = to_step(client, enter(client, listening_study, pid="lab-001"), "practice")
    finish_practice(client, p1)
    answer_current(client, p1)
    answered = Answer.objects.filter(participant=p1).count()
    enter(client, listening_study, pid="lab-002")  # the next person, own id, same browser
    # participant 1's page from the browser's history: neither shown nor left
    assert client.get(url(p1), HTTP_USER_AGENT=DESKTOP_UA).status_code == 403
    assert leave(client, p1).status_code == 403
    p1.refresh_from_db()
    assert p1.step == "trials" and Answer.objects.filter(participant=p1).count() == answered


def test_a_participant_who_leaves_is_unbound_from_the_browser_at_once(
    client, listening_study, monkeypatch
):
    p = to_step(client, enter(client, listening_study), "practice")
    response = leave(client, p)
    assert response.status_code == 302 and response["Location"] == url(p)
    bound_now = Client()  # the browser with only the binding cookie that response left
    bound_now.cookies[participant.BINDING_COOKIE] = response.cookies[
        participant.BINDING_COOKIE
    ].value
    assert bound_now.get(url(p)).status_code == 403
    # the page saying they left is shown for a while (reloads too), and nothing more
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    assert 'id="withdrawn"' in page
    assert client.get(url(p), {"lang": "ja"})["Location"] == url(p)  # its language link
    assert "実験への参加をやめました" in client.get(url(p)).content.decode()
    assert client.post(url(p), {"step": "withdrawn"}).status_code == 403
    monkeypatch.setattr(participant, "LEFT_PAGE_SECONDS", -1)  # that while is over
    assert client.get(url(p)).status_code == 403


def test_the_page_saying_a_participant_left_goes_when_the_next_participant_enters(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    leave(client, p)
    assert client.get(url(p)).status_code == 200
    link = reverse("studies:entry", args=[listening_study.slug])
    assert client.get(link).status_code == 200  # the welcome page: nobody is resumed
    enter(client, listening_study)
    assert client.get(url(p)).status_code == 403


def test_a_leave_is_taken_from_the_step_the_participant_moved_to_meanwhile(client, listening_study):
    # The page's request read the participant at the instructions; another tab's Start moved it
    # to the practice before the leave's UPDATE: it leaves from there.
    p = to_step(client, enter(client, listening_study), "instructions")
    read_before = Participant.objects.get(pk=p.pk)
    post(client, p, "instructions")
    assert Participant.objects.get(pk=p.pk).step == "practice"
    assert flow_withdraw.withdraw(read_before)
    p.refresh_from_db()
    assert p.step == "withdrawn" and not p.slots.exists()


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
    response = post(
        client, p, "practice", index=slot.index, slot=slot.pk, choice="A", log=client_log()
    )
    assert response.status_code == 302
    assert not Participant.objects.filter(pk=p.pk).exists()
