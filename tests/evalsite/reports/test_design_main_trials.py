"""What the power plan plans at (`design_main_trials` in the report config): per instrument, the
main trials one participant gets, its share of the `trials_per_participant` that caps all
instruments together; and a change of
that setting marks the report out of date as a change of the trials does (review diffp,
finding 2)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse
from django.utils import timezone

from evalsite.reports.analysis import power
from evalsite.reports.models import ReportSnapshot, ReportState
from evalsite.reports.study_config import report_config_for
from evalsite.reports.tasks import recompute_report
from evalsite.stimuli.models import Clip
from evalsite.studies import design
from evalsite.studies.served_audio import PAD_MAX_S
from tests.evalsite.studies.conftest import make_catalogue, make_study, participant
from tests.evalsite.studies.form_pages import page_version
from tests.evalsite.studies.test_experimenter import _study_post

pytestmark = pytest.mark.django_db
NO_CATCH = {"identical": 0, "attention": 0, "repeat": 0}


def test_it_plans_at_no_more_main_trials_than_the_setting_gives_a_participant(
    alice, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")  # the generated clips' files
    study = make_study(alice, make_catalogue(alice), 3, practice_trials=0,
                       trials_per_participant=2, catch=NO_CATCH)  # fmt: skip
    assert design.most_main_trials(study) == {"drums": 3, "guitar": 3}  # the trials alone
    config, _ = report_config_for(study)
    # the setting caps the main trials over all instruments: 2 in all, not 2 of each (review
    # rdiff, finding 2)
    assert config.design_main_trials == {"drums": 1, "guitar": 1}
    now = timezone.now()
    given: Counter = Counter()
    for seed in range(6):
        p = participant(study, seed)
        assert design.assign(p, now)
        got = Counter(s.trial.instrument for s in p.slots.select_related("trial"))
        assert sum(got.values()) == 2 == sum(config.design_main_trials.values())
        given.update(got)
    # least-filled first spreads the 2 over the instruments: on average 1 of each
    assert given == {"drums": 6, "guitar": 6}


def test_it_plans_the_minutes_and_participants_of_the_trials_a_capped_participant_gets(alice):
    """2 instruments, 3 reference pieces each, 2 main trials a participant in all: the plan's row
    at 2 trials of each instrument (4 in all) is beyond the design, and its row at the design's
    1 of each counts the 2 trials a participant gets in its minutes and 1 answer of the
    instrument a participant in its participants."""
    study = make_study(alice, make_catalogue(alice), 3, practice_trials=0,
                       trials_per_participant=2, catch=NO_CATCH)  # fmt: skip
    config, _ = report_config_for(study)
    inputs = pd.DataFrame([{"term": i, "estimate": 0.7, "icc": 0.1, "trials_per_participant": 1.0,
                            "seconds_per_trial": 3.0, "n": 40, "n_participants": 20}
                           for i in ("drums", "guitar")])  # fmt: skip
    rows = power.plan(inputs, (1, 2, 5), design_trials=config.design_main_trials)
    within = rows[rows.within_design]
    assert set(within.trials_per_participant) == {1}
    assert within.minutes_per_participant.tolist() == pytest.approx([2 * 3.0 / 60] * 2)
    assert (within.participants_for_power == np.ceil(within.answers_for_power)).all()
    beyond = rows[rows.trials_per_participant == 2]
    assert beyond.minutes_per_participant.tolist() == pytest.approx([3 * 3.0 / 60] * 2)


def _edit(client, study, **settings):
    post = _study_post(
        name=study.name,
        instruments=list(study.instruments),
        catalogue=study.catalogue_id,
        shared_with_names="carol",
        **settings,
    )
    post["version"] = page_version(client, study)  # as the page sends it (refused without)
    return client.post(reverse("studies:study_edit", args=[study.pk]), post)


def test_it_recomputes_the_report_when_trials_per_participant_changes_what_it_plans_at(
    client, alice, sim_study, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    assert _edit(client, sim_study).status_code == 302  # the form's settings, no cap
    first = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    assert first.config["design_main_trials"] == {"drums": 5, "guitar": 5}
    page = reverse("reports:page", args=[sim_study.pk])
    with django_capture_on_commit_callbacks(execute=False) as queued:  # above 5: no change
        assert _edit(client, sim_study, trials_per_participant=12).status_code == 302
    assert not queued and not ReportState.objects.filter(study=sim_study, pending=True).exists()
    assert 'data-testid="report-outdated"' not in client.get(page).content.decode()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert _edit(client, sim_study, trials_per_participant=6).status_code == 302
    assert len(queued) == 1
    shown = client.get(page).content.decode()
    assert "A recomputation is queued." in shown
    assert re.search(r'data-testid="report-outdated">[^<]*main trials per participant', shown)
    snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))  # the queued run
    assert snap.config["design_main_trials"] == {"drums": 3, "guitar": 3}  # 6 in all
    assert 'data-testid="report-outdated"' not in client.get(page).content.decode()


@pytest.mark.parametrize("share", [0.0, 0.5, 0.9])
def test_it_gives_the_plan_the_clips_full_durations_whatever_min_listen_share_is(
    alice, settings, tmp_path, share
):
    # The page unlocks the answer only once all three clips have played to the end
    # (trial.html data-required="r,A,B", participant.js), whatever min_listen_share, the
    # server's floor for scripted clients, is: that listening is part of each trial's time,
    # which response_ms (unlock to click) leaves out (review rstats, finding 5), and planned
    # as share x the durations it was 0 s at share 0 (review rdiff, finding 3). Every clip 3 s
    # (clips recur across trials), plus the renditions' silence, 3 x PAD_MAX_S on average; a
    # clip of unknown duration counts 0, as the server's wait counts it.
    settings.MEDIA_ROOT = str(tmp_path / "media")
    study = make_study(alice, make_catalogue(alice), 3, practice_trials=0, catch=NO_CATCH)
    study.settings = {**(study.settings or {}), "min_listen_share": share}
    study.save()
    Clip.objects.filter(catalogue=study.catalogue).update(duration_s=3.0)
    config, _ = report_config_for(study)
    full = 9.0 + 3 * PAD_MAX_S
    assert config.listen_seconds_per_trial == pytest.approx({"drums": full, "guitar": full})
    first = study.trials.filter(instrument="drums", is_catch=False).first()
    Clip.objects.filter(pk=first.reference_id).update(duration_s=None)
    fewer = report_config_for(study)[0].listen_seconds_per_trial["drums"]
    main = study.trials.filter(instrument="drums", is_catch=False, is_practice=False).count()
    assert fewer == pytest.approx(full - 3.0 / main)


def test_it_keeps_the_report_when_min_listen_share_changes_as_the_listening_does_not(
    client, alice, sim_study, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    assert _edit(client, sim_study, min_listen_share=0.9).status_code == 302
    first = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    full = 15.0 + 3 * PAD_MAX_S  # the sim study's clips: 5 s each
    assert first.config["listen_seconds_per_trial"] == pytest.approx(
        {"drums": full, "guitar": full}
    )
    planned = [row["listen_seconds_per_trial"] for row in first.tables["power_plan"]]
    assert planned == pytest.approx([full] * len(planned))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert _edit(client, sim_study, min_listen_share=0.5).status_code == 302
    assert not queued and not ReportState.objects.filter(study=sim_study, pending=True).exists()
    page = client.get(reverse("reports:page", args=[sim_study.pk])).content.decode()
    assert 'data-testid="report-outdated"' not in page


def test_it_recomputes_the_report_when_the_setting_changes_shares_under_one_trial(
    client, alice, sim_study, django_capture_on_commit_callbacks
):
    """A cap of 1 gives each of 2 instruments half a trial per participant on average, a cap of
    2 one of each: the plan's counts differ, so the edit queues the report."""
    client.force_login(alice)
    assert _edit(client, sim_study, trials_per_participant=1).status_code == 302
    first = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    assert first.config["design_main_trials"] == {"drums": 0.5, "guitar": 0.5}
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert _edit(client, sim_study, trials_per_participant=2).status_code == 302
    assert len(queued) == 1
    snap = ReportSnapshot.objects.get(pk=recompute_report(sim_study.pk))
    assert snap.config["design_main_trials"] == {"drums": 1, "guitar": 1}
