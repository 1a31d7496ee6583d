"""Trial pages and answers stay cheap: a trial page is two database queries (the participant with
its position, then its `shown_at` UPDATE), an answer one (the INSERT that also checks the
participant's step and current slot). The load benchmark measures the time; this guards against
an accidental query per slot or per request. The hand-written queries read what the ORM
would, on one prepared cursor per connection."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evalsite.studies import flow_trials, participant_sql
from evalsite.studies.models import Participant
from evalsite.studies.participant_sql import Position
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    acknowledge,
    answer_current,
    client_log,
    finish_practice,
    listened,
    post,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db


def test_it_serves_a_trial_page_and_stores_an_answer_in_few_queries(
    client, listening_study, django_assert_max_num_queries
):
    p = to_step(client, enter(client, listening_study), "practice")
    finish_practice(client, p)
    with django_assert_max_num_queries(2):
        assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 200
    slot = flow_trials.current_slot(p)
    listened(slot)
    with django_assert_max_num_queries(1):
        response = post(
            client, p, "trials", index=slot.index, slot=slot.pk, choice="A", log=client_log()
        )
    assert response.status_code == 302


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
            acknowledge(client, p)
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
