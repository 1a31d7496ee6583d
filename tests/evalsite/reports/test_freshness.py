"""Which report the site serves when computations overlap: the one of the newest read of the
answers, never one holding answers deleted since it read them, and a recomputation whenever what
the report reads changes."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse

from evalsite.reports import services
from evalsite.reports.models import ReportSnapshot
from evalsite.studies.models import Answer, Participant
from tests.evalsite.reports.conftest import answer_all

pytestmark = pytest.mark.django_db


def _late_participant(study, pid: str, seed: int) -> Participant:
    p = Participant.objects.create(
        study=study, external_pid=pid, step="done", screening_passed=True, seed=seed
    )
    answer_all(study, p, list(study.trials.order_by("id")), np.random.default_rng(seed))
    return p


def _bundle_answers(content: bytes) -> pd.DataFrame:
    z = zipfile.ZipFile(io.BytesIO(content))
    (name,) = [n for n in z.namelist() if n.endswith("/answers.csv")]
    return pd.read_csv(io.BytesIO(z.read(name)))


def test_it_serves_the_newest_read_when_an_older_computation_saves_last(
    client, alice, sim_study, monkeypatch
):
    plots, newer = services.all_plots, {}

    def newer_computation_meanwhile(report):
        # Computation A has read the answers; a participant finishes and computation B (queued
        # by that) reads and saves before A does.
        if not newer:
            newer["snap"] = None  # B's own plots go straight through
            _late_participant(sim_study, "late", 999)
            newer["snap"] = services.compute_snapshot(sim_study.pk)
        return plots(report)

    monkeypatch.setattr(services, "all_plots", newer_computation_meanwhile)
    older = services.compute_snapshot(sim_study.pk)
    n_answers = Answer.objects.filter(trial__study=sim_study).count()
    assert newer["snap"].n_answers == n_answers
    # The older read is not stored (its bundle would take one of the places kept for bundles).
    assert older == newer["snap"] and ReportSnapshot.objects.filter(study=sim_study).count() == 1

    client.force_login(alice)
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert re.search(r"from (\d+) answers", page).group(1) == str(n_answers)
    served = client.get(reverse("reports:json", args=[sim_study.pk])).json()
    assert served["meta"]["n_answers"] == n_answers
    bundle = client.get(reverse("reports:bundle", args=[sim_study.pk])).content
    assert len(_bundle_answers(bundle)) == n_answers
