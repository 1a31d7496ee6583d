"""Practice trials give nothing away (evalsite/studies/practice_clips.py): their feedback names the
right candidate, so a practice trial never has a candidate of a catch trial with a right answer
(identical, attention), nor the clip set of any other trial; where the catalogue has no spare
clips the design makes fewer and says so; trials added by hand or CSV get a warning instead."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evalsite.studies.models import Study
from evalsite.studies.random_design import build_random_trials
from tests.evalsite.studies.conftest import make_catalogue, make_study
from tests.evalsite.studies.practice_sets import (
    add_spare_attention_sets,
    assert_practice_gives_nothing_away,
)

pytestmark = pytest.mark.django_db


def test_it_never_gives_a_practice_trial_the_clips_of_a_catch_trial(listening_study):
    # the fixture's one attention set per instrument is taken by the attention catch trials
    assert_practice_gives_nothing_away(listening_study)
    practice = listening_study.trials.filter(is_practice=True)
    assert practice.count() == 2  # identical-candidate practice on mixes no check has as candidates
    assert all(t.reference_id in (t.candidate_a_id, t.candidate_b_id) for t in practice)
    notes = " ".join(listening_study.design["practice_notes"])
    assert "drums: practice trials use an identical candidate" in notes
    assert "attention set(s) for it are used by catch trials" in notes


def test_it_practises_on_a_spare_attention_set_where_the_catalogue_has_one(experimenter):
    catalogue = make_catalogue(experimenter)
    add_spare_attention_sets(catalogue)
    study = make_study(experimenter, catalogue)
    assert_practice_gives_nothing_away(study)
    practice = study.trials.filter(is_practice=True)
    assert practice.count() == 2
    assert all(t.candidate_a.meta.get("kind") == "attention" for t in practice)
    assert study.design["practice_notes"] == []


@pytest.mark.parametrize("seed", range(6))
def test_it_keeps_practice_off_catch_clips_for_any_seed(experimenter, listening_catalogue, seed):
    study = Study.objects.create(owner=experimenter, name=f"s{seed}",
                                 instruments=["drums", "guitar"])  # fmt: skip
    build_random_trials(study, listening_catalogue, 3, seed=seed, practice=4, catch_per_kind=1)
    assert_practice_gives_nothing_away(study)


def test_it_makes_fewer_practice_trials_and_says_so_when_no_clip_is_spare(client, experimenter):
    catalogue = make_catalogue(experimenter, pieces=4)
    study = Study.objects.create(owner=experimenter, name="few", instruments=["drums", "guitar"])
    # 6 identical checks per instrument: every one of the 4 mixes is a candidate of one
    build_random_trials(study, catalogue, 2, seed=1, practice=2, catch_per_kind=6)
    assert_practice_gives_nothing_away(study)
    made = study.trials.filter(is_practice=True).count()
    assert made < 2
    notes = study.design["practice_notes"]
    assert any(f"{made} of 2 practice trials" in n for n in notes), notes
    client.force_login(experimenter)
    page = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    assert f"{made} of 2 practice trials" in page


def test_it_tells_the_experimenter_after_a_draw_what_practice_it_made(
    client, experimenter, listening_catalogue
):
    study = Study.objects.create(owner=experimenter, name="draw", instruments=["drums"],
                                 catalogue=listening_catalogue)  # fmt: skip
    client.force_login(experimenter)
    data = {"per_instrument": 2, "catch_per_kind": 1, "seed": 0}
    response = client.post(reverse("studies:trials_random", args=[study.pk]), data, follow=True)
    page = response.content.decode()
    assert "drums: practice trials use an identical candidate" in page
    assert_practice_gives_nothing_away(study)


def test_it_warns_when_a_hand_made_practice_trial_shares_clips_with_a_catch_trial(
    client, experimenter, listening_study
):
    attention = listening_study.trials.get(catch_kind="attention", instrument="drums")
    ref, a, b = attention.reference, attention.candidate_b, attention.candidate_a
    csv = (
        "reference,candidate_a,candidate_b,instrument,is_practice,catch_kind,expected\n"
        f"{ref.pk},{a.pk},{b.pk},drums,true,,{'b' if attention.expected == 'a' else 'a'}\n"
    )
    # a third practice trial is shown once the setting is 3 (test_practice_setting: else none is)
    listening_study.settings = {**listening_study.settings, "practice_trials": 3}
    listening_study.save()
    client.force_login(experimenter)
    url = reverse("studies:trials_csv", args=[listening_study.pk])
    upload = SimpleUploadedFile("t.csv", csv.encode())
    page = client.post(url, {"csv_file": upload}, follow=True).content.decode()
    added = listening_study.trials.filter(is_practice=True).latest("id")
    warning = f"Practice trial {added.pk} has the clips of attention catch trial {attention.pk}"
    assert warning in page
    detail = reverse("studies:study_detail", args=[listening_study.pk])
    assert warning in client.get(detail).content.decode()


def test_it_does_not_warn_about_practice_trials_a_draw_made(client, experimenter, listening_study):
    client.force_login(experimenter)
    page = client.get(reverse("studies:study_detail", args=[listening_study.pk]))
    assert "Practice trial" not in page.content.decode()
