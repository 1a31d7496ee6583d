"""Which report the site serves when computations overlap: the one of the newest read of the
answers, never one holding answers deleted since it read them, and a recomputation whenever what
the report reads changes."""

from __future__ import annotations

import io
import re
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from evalsite.reports import services, tasks
from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.rendering import plots
from evalsite.reports.tasks import recompute_report
from evalsite.studies import flow_withdraw
from evalsite.studies.models import Answer, Participant
from tests.evalsite.reports.conftest import answer_all
from tests.evalsite.studies.form_pages import admin_trial_post, page_version
from tests.evalsite.studies.test_experimenter import _study_post
from tests.lock_waits import until_blocked

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
    plots, newer = services.draw_plots, {}

    def newer_computation_meanwhile(report):
        # Computation A has read the answers; a participant finishes and computation B (queued
        # by that) reads and saves before A does.
        if not newer:
            newer["snap"] = None  # B's own plots go straight through
            _late_participant(sim_study, "late", 999)
            newer["snap"] = services.compute_snapshot(sim_study.pk)
        return plots(report)

    monkeypatch.setattr(services, "draw_plots", newer_computation_meanwhile)
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


def test_it_stores_the_report_without_a_plot_that_fails_and_says_so(
    client, alice, sim_study, monkeypatch
):
    def broken(report):
        raise ValueError("'yerr' must not contain negative values")

    old = services.compute_snapshot(sim_study.pk)
    _late_participant(sim_study, "late", 999)
    monkeypatch.setattr(plots, "consent_plot", broken)
    snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))

    # Stored as the new current report (not the old one served on), without that plot only.
    assert snap != old and snap.n_answers == Answer.objects.filter(trial__study=sim_study).count()
    assert "consent" not in snap.plots and "psychometric" in snap.plots and snap.bundle
    warnings = [m["text"] for m in snap.messages if m["level"] == "warning"]
    assert any("consent" in w and "yerr" in w for w in warnings), warnings
    client.force_login(alice)
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert "plot consent not drawn" in page


def _leaver(study) -> Participant:
    p = Participant.objects.create(
        study=study, external_pid="leaver", step="trials", screening_passed=True, seed=555
    )
    answer_all(study, p, list(study.trials.order_by("id")), np.random.default_rng(2))
    return p


def _stored_rows_of(study, p: Participant) -> int:
    """Rows of p's answers in any bundle still stored for the study."""
    return sum(
        int((_bundle_answers(bytes(b))["participant"].astype(str) == str(p.pk)).sum())
        for b in ReportSnapshot.objects.filter(study=study).values_list("bundle", flat=True)
        if b
    )


def test_it_removes_a_withdrawn_participants_rows_from_the_stored_report_tables(sim_study):
    leaver = _leaver(sim_study)
    snap = services.compute_snapshot(sim_study.pk)

    def rows_of_leaver(tables) -> dict[str, int]:
        mine = {n: sum(str(r.get("participant")) == str(leaver.pk) for r in rows)
                for n, rows in tables.items()}  # fmt: skip
        return {n: c for n, c in mine.items() if c}

    before = rows_of_leaver(snap.tables)
    assert "participants" in before  # the per-participant tables hold the leaver
    sizes = {n: len(rows) for n, rows in snap.tables.items()}
    assert flow_withdraw.withdraw(leaver)
    snap.refresh_from_db()
    assert rows_of_leaver(snap.tables) == {}
    assert {n: sizes[n] - len(rows) for n, rows in snap.tables.items()} == {
        n: before.get(n, 0) for n in sizes
    }  # only the leaver's rows went


def test_it_recomputes_a_bundle_emptied_by_a_withdrawal_that_left_the_answers_unchanged(
    client, alice, sim_study
):
    first = recompute_report(sim_study.pk)
    # One who leaves before answering: the answers (and so the digest) stay the same, but the
    # withdrawal empties every stored bundle.
    p = Participant.objects.create(
        study=sim_study, external_pid="early", step="instructions", screening_passed=True, seed=4
    )
    assert flow_withdraw.withdraw(p)
    again = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    assert again.pk != first and again.bundle

    client.force_login(alice)
    response = client.get(reverse("reports:bundle", args=[sim_study.pk]))
    assert response.status_code == 200
    n_answers = Answer.objects.filter(trial__study=sim_study).count()
    assert len(_bundle_answers(response.content)) == n_answers


def test_it_stores_nothing_computed_from_answers_withdrawn_while_it_ran(
    client, alice, sim_study, monkeypatch, django_capture_on_commit_callbacks
):
    leaver, bundle = _leaver(sim_study), services.make_bundle
    kept = Answer.objects.filter(trial__study=sim_study).exclude(participant=leaver).count()

    def withdrawn_meanwhile(*args, **kwargs):  # the computation has read the leaver's answers
        if not leaver.step == "withdrawn":
            assert flow_withdraw.withdraw(leaver)
        return bundle(*args, **kwargs)

    monkeypatch.setattr(services, "make_bundle", withdrawn_meanwhile)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.compute_snapshot(sim_study.pk)
    assert _stored_rows_of(sim_study, leaver) == 0
    assert set(ReportSnapshot.objects.values_list("n_answers", flat=True)) <= {kept}
    assert queued and ReportState.objects.get(study=sim_study).pending  # computed again

    monkeypatch.setattr(services, "make_bundle", bundle)
    recompute_report(sim_study.pk)  # the queued run
    client.force_login(alice)
    served = client.get(reverse("reports:bundle", args=[sim_study.pk])).content
    assert len(_bundle_answers(served)) == kept and _stored_rows_of(sim_study, leaver) == 0


def test_it_stores_nothing_computed_from_previews_removed_while_it_ran(sim_study, monkeypatch):
    from evalsite.studies.experimenter import remove_previews

    previews = list(sim_study.participants.order_by("id")[:2])
    Participant.objects.filter(pk__in=[p.pk for p in previews]).update(is_preview=True)
    bundle = services.make_bundle

    def previews_removed_meanwhile(*args, **kwargs):  # the computation has read their answers
        assert remove_previews(sim_study) == 2
        return bundle(*args, **kwargs)

    monkeypatch.setattr(services, "make_bundle", previews_removed_meanwhile)
    services.compute_snapshot(sim_study.pk)
    assert not ReportSnapshot.objects.filter(study=sim_study).exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the withdrawal commits on its own connection
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
def test_it_empties_the_bundle_of_a_computation_that_saves_while_a_participant_withdraws(
    sim_study, monkeypatch
):
    leaver, prune, other = _leaver(sim_study), services._prune_bundles, {}
    monkeypatch.setattr(tasks, "_enqueue", lambda study_id, countdown: None)  # no broker

    def withdraw_from_another_request():
        try:
            other["withdrew"] = flow_withdraw.withdraw(Participant.objects.get(pk=leaver.pk))
        finally:
            connection.close()

    def withdrawn_while_saving(study):
        prune(study)  # the snapshot with the leaver's answers is written, not committed yet
        other["thread"] = threading.Thread(target=withdraw_from_another_request)
        other["thread"].start()
        until_blocked(other["thread"], 10)  # the withdrawal waits for this save to end

    monkeypatch.setattr(services, "_prune_bundles", withdrawn_while_saving)
    services.compute_snapshot(sim_study.pk)
    other["thread"].join(timeout=30)
    assert not other["thread"].is_alive() and other["withdrew"]
    assert _stored_rows_of(sim_study, leaver) == 0


def test_it_recomputes_the_report_when_the_rules_it_applies_change(
    client, alice, sim_study, django_capture_on_commit_callbacks
):
    recompute_report(sim_study.pk)
    client.force_login(alice)
    edit = reverse("studies:study_edit", args=[sim_study.pk])
    post = _study_post(
        name=sim_study.name,
        instruments=list(sim_study.instruments),
        catalogue=sim_study.catalogue_id,
        min_catch_accuracy=1.0,
        min_median_rt_ms=5000,
        shared_with_names="carol",
        version=page_version(client, sim_study),
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert client.post(edit, post).status_code == 302
    assert len(queued) == 1
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert "A recomputation is queued." in page

    snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))  # the queued run
    assert snap.config["rules"]["min_median_rt_ms"] == 5000 and snap.meta["n_excluded"] > 0
    with django_capture_on_commit_callbacks(execute=False) as queued:  # nothing the report reads
        again = {
            **post,
            "description": "Now described.",
            "version": page_version(client, sim_study),
        }
        assert client.post(edit, again).status_code == 302
    assert not queued and not ReportState.objects.get(study=sim_study).pending


def test_it_recomputes_the_report_when_the_study_gains_an_instrument(
    client, alice, sim_study, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    post = _study_post(
        name=sim_study.name,
        instruments=[*sim_study.instruments, "piano"],
        catalogue=sim_study.catalogue_id,
        shared_with_names="carol",
        version=page_version(client, sim_study),
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        edit = reverse("studies:study_edit", args=[sim_study.pk])
        assert client.post(edit, post).status_code == 302
    assert len(queued) == 1  # the report names piano as an instrument without answers
    sim_study.refresh_from_db()
    assert "piano" in services.report_config_for(sim_study)[0].planned_instruments


def _new_reference_trial(study, how: str) -> dict:
    """A main drums trial whose reference no drums trial has yet: one more main trial per
    participant (design_main_trials), posted to the Trials page's form or CSV upload."""
    used = set(study.trials.filter(instrument="drums").values_list("reference_id", flat=True))
    ref, a, b = study.catalogue.clips.exclude(pk__in=used).order_by("id")[:3]
    if how == "form":
        url = reverse("studies:trial_add", args=[study.pk])
        return {"path": url, "data": {"reference": ref.pk, "candidate_a": a.pk,
                "candidate_b": b.pk, "instrument": "drums", "catch_kind": "", "expected": "",
                "model_choice": "a", "model_margin": ""}}  # fmt: skip
    text = (
        "reference,candidate_a,candidate_b,instrument,model_choice\n"
        f"{ref.pk},{a.pk},{b.pk},drums,a\n"
    )
    upload = SimpleUploadedFile("more.csv", text.encode())
    return {"path": reverse("studies:trials_csv", args=[study.pk]), "data": {"csv_file": upload}}


@pytest.mark.parametrize("how", ["form", "csv"])
def test_it_recomputes_the_report_when_the_studys_trials_change_what_it_plans_at(
    client, alice, sim_study, django_capture_on_commit_callbacks, how
):
    first = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    assert first.config["design_main_trials"] == {"drums": 5, "guitar": 5}
    client.force_login(alice)
    page = reverse("reports:page", args=[sim_study.pk])
    assert 'data-testid="report-outdated"' not in client.get(page).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(**_new_reference_trial(sim_study, how)).status_code == 302
    assert ReportState.objects.get(study=sim_study).pending
    shown = client.get(page).content.decode()
    assert "A recomputation is queued." in shown
    assert re.search(r'data-testid="report-outdated">[^<]*main trials per participant', shown)

    snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))  # the queued run
    assert snap.config["design_main_trials"] == {"drums": 6, "guitar": 5}
    assert 'data-testid="report-outdated"' not in client.get(page).content.decode()


def test_it_queues_nothing_for_a_trial_that_changes_nothing_the_report_reads(
    client, alice, sim_study, django_capture_on_commit_callbacks
):
    recompute_report(sim_study.pk)
    client.force_login(alice)
    ref = sim_study.trials.filter(instrument="drums", is_catch=False).first().reference
    taken = {
        frozenset((t.candidate_a_id, t.candidate_b_id))
        for t in sim_study.trials.filter(reference=ref)
    }  # a trial the study already has is refused
    others = list(sim_study.catalogue.clips.exclude(pk=ref.pk).order_by("id"))
    a, b = next((a, b) for a in others for b in others if a != b and {a.pk, b.pk} not in taken)
    data = {"reference": ref.pk, "candidate_a": a.pk, "candidate_b": b.pk, "instrument": "drums",
            "catch_kind": "", "expected": "", "model_choice": "a", "model_margin": ""}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # a reference drums already has
        assert (
            client.post(reverse("studies:trial_add", args=[sim_study.pk]), data).status_code == 302
        )
    assert not ReportState.objects.filter(study=sim_study, pending=True).exists()


def test_it_shows_a_report_out_of_date_after_a_trial_changed_outside_the_trials_page(
    client, alice, sim_study
):
    recompute_report(sim_study.pk)
    # As a shell saves it (the admin's trial page records it: trial_saving): no history entry,
    # nothing queued.
    trial = sim_study.trials.filter(instrument="guitar", is_catch=False).first()
    trial.instrument = "drums"
    trial.save()
    client.force_login(alice)
    shown = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert re.search(r'data-testid="report-outdated">[^<]*main trials per participant', shown)
    assert "press Recompute now" in shown


@pytest.mark.parametrize("how", ["add", "change"])
def test_a_trial_added_or_edited_in_the_admin_queues_the_report_as_the_trials_page_does(
    client, django_user_model, sim_study, django_capture_on_commit_callbacks, how
):
    recompute_report(sim_study.pk)
    staff = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(staff)
    if how == "add":  # one more main drums trial per participant, as the page's form adds
        made = _new_reference_trial(sim_study, "form")["data"]
        data = {**made, "study": sim_study.pk, "repeat_of": ""}
        url = reverse("admin:studies_trial_add")
    else:  # a guitar trial made a drums one: one drums trial more per participant, one guitar less
        trial = sim_study.trials.filter(instrument="guitar", is_catch=False).first()
        data = {**admin_trial_post(trial), "instrument": "drums"}
        url = reverse("admin:studies_trial_change", args=[trial.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert ReportState.objects.get(study=sim_study).pending
    event = sim_study.events.latest("id")
    assert (event.kind, event.user, event.changes["how"]) == ("trials", staff, "admin")
    snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))  # the queued run
    expected = {"add": {"drums": 6, "guitar": 5}, "change": {"drums": 6, "guitar": 4}}[how]
    assert snap.config["design_main_trials"] == expected
