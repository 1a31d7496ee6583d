"""Researchers can listen to their own clips; other researchers and anonymous users cannot."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue
from evalsite.studies.models import Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def clip(owner):
    catalogue = Catalogue.objects.create(owner=owner, name="mine")
    tone = 0.2 * np.sin(np.linspace(0, 2000, 22050)).astype(np.float32)
    return clip_from_array(tone, 22050, catalogue, name="tone")


def test_it_serves_a_clip_to_its_owner_with_ranges(client, owner, clip):
    client.force_login(owner)
    url = reverse("stimuli:clip_audio", args=[clip.token])
    response = client.get(url, HTTP_RANGE="bytes=0-43")
    assert response.status_code == 206
    assert b"".join(response.streaming_content)[:4] == b"RIFF"


def test_it_serves_a_clip_to_a_researcher_a_study_is_shared_with(
    client, owner, clip, django_user_model
):
    carol = django_user_model.objects.create_user("carol", "c@example.org", "x")
    study = Study.objects.create(owner=owner, name="s", catalogue=clip.catalogue)
    url = reverse("stimuli:clip_audio", args=[clip.token])
    client.force_login(carol)
    assert client.get(url).status_code == 404
    study.shared_with.add(carol)
    assert client.get(url).status_code == 200


def test_it_refuses_anonymous_users(client, clip):
    response = client.get(reverse("stimuli:clip_audio", args=[clip.token]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_answers_404_when_the_clip_file_is_missing(client, owner, clip):
    client.force_login(owner)
    clip.file.storage.delete(clip.file.name)
    assert client.get(reverse("stimuli:clip_audio", args=[clip.token])).status_code == 404
