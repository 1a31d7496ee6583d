"""The model-work page (/jobs/study/<pk>/) as a researcher on a fresh machine meets it: reached
from the study's tabs, and saying before any click that no checkpoint exists and how to get one."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def _page(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_it_links_the_model_work_page_from_the_study_tabs_and_back(client, alice, study):
    client.force_login(alice)
    jobs_url = reverse("jobs:study", args=[study.pk])
    overview = _page(client, reverse("studies:study_detail", args=[study.pk]))
    assert f'<a href="{jobs_url}" >Model work</a>' in overview
    page = _page(client, jobs_url)
    assert f'<a href="{jobs_url}" aria-current="page">Model work</a>' in page
    assert f'href="{reverse("studies:study_detail", args=[study.pk])}"' in page
