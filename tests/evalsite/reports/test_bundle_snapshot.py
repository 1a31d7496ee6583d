"""A report computed while answers arrive: its reproducibility bundle's answers.csv, design.csv and
config.json are read from one snapshot, the one the report was computed from."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest
from django.db import connection

from evalsite.reports import services
from evalsite.reports.models import ReportSnapshot
from evalsite.studies.models import Participant, Study
from tests.evalsite.reports.conftest import answer_all


def _arriving(study: Study, stop: threading.Event) -> threading.Thread:
    """A thread storing participants, slot by slot and answer by answer, until `stop`."""
    trials = list(study.trials.order_by("id"))

    def arrive():
        try:
            n = 0
            while not stop.is_set():
                p = Participant.objects.create(
                    study=study, external_pid=f"late{n}", step="done", screening_passed=True,
                    seed=1000 + n,
                )  # fmt: skip
                answer_all(study, p, trials, np.random.default_rng(n))
                n += 1
        finally:
            connection.close()

    return threading.Thread(target=arrive)


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["participant"].astype(int), frame["trial"].astype(int)))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_bundle_computed_while_answers_arrive_holds_one_snapshot(sim_study):
    stop = threading.Event()
    thread = _arriving(sim_study, stop)
    thread.start()
    seen = []
    try:
        for _ in range(4):
            ReportSnapshot.objects.filter(study=sim_study).delete()  # no reuse of the last one
            snap = services.compute_snapshot(sim_study.pk)
            z = zipfile.ZipFile(io.BytesIO(bytes(snap.bundle)))
            root = f"report-study-{sim_study.pk}/"
            answers = pd.read_csv(z.open(root + "answers.csv"))
            design = pd.read_csv(z.open(root + "design.csv"))
            config = json.loads(z.read(root + "config.json"))
            seeds = json.loads(z.read(root + "seeds.json"))
            main = design[~design["is_practice"]]
            assert _pairs(main[main["answered"]]) == _pairs(answers)
            assert snap.n_answers == len(answers)
            assert {p["participant"] for p in seeds["participants"]} == set(design["participant"])
            assert config["trials"]["total"] == design["trial"].nunique()
            seen.append(len(answers))
    finally:
        stop.set()
        thread.join()
    assert len(set(seen)) == len(seen), seen  # each bundle read while answers arrived


@pytest.mark.django_db(transaction=True)
def test_a_report_computed_after_a_trial_was_added_uses_the_config_its_bundle_holds(
    sim_study, monkeypatch
):
    """A main trial on a new reference piece commits after the snapshot was read and before the
    computation: the report is computed from the config read in the snapshot, the one its
    bundle's report_config.json, config.json and input digest hold (recompute.py reproduces it)."""
    from evalsite.stimuli.models import Clip
    from evalsite.studies.models import Trial

    compute = services.compute

    def trial_added_meanwhile(study, csv, *read):
        reference = sim_study.trials.first().reference
        clips = list(Clip.objects.filter(catalogue_id=reference.catalogue_id).order_by("id"))
        new = Clip.objects.create(catalogue_id=reference.catalogue_id, name="new.wav",
                                  piece="NewPiece", status="ready", sha256="f" * 64,
                                  loudness_lufs=-23.0, duration_s=5.0, sample_rate=22050,
                                  channels=1)  # fmt: skip
        Trial.objects.create(study=sim_study, reference=new, candidate_a=clips[1],
                             candidate_b=clips[2], instrument="drums")  # fmt: skip
        return compute(study, csv, *read)

    monkeypatch.setattr(services, "compute", trial_added_meanwhile)
    ReportSnapshot.objects.filter(study=sim_study).delete()
    snap = services.compute_snapshot(sim_study.pk)
    z, root = zipfile.ZipFile(io.BytesIO(bytes(snap.bundle))), f"report-study-{sim_study.pk}/"
    report_config = json.loads(z.read(root + "report_config.json"))
    in_report = json.loads(z.read(root + "report.json"))["meta"]["config"]
    assert in_report == report_config == json.loads(json.dumps(snap.config))
