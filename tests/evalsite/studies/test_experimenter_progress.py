"""The progress page's figures fragment (?fragment=figures), which the page's script fetches to
update the figures in place instead of reloading the whole page. Counts themselves:
test_experimenter.py; the updating in a browser: tests/browser/test_progress_browser.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evalsite.studies import progress
from evalsite.studies.models import Answer
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

FIGURES = "studies/experimenter/_progress_figures.html"


def _figures_url(study) -> str:
    return reverse("studies:progress", args=[study.pk]) + "?fragment=figures"


def test_it_serves_the_figures_alone_without_the_page_around_them(client, alice, answered_study):
    client.force_login(alice)
    response = client.get(_figures_url(answered_study))
    assert response.status_code == 200
    html = response.content.decode()
    assert [t.name for t in response.templates] == [FIGURES]  # no base or layout template
    assert "<html" not in html and "<body" not in html and "ex-tabs" not in html
    assert 'id="participants"' in html and 'id="per-trial"' in html
    assert "Figures as of" in html and "data-figures-as-of" in html
    assert "no-store" in response["Cache-Control"]  # always fresh figures


def test_it_serves_the_figures_to_whoever_may_see_the_page(client, carol, answered_study):
    client.force_login(carol)  # shared with her, as the page is
    assert client.get(_figures_url(answered_study)).status_code == 200


def test_it_refuses_the_figures_as_it_refuses_the_page(client, bob, answered_study):
    url = _figures_url(answered_study)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(bob)  # another researcher: the same 404 as for the page
    assert client.get(url).status_code == 404


def test_it_no_longer_reloads_the_whole_page_every_30_s(client, alice, answered_study):
    client.force_login(alice)
    response = client.get(reverse("studies:progress", args=[answered_study.pk]))
    html = response.content.decode()
    assert "http-equiv" not in html
    assert FIGURES in [t.name for t in response.templates]  # one rendering for both
    assert 'id="progress-refresh"' in html and "Figures as of" in html  # without JavaScript
    assert 'data-refresh-ms="30000"' in html and "studies/progress.js" in html
    assert 'id="progress-status" role="status"' in html
    # The checkbox is for the script only: hidden when there is none to act on it.
    assert '<label id="auto-update-control" hidden>' in html


def test_it_takes_the_update_interval_from_the_settings(client, alice, study, settings):
    settings.CSN_PROGRESS_REFRESH_S = 0.3
    client.force_login(alice)
    html = client.get(reverse("studies:progress", args=[study.pk])).content.decode()
    assert 'data-refresh-ms="300"' in html


def test_it_counts_a_drafts_previews_apart_from_the_studys_figures(client, alice, answered_study):
    """A researcher's previews of a draft (deleted when it leaves draft) are not participants: the
    figures leave them and their answers out and name them apart."""
    p1 = answered_study.participants.get(external_pid="p1")
    before = progress.summary(answered_study)
    answered_study.participants.exclude(pk=p1.pk).update(is_preview=True)
    after = progress.summary(answered_study)
    assert after["participants"] == {
        "started": 1, "finished": 1, "screened_out": 0, "in_progress": 0, "inactive": 0,
        "other": 0, "early_answering": 0,
    }  # fmt: skip
    assert after["n_previews"] == 3
    assert (
        after["n_answers"]
        == Answer.objects.filter(participant=p1, trial__is_practice=False).count()
    )
    assert after["n_answers"] < before["n_answers"]
    assert (
        sum(t.n_answers for t in after["per_trial"])
        == Answer.objects.filter(
            participant=p1, trial__is_practice=False, trial__is_catch=False
        ).count()
    )
    assert sum(r["main"] + r["catch"] for r in after["per_instrument"]) == after["n_answers"]
    assert sum(r["n"] for r in after["catch"]) < sum(r["n"] for r in before["catch"])
    client.force_login(alice)
    html = client.get(_figures_url(answered_study)).content.decode()
    assert "<b>1</b>started" in html and "<b>0</b>screened out" in html
    assert '<p class="muted" id="previews">3 previews (not counted)' in html
