"""The model jobs a researcher queues on a study (/jobs/study/<pk>/: model choices, design from
the model) follow the rules of the study's other edit pages: refused on a closed study, model
choices of an answered study recomputed only when the researcher confirms, every change in the
study's history. Celery runs eagerly here (a wiring check, as in tests/evalsite/retrieval)."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from evalsite.celery import app
from evalsite.jobs.models import Job
from evalsite.retrieval import embedder, service
from evalsite.retrieval.embedder import checkpoint_id
from evalsite.studies.models import Answer, Participant, Study, StudyEvent, Trial
from tests.evalsite.retrieval.helpers import write_checkpoint
from tests.evalsite.studies.conftest import make_catalogue
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db
DESIGN = {"strategy": "nearest_random", "per_instrument": 2, "catch_per_kind": 0, "seed": 5}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two tiny untrained checkpoints: the deployed one and a later one."""
    folder = tmp_path_factory.mktemp("ckpt")
    return write_checkpoint(folder / "tiny.pt", seed=0), write_checkpoint(folder / "new.pt", seed=1)


@pytest.fixture(autouse=True)
def _model(settings, checkpoints):
    settings.CSN_CHECKPOINT = str(checkpoints[0])
    settings.CSN_AUTO_EMBED = False  # the tests queue the work
    embedder.reset()
    service.forget_indexes()
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = app.conf.task_eager_propagates = False
    service.forget_indexes()


def _queue(client, study, action, data=None, *, run=True, capture=None):
    """POST the jobs page's button; the page it redirects to, as text."""
    url = reverse("jobs:queue", args=[study.pk, action])
    with capture(execute=run):
        response = client.post(url, data or {}, follow=True)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def _choices(study):
    return list(study.trials.order_by("id").values_list("model_choice", "model_margin"))


def _events(study, kind):
    return list(StudyEvent.objects.filter(study=study, kind=kind).values_list("changes", flat=True))


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_it_refuses_model_choices_and_a_design_on_a_closed_study_queueing_nothing(
    client, answered_study, who, request, django_capture_on_commit_callbacks
):
    study = answered_study
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    empty = Study.objects.create(owner=study.owner, name="empty", instruments=["drums"],
                                 catalogue=make_catalogue(study.owner),
                                 status=Study.Status.CLOSED)  # fmt: skip
    empty.shared_with.add(request.getfixturevalue("carol"))
    before = _choices(study)
    client.force_login(request.getfixturevalue(who))
    page = _queue(client, study, "model-choices", {"confirm_answers": "on"},
                  capture=django_capture_on_commit_callbacks)  # fmt: skip
    assert "Study 'Drums and bass' is closed; it can no longer be changed." in page
    page = _queue(client, empty, "design", DESIGN, capture=django_capture_on_commit_callbacks)
    assert "Study 'empty' is closed; it can no longer be changed." in page
    assert not Job.objects.exists()
    assert _choices(study) == before and not empty.trials.exists()
    assert not StudyEvent.objects.exists()


def test_it_recomputes_an_answered_studys_model_choices_only_once_confirmed(
    client, alice, answered_study, checkpoints, django_capture_on_commit_callbacks
):
    study = answered_study
    Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN)
    n_answers = Answer.objects.filter(trial__study=study).count()
    before = _choices(study)
    client.force_login(alice)
    page = _queue(client, study, "model-choices", capture=django_capture_on_commit_callbacks)
    assert (
        f"The study has {n_answers} answer(s): recomputing the model choices changes the "
        "model_choice, model_margin and agree columns of their export." in page
    )
    assert not Job.objects.exists() and _choices(study) == before
    # Confirmed: the clips of these trials have no audio to embed, so every choice is cleared.
    page = _queue(client, study, "model-choices", {"confirm_answers": "on"},
                  capture=django_capture_on_commit_callbacks)  # fmt: skip
    job = Job.objects.get()
    assert job.status == Job.Status.DONE, job.message
    assert _choices(study) == [(None, None)] * len(before)
    assert _events(study, "model_choices") == [
        {"checkpoint": [None, checkpoint_id(checkpoints[0])], "set": 0, "cleared": 3,
         "answers": n_answers, "job": job.pk}
    ]  # fmt: skip
    assert StudyEvent.objects.get(kind="model_choices").user == alice


def test_it_recomputes_the_report_of_an_answered_study_whose_model_choices_changed(
    client, alice, answered_study, django_capture_on_commit_callbacks
):
    from evalsite.reports.models import ReportSnapshot
    from evalsite.reports.tasks import recompute_report

    study = answered_study
    Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN)
    first = ReportSnapshot.objects.get(pk=recompute_report(study.pk))
    client.force_login(alice)
    # The clips have no audio: every choice is cleared, and with it the agree column the report's
    # consent reads; the queued recomputation runs at once (Celery is eager here).
    _queue(client, study, "model-choices", {"confirm_answers": "on"},
           capture=django_capture_on_commit_callbacks)  # fmt: skip
    assert Job.objects.get().status == Job.Status.DONE
    latest = ReportSnapshot.objects.filter(study=study).order_by("-computed_at").first()
    assert latest.pk != first.pk and latest.input_sha256 != first.input_sha256


def test_it_records_the_model_choices_it_computed_with_the_checkpoints_before_and_after(
    client, alice, settings, checkpoints, django_capture_on_commit_callbacks
):
    catalogue = make_catalogue(alice)
    clips = list(catalogue.clips.filter(meta={}).order_by("id"))
    study = Study.objects.create(owner=alice, name="s", instruments=["drums"],
                                 catalogue=catalogue)  # fmt: skip
    for i in range(3):
        Trial.objects.create(study=study, instrument="drums", reference=clips[i],
                             candidate_a=clips[i + 1], candidate_b=clips[i + 2])  # fmt: skip
    client.force_login(alice)
    _queue(client, study, "model-choices", capture=django_capture_on_commit_callbacks)
    settings.CSN_CHECKPOINT = str(checkpoints[1])  # a new model deployed
    _queue(client, study, "model-choices", capture=django_capture_on_commit_callbacks)
    first, second = Job.objects.order_by("id")
    old, new = (checkpoint_id(c) for c in checkpoints)
    assert _events(study, "model_choices") == [
        {"checkpoint": [None, old], "set": 3, "cleared": 0, "answers": 0, "job": first.pk},
        {"checkpoint": [old, new], "set": 3, "cleared": 0, "answers": 0, "job": second.pk},
    ]
    overview = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    assert f"checkpoint {old} → {new}: 3 trial(s) set, 0 cleared" in overview


def test_it_records_the_trials_a_model_design_added(
    client, carol, study, django_capture_on_commit_callbacks
):
    Trial.objects.filter(study=study).delete()
    study.catalogue = make_catalogue(study.owner)
    study.save()
    client.force_login(carol)
    _queue(client, study, "design", DESIGN, capture=django_capture_on_commit_callbacks)
    job = Job.objects.get()
    assert job.status == Job.Status.DONE, job.message
    added = study.trials.count()
    assert added >= 4  # 2 main trials per instrument, the practice trials
    event = StudyEvent.objects.get(study=study, kind="trials")
    assert event.user == carol
    assert event.changes == {"added": added, "how": "model", **DESIGN, "practice": 2,
                             "checkpoint": job.checkpoint_id, "job": job.pk}  # fmt: skip


def test_it_refuses_a_design_for_a_study_that_has_trials_queueing_nothing(
    client, alice, study, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    page = _queue(client, study, "design", DESIGN, capture=django_capture_on_commit_callbacks)
    assert (
        "The study already has 8 trial(s); the model designs only a study without trials "
        "(a draft's trials can be deleted on the Trials page: Delete all trials)." in page
    )
    assert not Job.objects.exists() and not StudyEvent.objects.exists()


def test_it_offers_on_the_jobs_page_only_what_the_study_allows(client, alice, answered_study):
    study = answered_study
    client.force_login(alice)
    url = reverse("jobs:study", args=[study.pk])
    choices = reverse("jobs:queue", args=[study.pk, "model-choices"])
    design = reverse("jobs:queue", args=[study.pk, "design"])
    page = client.get(url).content.decode()
    assert 'name="confirm_answers"' in page and choices in page
    assert design not in page and "already has 8 trial(s)" in page
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    page = client.get(url).content.decode()
    assert 'id="study-closed"' in page
    assert choices not in page and design not in page and 'name="confirm_answers"' not in page
    assert reverse("jobs:queue", args=[study.pk, "ingest"]) in page  # the catalogue, not the study
    fresh = Study.objects.create(owner=alice, name="fresh", instruments=["drums"])
    page = client.get(reverse("jobs:study", args=[fresh.pk])).content.decode()
    assert reverse("jobs:queue", args=[fresh.pk, "design"]) in page
    assert 'name="confirm_answers"' not in page


def _close(client, study):
    data = {"action": "close", "confirm": "yes"}
    client.post(reverse("studies:study_status", args=[study.pk]), data)


def _answer(client, study):
    trial = study.trials.filter(is_practice=False).first()
    p = Participant.objects.create(study=study, external_pid="late", step="trials")
    Answer.objects.create(participant=p, trial=trial, trial_index=0, chosen="a",
                          displayed_first="a", chosen_position="A", response_ms=900)  # fmt: skip


@pytest.mark.parametrize(
    "meanwhile, expected",
    [
        (_close, "study 'Drums and bass' is closed; no model choice changed"),
        (
            _answer,
            "study 'Drums and bass' has 1 answer(s) now; no model choice changed: queue the "
            "job again, confirming that the export's model columns will change",
        ),
    ],
    ids=["closed", "answered"],
)
def test_it_changes_no_model_choice_when_the_study_changed_before_the_worker_ran(
    client, alice, study, meanwhile, expected, django_capture_on_commit_callbacks
):
    Study.objects.filter(pk=study.pk).update(status=Study.Status.OPEN)
    before = _choices(study)
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(reverse("jobs:queue", args=[study.pk, "model-choices"]))
    meanwhile(client, study)
    for callback in queued:  # the worker runs it now
        callback()
    job = Job.objects.get()
    assert (job.status, job.message) == (Job.Status.FAILED, expected)
    assert _choices(study) == before and not _events(study, "model_choices")


def test_it_designs_nothing_when_the_study_closed_before_the_worker_ran(
    client, alice, django_capture_on_commit_callbacks
):
    study = Study.objects.create(owner=alice, name="later", instruments=["drums"],
                                 catalogue=make_catalogue(alice))  # fmt: skip
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(reverse("jobs:queue", args=[study.pk, "design"]), DESIGN)
    _close(client, study)
    for callback in queued:
        callback()
    job = Job.objects.get()
    assert (job.status, job.message) == (
        Job.Status.FAILED,
        "study 'later' is closed; nothing designed",
    )
    assert not study.trials.exists() and not _events(study, "trials")
