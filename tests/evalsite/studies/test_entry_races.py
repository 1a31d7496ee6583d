"""One recruitment id is one participant, even when its link is opened twice at the same moment
(a double click, two tabs or devices): the database refuses a second participant with the id,
and the entry that lost resumes the one that won, by the same rules as any return."""

from __future__ import annotations

import threading
from urllib.parse import urlencode

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from evalsite.studies import flow, participant
from evalsite.studies.models import Participant, Study
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import DESKTOP_UA

pytestmark = pytest.mark.django_db

PROLIFIC = {"PROLIFIC_PID": "pp-double", "STUDY_ID": "st", "SESSION_ID": "se-double"}
LINKS = {  # the two links opened at once, and whether both may continue as the one participant
    "prolific": ([PROLIFIC, PROLIFIC], True),
    "pid": ([{"pid": "pid-double"}, {"pid": "pid-double"}], True),
    "prolific, another session": ([PROLIFIC, {**PROLIFIC, "SESSION_ID": "se-other"}], False),
}


def _same_id(study) -> list[Participant]:
    by = Participant.objects.filter(study=study)
    return list(by.filter(prolific_pid="pp-double") | by.filter(external_pid="pid-double"))


def _token(response) -> str:
    return response["Location"].rstrip("/").split("/")[-1]


def _bound_tokens(response) -> list[str]:
    probe = Client()
    probe.cookies[participant.BINDING_COOKIE] = response.cookies[participant.BINDING_COOKIE].value
    return participant._bound(probe.get("/").wsgi_request)


@pytest.mark.parametrize("kind", LINKS)
def test_an_entry_whose_lookup_missed_a_participant_made_meanwhile_resumes_it(
    listening_study, monkeypatch, kind
):
    """The losing side of the race, on any database (SQLite too): its lookup ran before the
    other entry's participant existed, so it tries to make a second one."""
    (first, second), both = LINKS[kind]
    winner = enter(Client(), listening_study, **first)
    find, looked = flow.find_existing, []

    def missed_once(study, params):
        looked.append(params)
        return None if len(looked) == 1 else find(study, params)

    monkeypatch.setattr(flow, "find_existing", missed_once)
    browser = Client()
    link = reverse("studies:entry", args=[listening_study.slug])
    response = browser.post(f"{link}?{urlencode(second)}")
    assert _same_id(listening_study) == [winner]
    if both:
        assert response.status_code == 302 and _token(response) == winner.token
        page = browser.get(response["Location"], HTTP_USER_AGENT=DESKTOP_UA)
        assert page.status_code == 200
    else:  # another SESSION_ID: refused, and nothing said of the participant
        assert response.status_code == 403 and winner.token not in response.content.decode()


def test_the_database_refuses_a_second_participant_with_a_recruitment_id(listening_study):
    enter(Client(), listening_study, **PROLIFIC)
    enter(Client(), listening_study, pid="pid-double")
    for ids in ({"prolific_pid": "pp-double"}, {"external_pid": "pid-double"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Participant.objects.create(study=listening_study, **ids)
    # Without ids, or with a pid beside a PROLIFIC_PID (resumed by the PROLIFIC_PID): no key.
    for ids in ({}, {}, {"prolific_pid": "pp-a", "external_pid": "x"},
                {"prolific_pid": "pp-b", "external_pid": "x"}):  # fmt: skip
        Participant.objects.create(study=listening_study, **ids)


def _pg_race(test):
    """A race between two entries: each commits on its own connection, on PostgreSQL."""
    for mark in (
        pytest.mark.integration,
        pytest.mark.django_db(transaction=True),
        pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers"),
    ):
        test = mark(test)
    return test


def _race(study, links, browsers, monkeypatch) -> list:
    """Open the links at once from the browsers, both entries having looked for the id (and
    found nothing) before either made a participant; their responses."""
    both_looked = threading.Barrier(2, timeout=20)
    find, looked = flow.find_existing, threading.local()

    def find_then_wait(study, params):
        found = find(study, params)
        if not getattr(looked, "once", False):  # a second lookup (after losing) goes on alone
            looked.once = True
            both_looked.wait()
        return found

    monkeypatch.setattr(flow, "find_existing", find_then_wait)
    responses = [None, None]
    entry = reverse("studies:entry", args=[study.slug])

    def open_link(k):
        try:
            responses[k] = browsers[k].post(f"{entry}?{urlencode(links[k])}")
        finally:
            connection.close()

    threads = [threading.Thread(target=open_link, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return responses


@_pg_race
@pytest.mark.parametrize("kind", LINKS)
def test_two_entries_with_one_new_id_at_the_same_moment_make_one_participant(
    listening_study, monkeypatch, kind
):
    links, both = LINKS[kind]
    browsers = [Client(), Client()]
    responses = _race(listening_study, links, browsers, monkeypatch)
    (p,) = _same_id(listening_study)
    entered = [k for k in range(2) if responses[k].status_code == 302]
    assert len(entered) == (2 if both else 1)
    for k in entered:  # each on the working page of the one participant
        assert _token(responses[k]) == p.token
        page = browsers[k].get(responses[k]["Location"], HTTP_USER_AGENT=DESKTOP_UA)
        assert page.status_code == 200 and b'name="step"' in page.content
    for k in set(range(2)) - set(entered):
        assert responses[k].status_code == 403


@_pg_race
def test_one_browser_opening_its_link_twice_at_once_is_bound_to_the_participant_either_way(
    listening_study, experimenter, listening_catalogue, monkeypatch
):
    browser = Client()
    earlier = enter(browser, make_study(experimenter, listening_catalogue))  # another study
    cookie = browser.cookies[participant.BINDING_COOKIE].value
    tabs = [Client(), Client()]  # the same cookies, sent by both requests of the double click
    for tab in tabs:
        tab.cookies[participant.BINDING_COOKIE] = cookie
    responses = _race(listening_study, [PROLIFIC, PROLIFIC], tabs, monkeypatch)
    (p,) = _same_id(listening_study)
    for response in responses:  # whichever response's cookie the browser keeps
        assert _token(response) == p.token
        assert _bound_tokens(response) == [earlier.token, p.token]


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_the_migration_names_the_participants_sharing_an_id_instead_of_failing_opaquely(
    listening_study,
):
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    before = ("studies", "0007_withdrawn_step_and_previews")
    executor.migrate([before])
    # The model as of that migration: today's has columns added since, which its table lacks.
    old = executor.loader.project_state(before).apps.get_model("studies", "Participant")
    try:
        doubles = [old.objects.create(study_id=listening_study.pk, prolific_pid="pp-dup")
                   for _ in range(2)]  # fmt: skip
        with pytest.raises(RuntimeError) as refused:
            MigrationExecutor(connection).migrate(latest)
        message = str(refused.value)
        assert f"study {listening_study.pk}" in message and "PROLIFIC_PID 'pp-dup'" in message
        assert f"participants {doubles[0].pk}, {doubles[1].pk}" in message
    finally:  # the schema as the other tests expect it
        old.objects.filter(prolific_pid="pp-dup").delete()
        MigrationExecutor(connection).migrate(latest)


@pytest.mark.parametrize(
    ("action", "said"),
    [
        ("close", "This study is no longer accepting participants."),
        ("pause", "This study is not open at the moment."),
    ],
)
def test_a_newcomer_entering_while_a_close_or_pause_commits_is_refused(
    listening_study, experimenter, monkeypatch, action, said
):
    """The Close (or Pause) commits after the entry read the study open, before its insert."""
    owner = Client()
    owner.force_login(experimenter)
    counted = participant.address_key

    def status_change_meanwhile(request, study):
        posted = {"action": action, "confirm": "yes"}
        owner.post(reverse("studies:study_status", args=[study.pk]), posted)
        return counted(request, study)

    monkeypatch.setattr(participant, "address_key", status_change_meanwhile)
    link = reverse("studies:entry", args=[listening_study.slug])
    response = Client().post(f"{link}?pid=late")
    listening_study.refresh_from_db()
    assert listening_study.status != Study.Status.OPEN
    assert response.status_code == 403 and said in response.content.decode()
    assert not Participant.objects.filter(study=listening_study, external_pid="late").exists()


@pytest.mark.django_db(transaction=True)
def test_no_newcomer_starts_a_study_after_its_close_committed(listening_study, experimenter):
    """Entries and a Close sent at once: each newcomer is made before the Close commits (and may
    finish), or is refused; none is made in the closed study."""
    from django.utils import timezone

    owner = Client()
    owner.force_login(experimenter)
    link = reverse("studies:entry", args=[listening_study.slug])
    status = reverse("studies:study_status", args=[listening_study.pk])
    for round_ in range(10):
        Study.objects.filter(pk=listening_study.pk).update(status=Study.Status.OPEN)
        gate, closed_at = threading.Barrier(2), []

        def newcomer(gate: threading.Barrier, pid: str) -> None:
            gate.wait()
            Client().post(f"{link}?pid={pid}")
            connection.close()

        def close(gate: threading.Barrier, closed_at: list) -> None:
            gate.wait()
            owner.post(status, {"action": "close", "confirm": "yes"})
            closed_at.append(timezone.now())  # its response is back: committed
            connection.close()

        threads = [
            threading.Thread(target=newcomer, args=(gate, f"late{round_}")),
            threading.Thread(target=close, args=(gate, closed_at)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        made = Participant.objects.filter(study=listening_study, external_pid=f"late{round_}")
        assert not made.filter(started_at__gt=closed_at[0]).exists(), f"round {round_}"


def _draft_preview(listening_study, experimenter) -> tuple[Client, Client]:
    """The study back in draft, and two of its owner's tabs: one previews, one opens it."""
    Study.objects.filter(pk=listening_study.pk).update(status=Study.Status.DRAFT)
    listening_study.refresh_from_db()
    previewing, opening = Client(), Client()
    previewing.force_login(experimenter)
    opening.force_login(experimenter)
    return previewing, opening


def test_a_preview_made_as_the_study_opens_is_removed_with_the_other_previews(
    listening_study, experimenter, monkeypatch
):
    """The Open commits after the preview's participant was inserted, before its entry ended: the
    participant was made a preview only afterwards, so the Open's removal of previews missed it
    and it stayed in the opened study, exported as a real participant."""
    previewing, opening = _draft_preview(listening_study, experimenter)
    recorded = participant.record_entry

    def open_meanwhile(p, key):
        opening.post(reverse("studies:study_status", args=[listening_study.pk]), {"action": "open"})
        return recorded(p, key)

    monkeypatch.setattr(participant, "record_entry", open_meanwhile)
    previewing.post(reverse("studies:entry", args=[listening_study.slug]))
    listening_study.refresh_from_db()
    assert listening_study.status == Study.Status.OPEN
    assert not Participant.objects.filter(study=listening_study).exists()


def test_a_preview_whose_study_opened_meanwhile_is_sent_to_the_open_studys_link(
    listening_study, experimenter, monkeypatch
):
    """A status change met by the entry's insert is not always a refusal: the study opened."""
    previewing, opening = _draft_preview(listening_study, experimenter)
    recruitment_ids = flow._recruitment_ids  # the first thing flow.create does

    def open_first(params):
        opening.post(reverse("studies:study_status", args=[listening_study.pk]), {"action": "open"})
        return recruitment_ids(params)

    monkeypatch.setattr(flow, "_recruitment_ids", open_first)
    link = reverse("studies:entry", args=[listening_study.slug])
    response = previewing.post(f"{link}?pid=x1")
    listening_study.refresh_from_db()
    assert listening_study.status == Study.Status.OPEN
    assert response.status_code == 302 and response["Location"] == f"{link}?pid=x1"
    assert not Participant.objects.filter(study=listening_study).exists()
