"""A report computed by an earlier version of the site (its stored config made before the code
added or recomputed a field: `ReportSnapshot.config_version` older than the current one) is not
said to be out of date because the study changed: the page says which version computed it and
queues its recomputation when it is viewed, and a study edit is still named as before, also one
made after the upgrade and before the recomputation (the fields no version since computed anew
are still compared)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from evalsite.reports.models import REPORT_CONFIG_VERSION, ReportSnapshot, ReportState
from evalsite.reports.study_config import (
    RECOMPUTED_IN,
    by_earlier_version,
    config_fields_changed,
)
from evalsite.reports.tasks import COMPUTATION_FAILED, STALE_AFTER, recompute_report
from evalsite.studies.models import Study

pytestmark = pytest.mark.django_db


def _as_before_the_upgrade(snap: ReportSnapshot) -> None:
    """As migrate leaves a snapshot stored by d3f17c4: version 1, without the listening field."""
    config = dict(snap.config)
    del config["listen_seconds_per_trial"]
    ReportSnapshot.objects.filter(pk=snap.pk).update(config=config, config_version=1)


def test_it_says_an_earlier_version_of_the_site_computed_the_report_not_that_the_study_changed(
    client, alice, sim_study
):
    _as_before_the_upgrade(ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk)))
    client.force_login(alice)
    page = reverse("reports:page", args=[sim_study.pk])
    shown = client.get(page).content.decode()
    assert 'data-testid="report-outdated"' not in shown, shown  # the study did not change
    assert re.search(
        r'data-testid="report-earlier-version">[^<]*computed by an earlier version of the site',
        shown,
    ), shown
    assert ReportState.objects.get(study=sim_study).pending  # queued by the view, no button

    recompute_report(sim_study.pk)  # the queued run
    shown = client.get(page).content.decode()
    assert 'data-testid="report-earlier-version"' not in shown
    assert 'data-testid="report-outdated"' not in shown


def test_a_reload_while_the_queued_recomputation_runs_queues_no_other(
    client, alice, sim_study, monkeypatch
):
    from evalsite.reports import services

    _as_before_the_upgrade(ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk)))
    client.force_login(alice)
    page = reverse("reports:page", args=[sim_study.pk])
    client.get(page)
    assert ReportState.objects.get(study=sim_study).pending  # the view's run, queued
    compute, seen = services.compute, {}

    def reloaded_meanwhile(*args, **kwargs):  # the researcher reloads, as the page asks
        seen["shown"] = client.get(page).content.decode()
        seen["pending"] = ReportState.objects.get(study=sim_study).pending
        return compute(*args, **kwargs)

    monkeypatch.setattr(services, "compute", reloaded_meanwhile)
    recompute_report(sim_study.pk)  # the queued run, which cleared `pending` as it started
    assert not seen["pending"], "the reload queued a second recomputation"
    assert re.search(
        r'data-testid="report-earlier-version">[^<]*it is being recomputed', seen["shown"]
    ), seen["shown"]


@pytest.mark.parametrize("ended", ["failed", "lost"])
def test_a_view_queues_the_recomputation_again_once_the_earlier_run_failed_or_was_lost(
    client, alice, sim_study, ended
):
    _as_before_the_upgrade(ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk)))
    now = timezone.now()
    ReportSnapshot.objects.filter(study=sim_study).update(computed_at=now - 3 * STALE_AFTER)
    if ended == "failed":
        run = {"started_at": now, "failure": COMPUTATION_FAILED, "failed_at": now}
    else:  # started longer than STALE_AFTER ago and never ended: its worker was lost
        run = {"started_at": now - 2 * STALE_AFTER, "failure": "", "failed_at": None}
    ReportState.objects.update_or_create(study=sim_study, defaults={"pending": False} | run)
    client.force_login(alice)
    client.get(reverse("reports:page", args=[sim_study.pk]))
    assert ReportState.objects.get(study=sim_study).pending


def test_it_still_names_a_study_edit_after_the_upgrade(client, alice, sim_study):
    recompute_report(sim_study.pk)
    sim_study.settings = sim_study.settings | {"exclusion": {"min_catch_accuracy": 0.5}}
    sim_study.save()  # as a shell saves it: nothing queued
    client.force_login(alice)
    shown = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert re.search(r'data-testid="report-outdated">[^<]*exclusion rules', shown), shown
    assert 'data-testid="report-earlier-version"' not in shown


def test_it_names_a_study_edit_made_after_an_earlier_version_computed_the_report(
    client, alice, sim_study
):
    _as_before_the_upgrade(ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk)))
    sim_study.settings = sim_study.settings | {"exclusion": {"min_catch_accuracy": 0.5}}
    sim_study.save()  # the researcher's edit after the upgrade, before the queued run
    client.force_login(alice)
    shown = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    outdated = re.search(r'data-testid="report-outdated">([^<]*)', shown)
    assert outdated and "exclusion rules" in outdated[1], shown
    # only the edit: not the field the upgrade computes anew
    assert "listening" not in outdated[1], outdated[1]
    earlier = re.search(r'data-testid="report-earlier-version">([^<]*)', shown)
    assert earlier and "computed by an earlier version" in earlier[1], shown
    assert "did not change" not in earlier[1], earlier[1]


def test_it_names_no_field_an_upgrade_computes_anew_or_the_earlier_version_lacked():
    """A config field added since (absent from the stored config), one the earlier version held
    and the current one dropped, a rule added since, and each field a later version computes
    anew differ with the study unchanged: none is a change of the study."""
    stored = {
        "n_boot": 1000,
        "design_main_trials": {"drums": 2},
        "design_main_share_under_one": {},  # held by an earlier version, dropped since
        "rules": {"fast_ms": 250.0},
    }
    now = {
        "n_boot": 1000,
        "design_main_trials": {"drums": 1.5},  # computed anew by version 3
        "listen_seconds_per_trial": {"drums": 31.0},  # added by version 2
        "rules": {"fast_ms": 250.0, "min_median_rt_ms": 0.0},  # a rule added since
    }
    assert config_fields_changed(now, stored, version=1) == []
    assert config_fields_changed(now, stored | {"n_boot": 200}, version=1) == ["n_boot"]
    assert config_fields_changed(now, stored | {"rules": {"fast_ms": 500.0}}, version=1) == [
        "rules"
    ]
    # the current version compares every field
    assert config_fields_changed(now, stored, version=REPORT_CONFIG_VERSION) == [
        "design_main_share_under_one",
        "design_main_trials",
        "listen_seconds_per_trial",
        "rules",
    ]


def test_every_version_says_which_fields_it_computes_anew():
    # raising REPORT_CONFIG_VERSION without naming its fields would name them as study edits
    assert set(RECOMPUTED_IN) == set(range(2, REPORT_CONFIG_VERSION + 1))
    assert all(RECOMPUTED_IN[v] for v in RECOMPUTED_IN)


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_marks_the_reports_stored_before_the_upgrade_as_computed_by_an_earlier_version(alice):
    before = ("reports", "0004_reportstate_failure")
    study = Study.objects.create(owner=alice, name="old")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([before])
    try:
        apps = MigrationExecutor(connection).loader.project_state([before]).apps
        old = apps.get_model("reports", "ReportSnapshot").objects.create(study_id=study.pk).pk
    finally:
        MigrationExecutor(connection).migrate(latest)
    assert ReportSnapshot.objects.get(pk=old).config_version == 1
    assert by_earlier_version(ReportSnapshot.objects.get(pk=old))
    new = ReportSnapshot.objects.create(study_id=study.pk)
    assert new.config_version == REPORT_CONFIG_VERSION and not by_earlier_version(new)
