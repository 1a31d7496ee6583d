"""The model-work page (/jobs/study/<pk>/) as a researcher on a fresh machine meets it: reached
from the study's tabs, and saying before any click that no checkpoint exists and how to get one."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from evalsite.jobs.models import Job
from evalsite.retrieval.embedder import checkpoint_id
from evalsite.retrieval.models import Embedding, ModelVersion
from evalsite.stimuli.tasks import queue_ingest
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_checkpoint(settings, tmp_path):
    settings.CSN_HOME = tmp_path
    settings.CSN_CHECKPOINT = str(tmp_path / "runs" / "demo" / "final.pt")


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


def test_it_says_up_front_that_there_is_no_checkpoint_and_how_to_get_one(
    client, alice, study, no_checkpoint
):
    client.force_login(alice)
    study.trials.all().delete()  # the design is offered
    page = _page(client, reverse("jobs:study", args=[study.pk]))
    assert 'id="no-checkpoint"' in page
    assert "CSN_CHECKPOINT=CSN_HOME/runs/demo/final.pt: no such checkpoint file" in page
    assert "make demo" in page and "csn train" in page and "docs/model.md" in page
    assert page.count('type="submit" disabled') == 3  # embed, model choices, design


def test_it_refuses_model_work_without_a_checkpoint_and_creates_no_job(
    client, alice, study, no_checkpoint
):
    client.force_login(alice)
    study.trials.all().delete()  # the design is offered
    for action in ("ingest", "model-choices", "design"):
        data = {"strategy": "nearest_random", "per_instrument": 2} if action == "design" else {}
        url = reverse("jobs:queue", args=[study.pk, action])
        page = html.unescape(client.post(url, data, follow=True).content.decode())
        assert "CSN_CHECKPOINT=CSN_HOME/runs/demo/final.pt: no such checkpoint file" in page
        assert "failed" not in page
    assert not Job.objects.exists()


def test_it_names_the_embedding_job_as_its_button_does(client, alice, study, no_checkpoint):
    # The checkpoint vanishes between the page and the queueing: the job fails, named as the
    # button, with the path the site looked at.
    job = queue_ingest(study.catalogue, study=study)
    assert job.get_kind_display() == "embed clips"
    assert job.message.startswith("CSN_CHECKPOINT=CSN_HOME/runs/demo/final.pt: no such")
    client.force_login(alice)
    page = _page(client, reverse("jobs:study", args=[study.pk]))
    assert "Embed clips (the whole catalogue)" in page and "<td>embed clips</td>" in page


def test_it_says_by_the_design_forms_default_what_recurring_references_do(client, alice, study):
    client.force_login(alice)
    study.trials.all().delete()  # the design is offered
    page = _page(client, reverse("jobs:study", args=[study.pk]))
    assert 'name="per_instrument" value="10" min="1" aria-describedby="per-instrument-help"' in page
    help_text = page.split('id="per-instrument-help">', 1)[1].split("</p>", 1)[0]
    assert "a participant gets one main trial per instrument and reference piece" in help_text
    assert "no two on one reference piece that share a candidate" in help_text
    assert "each participant gets fewer main trials than the study has" in help_text


def test_it_says_which_worker_a_queued_job_waits_for(client, alice, study):
    # An ingest job waits for a cpu worker to fan it out (stimuli.ingest_catalogue), then for a
    # gpu worker to embed (params["queued"]: clips fanned out); model work is a gpu task.
    client.force_login(alice)
    clips = list(study.catalogue.clips.values_list("pk", flat=True)[:1])  # ready, not embedded
    kinds = {
        "cpu": Job.objects.create(kind=Job.Kind.INGEST, study=study, params={"clips": clips}),
        "gpu": Job.objects.create(
            kind=Job.Kind.INGEST, study=study, params={"clips": clips, "queued": 1}
        ),
        "gpu too": Job.objects.create(kind=Job.Kind.MODEL_CHOICE, study=study),
        "none": Job.objects.create(kind=Job.Kind.DESIGN, study=study, status=Job.Status.RUNNING),
    }
    page = _page(client, reverse("jobs:study", args=[study.pk]))
    for name, job in kinds.items():
        row = page.split(f'data-job="{job.pk}">', 1)[1].split("</tr>", 1)[0]
        worker = name.split()[0]
        expected = f"queued (waiting for a {worker} worker)" if worker != "none" else "running"
        assert f"<td>{expected}</td>" in row, (name, row)
    rows = client.get(reverse("jobs:study_json", args=[study.pk])).json()["jobs"]
    assert {r["id"]: r["waiting_for"] for r in rows} == {
        kinds["cpu"].pk: "cpu", kinds["gpu"].pk: "gpu", kinds["gpu too"].pk: "gpu",
        kinds["none"].pk: "",
    }  # fmt: skip


def test_it_sends_the_clips_without_an_embedding_with_the_table_it_polls(
    client, alice, study, settings, tmp_path
):
    # The page's poll replaces the table and this warning from one fragment, so the warning (the
    # Embed clips button's description) is never older than the table beside it.
    checkpoint = tmp_path / "final.pt"
    checkpoint.write_bytes(b"a checkpoint's bytes")  # counted by its hash; never loaded here
    settings.CSN_CHECKPOINT = str(checkpoint)
    client.force_login(alice)
    clips = list(study.catalogue.clips.filter(status="ready").values_list("pk", flat=True))
    url = reverse("jobs:study_fragment", args=[study.pk])
    fragment = _page(client, url)
    assert 'id="study-jobs"' in fragment
    assert f"{len(clips)} of {len(clips)} ready clips in the study's catalogue" in fragment
    version = ModelVersion.objects.create(
        checkpoint_id=checkpoint_id(), path="final.pt", dim=4, sample_rate=16000
    )
    for pk in clips:
        Embedding.objects.create(clip_id=pk, version=version, vector=bytes(16))
    fragment = _page(client, url)
    assert 'id="study-jobs"' in fragment and 'id="unembedded"' not in fragment
