"""Who sees which study: owner, shared researcher, other researcher, anonymous."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from django.urls import reverse

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies.models import Trial
from evalsite.studies.permissions import get_visible_study, is_owner, visible_studies
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

STUDY_PAGES = [
    "studies:study_detail", "studies:study_edit", "studies:clips", "studies:dataset_import",
    "studies:trials", "studies:progress", "studies:export",
]  # fmt: skip


def test_it_lists_owned_and_shared_studies_only(study, alice, bob, carol):
    assert list(visible_studies(alice)) == [study]
    assert list(visible_studies(carol)) == [study]
    assert list(visible_studies(bob)) == []


def test_it_raises_404_for_a_study_of_someone_else(study, bob):
    with pytest.raises(Http404):
        get_visible_study(bob, study.pk)


def test_it_lets_only_the_owner_share(study, alice, carol):
    assert is_owner(alice, study)
    assert not is_owner(carol, study)


@pytest.mark.parametrize("name", STUDY_PAGES)
def test_it_requires_login_on_every_study_page(client, study, name):
    url = reverse(name, args=[study.pk])
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_requires_login_for_dashboard_create_and_downloads(client, study):
    for url in (
        reverse("studies:dashboard"),
        reverse("studies:study_create"),
        reverse("studies:export_file", args=[study.pk, "answers.csv"]),
        reverse("studies:export_file", args=[study.pk, "bundle.zip"]),
    ):
        assert client.get(url).status_code == 302, url


@pytest.mark.parametrize("name", [*STUDY_PAGES, "studies:export_file"])
def test_it_answers_404_to_another_researcher(client, study, bob, name):
    client.force_login(bob)
    args = [study.pk, "answers.csv"] if name == "studies:export_file" else [study.pk]
    assert client.get(reverse(name, args=args)).status_code == 404


def test_it_refuses_status_changes_by_another_researcher(client, study, bob):
    client.force_login(bob)
    response = client.post(reverse("studies:study_status", args=[study.pk]), {"action": "open"})
    assert response.status_code == 404
    study.refresh_from_db()
    assert study.status == "draft"


def test_it_shows_a_shared_study_to_the_collaborator(client, study, carol):
    client.force_login(carol)
    response = client.get(reverse("studies:study_detail", args=[study.pk]))
    assert response.status_code == 200
    assert study.slug in response.content.decode()


def test_it_hides_another_researchers_study_from_the_dashboard(client, study, bob):
    client.force_login(bob)
    response = client.get(reverse("studies:dashboard"))
    assert response.status_code == 200
    assert study.name not in response.content.decode()


STUDY_POSTS = [
    "studies:study_status", "studies:trial_add", "studies:trials_csv", "studies:trials_random",
    "studies:trials_repeats", "studies:clips_remove", "studies:trials_delete",
]  # fmt: skip


@pytest.mark.parametrize("name", STUDY_POSTS)
def test_it_refuses_changes_from_anonymous_and_other_researchers(client, study, bob, name):
    url, trials, status = reverse(name, args=[study.pk]), study.trials.count(), study.status
    data = {"action": "open", "per_instrument": 1, "catch_per_kind": 0, "seed": 0, "confirm": "yes"}
    response = client.post(url, data)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(bob)
    assert client.post(url, data).status_code == 404
    study.refresh_from_db()
    assert study.trials.count() == trials and study.status == status


@pytest.fixture
def private_clip(alice):
    """A ready clip in another catalogue of alice's, one that no study uses."""
    private = Catalogue.objects.create(owner=alice, name="alice unreleased")
    return Clip.objects.create(
        catalogue=private, name="unreleased-song.wav", piece="Unreleased", status="ready",
        sha256="f" * 64, duration_s=5.0, sample_rate=22050, channels=1,
    )  # fmt: skip


def _trial_post(study, reference):
    a, b = study.catalogue.clips.order_by("id")[:2]
    fields = {"reference": reference.pk, "candidate_a": a.pk, "candidate_b": b.pk}
    return {**fields, "instrument": "drums", "catch_kind": "", "expected": "", "model_choice": ""}


def test_it_offers_a_collaborator_only_the_study_catalogues_clips(
    client, study, carol, private_clip
):
    client.force_login(carol)
    page = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert "clip00.wav" in page
    assert private_clip.name not in page
    response = client.post(
        reverse("studies:trial_add", args=[study.pk]), _trial_post(study, private_clip)
    )
    assert response.status_code == 400
    assert not Trial.objects.filter(reference=private_clip).exists()
    assert client.get(reverse("stimuli:clip_audio", args=[private_clip.token])).status_code == 404


def test_it_refuses_another_catalogues_clip_in_a_collaborators_trials_csv(
    client, study, carol, private_clip
):
    a, b = study.catalogue.clips.order_by("id")[:2]
    text = f"reference,candidate_a,candidate_b,instrument\n{private_clip.pk},{a.pk},{b.pk},drums\n"
    upload = SimpleUploadedFile("t.csv", text.encode(), content_type="text/csv")
    client.force_login(carol)
    response = client.post(reverse("studies:trials_csv", args=[study.pk]), {"csv_file": upload})
    assert response.status_code == 400
    assert f"field &#x27;reference&#x27; = &#x27;{private_clip.pk}&#x27;: expected the token" in (
        response.content.decode()
    )
    assert not Trial.objects.filter(reference=private_clip).exists()


def test_it_lets_the_owner_use_clips_of_any_of_her_catalogues(client, study, alice, private_clip):
    client.force_login(alice)
    response = client.post(
        reverse("studies:trial_add", args=[study.pk]), _trial_post(study, private_clip)
    )
    assert response.status_code == 302
    assert Trial.objects.filter(study=study, reference=private_clip).exists()
