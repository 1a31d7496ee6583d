"""A recomputation that could not be queued, or that failed, is never silent: the Recompute
button says why, and the report page says the report may be out of date until a recomputation
runs. Publishing is real (not eager) to a Redis URL nothing listens on, after the commit."""

from __future__ import annotations

import html

import pytest
from django.db import OperationalError
from django.urls import reverse

from evalsite.reports import services
from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.tasks import recompute_report, schedule_report


def _page(client, study) -> str:
    return html.unescape(client.get(reverse("reports:page", args=[study.pk])).content.decode())


@pytest.mark.django_db(transaction=True)
def test_it_says_the_recomputation_could_not_be_queued_when_the_broker_is_down(
    client, sim_study, alice, broker_down
):
    client.force_login(alice)
    r = client.post(reverse("reports:recompute", args=[sim_study.pk]), follow=True)
    page = html.unescape(r.content.decode())
    assert "Recomputation queued" not in page
    assert "Could not queue the recomputation: " in page and "127.0.0.1:1" in page
    state = ReportState.objects.get(study=sim_study)
    assert not state.pending and state.failure == "queuing failed"
    assert "The report may be out of date: queuing failed at " in page
    assert "press Recompute" in page


@pytest.mark.django_db(transaction=True)
def test_it_shows_that_the_report_is_stale_when_an_answer_could_not_queue_it(
    client, sim_study, alice, broker_down
):
    assert schedule_report(sim_study.pk) is True  # as after the last answer (flow_trials)
    state = ReportState.objects.get(study=sim_study)
    assert state.failure == "queuing failed" and "127.0.0.1:1" in state.failure_reason
    client.force_login(alice)
    assert "The report may be out of date: queuing failed at " in _page(client, sim_study)

    recompute_report(sim_study.pk)  # a recomputation runs: the warning goes
    state.refresh_from_db()
    assert (state.failure, state.failure_reason, state.failed_at) == ("", "", None)
    assert "may be out of date" not in _page(client, sim_study)


@pytest.mark.django_db
def test_it_shows_a_failed_computation_and_retries_it_once_when_transient(
    client, sim_study, alice, monkeypatch
):
    calls = []

    def broken(study_id):
        calls.append(study_id)
        raise OperationalError("could not serialize access")

    monkeypatch.setattr(services, "compute_snapshot", broken)
    schedule_state = ReportState.objects.create(study=sim_study, pending=True)
    result = recompute_report.apply(args=(sim_study.pk,))  # as a worker runs it (eagerly)
    assert result.failed() and len(calls) == 2  # the first try and one retry
    schedule_state.refresh_from_db()
    assert schedule_state.failure == "the computation failed"
    assert "OperationalError: could not serialize access" in schedule_state.failure_reason
    client.force_login(alice)
    page = _page(client, sim_study)
    assert "The report may be out of date: the computation failed at " in page
    assert not ReportSnapshot.objects.exists()


@pytest.mark.django_db(transaction=True)  # published at the commit, as in production
def test_it_keeps_server_paths_out_of_a_recomputation_the_broker_refused(
    client, sim_study, alice, monkeypatch, settings
):
    queue = f"{settings.CSN_HOME}/broker/queue"  # the filesystem broker's folder, now a file

    def refused(*args, **kwargs):
        raise NotADirectoryError(20, "Not a directory", queue)

    monkeypatch.setattr(recompute_report, "apply_async", refused)
    client.force_login(alice)
    r = client.post(reverse("reports:recompute", args=[sim_study.pk]), follow=True)
    page = html.unescape(r.content.decode())
    state = ReportState.objects.get(study=sim_study)
    assert state.failure_reason == "[Errno 20] Not a directory: 'broker/queue'"
    assert str(settings.CSN_HOME) not in page
    assert "Could not queue the recomputation: [Errno 20] Not a directory: 'broker/queue'" in page
