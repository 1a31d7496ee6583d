"""Trial pages and answers stay cheap: a trial page is two database queries (the participant with
its position, then its `shown_at` UPDATE), an answer one (the INSERT that also checks the
participant's step and current slot). The load benchmark measures the time; this guards against
an accidental query per slot or per request."""

from __future__ import annotations

import pytest

from evalsite.studies import flow_trials
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    client_log,
    listened,
    post,
    to_step,
    url,
)
from tests.evalsite.studies.test_participant_flow import finish_practice

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
        response = post(client, p, "trials", index=slot.index, choice="A", log=client_log())
    assert response.status_code == 302
