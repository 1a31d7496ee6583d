"""An admin edit of an answered trial changes what the report reads (answers.csv reads the
trial's columns live: model_choice and agree, model_margin, the candidates, the instrument):
it queues the report's recomputation and the report page says the report is out of date until
then, as the model-choices job's change of an answered study does (review rsess, finding 2)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.study_config import changes_since
from evalsite.reports.tasks import recompute_report
from evalsite.studies import history
from evalsite.studies.models import Answer
from tests.evalsite.studies.form_pages import admin_trial_post

pytestmark = pytest.mark.django_db
OUTDATED = r'data-testid="report-outdated">[^<]*answered trials'


def _edit(trial, what: str) -> dict:
    data = admin_trial_post(trial)
    if what == "model_choice":
        return data | {"model_choice": "b" if trial.model_choice == "a" else "a"}
    if what == "model_margin":
        return data | {"model_margin": (trial.model_margin or 0) + 1.5}
    # candidates swapped: each stored answer's "a" now names the other clip
    return data | {"candidate_a": trial.candidate_b_id, "candidate_b": trial.candidate_a_id}


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(staff)
    return client


@pytest.mark.parametrize(  # each field goes the same way: one in the default tier
    "what",
    [pytest.param("model_choice", marks=pytest.mark.slow),
     pytest.param("model_margin", marks=pytest.mark.slow), "candidates"],
)  # fmt: skip
def test_it_recomputes_the_report_when_an_answered_trial_is_edited_in_the_admin(
    staff_client, sim_study, django_capture_on_commit_callbacks, what
):
    first = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    ReportState.objects.filter(study=sim_study).update(pending=False)
    page = reverse("reports:page", args=[sim_study.pk])
    assert not re.search(OUTDATED, staff_client.get(page).content.decode())
    trial = next(t for t in sim_study.trials.filter(is_catch=False, is_practice=False)
                 if t.model_choice and Answer.objects.filter(trial=t).exists())  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:studies_trial_change", args=[trial.pk]), _edit(trial, what)
        )
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert ReportState.objects.get(study=sim_study).pending  # queued
    assert changes_since(sim_study, first) == ["answered trials"]
    event = sim_study.events.latest("id")
    assert (event.kind, event.changes["how"], event.changes["changed"]) == (
        "trials", "admin", trial.pk)  # fmt: skip
    assert event.changes["answers"] == Answer.objects.filter(trial=trial).count()
    shown = staff_client.get(page).content.decode()
    assert re.search(OUTDATED, shown) and "A recomputation is queued." in shown

    second = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))  # the queued run
    assert second.input_sha256 != first.input_sha256  # what it read did change
    assert changes_since(sim_study, second) == []
    assert not re.search(OUTDATED, staff_client.get(page).content.decode())


def test_it_queues_nothing_for_an_admin_edit_of_a_trial_without_answers(
    staff_client, sim_study, django_capture_on_commit_callbacks
):
    trial = sim_study.trials.filter(is_catch=False, is_practice=False).first()
    Answer.objects.filter(trial=trial).delete()  # as a trial no participant has answered yet
    first = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    ReportState.objects.filter(study=sim_study).update(pending=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:studies_trial_change", args=[trial.pk]), _edit(trial, "model_choice")
        )
    assert response.status_code == 302
    assert "answers" not in sim_study.events.latest("id").changes
    assert not ReportState.objects.get(study=sim_study).pending
    assert changes_since(sim_study, first) == []


def test_it_shows_a_report_out_of_date_after_the_model_choices_of_an_answered_study_change(
    staff_client, sim_study, django_capture_on_commit_callbacks
):
    first = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    n = Answer.objects.filter(trial__study=sim_study).count()
    with django_capture_on_commit_callbacks(execute=True):  # as the model-choices job records it
        history.record(sim_study, None, history.Kind.MODEL_CHOICES,
                       {"checkpoint": [None, "c1"], "set": 3, "cleared": 0, "answers": n,
                        "job": 1})  # fmt: skip
    assert ReportState.objects.get(study=sim_study).pending
    assert changes_since(sim_study, first) == ["model choices"]
    shown = staff_client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert re.search(r'data-testid="report-outdated">[^<]*model choices', shown)
    second = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    assert changes_since(sim_study, second) == []
