"""The progress page's figures fragment (?fragment=figures), which the page's script fetches to
update the figures in place instead of reloading the whole page. Counts themselves:
test_experimenter.py; the updating in a browser: tests/browser/test_progress_browser.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

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
