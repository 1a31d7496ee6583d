"""Practice trials and the study's Practice trials setting (practice_clips.setting_lines): each
participant gets only the first `practice_trials` practice trials by id (design.assign), so the
Trials page, the Overview and the message after adding trials by form or CSV say which practice
trials are never shown, or that participants get fewer than the setting asks for; the clip
warnings concern only the practice trials participants are shown."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from evalsite.studies import design
from evalsite.studies.models import Study
from tests.evalsite.studies.conftest import participant

pytestmark = pytest.mark.django_db


def _pages(client, study) -> tuple[str, str]:
    trials = client.get(reverse("studies:trials", args=[study.pk])).content.decode()
    detail = client.get(reverse("studies:study_detail", args=[study.pk])).content.decode()
    return trials, detail


def _practice_csv_on_attention_clips(study) -> str:
    """One practice row with the clips of the drums attention catch trial (a clip warning when
    shown) and one on main-trial clips in another order."""
    attention = study.trials.get(catch_kind="attention", instrument="drums")
    main = study.trials.filter(is_practice=False, is_catch=False).first()
    return (
        "reference,candidate_a,candidate_b,instrument,is_practice,catch_kind,expected\n"
        f"{attention.reference_id},{attention.candidate_b_id},{attention.candidate_a_id},"
        "drums,true,,a\n"
        f"{main.candidate_a_id},{main.reference_id},{main.candidate_b_id},drums,yes,,a\n"
    )


def _add_csv(client, study, csv: str) -> str:
    url = reverse("studies:trials_csv", args=[study.pk])
    upload = SimpleUploadedFile("t.csv", csv.encode())
    return client.post(url, {"csv_file": upload}, follow=True).content.decode()


def test_it_says_at_once_and_on_both_pages_that_practice_beyond_the_setting_is_never_shown(
    client, experimenter, listening_study
):
    first = list(listening_study.trials.filter(is_practice=True).values_list("id", flat=True))
    client.force_login(experimenter)
    page = _add_csv(client, listening_study, _practice_csv_on_attention_clips(listening_study))
    added = sorted(
        listening_study.trials.filter(is_practice=True)
        .exclude(id__in=first)
        .values_list("id", flat=True)
    )
    line = (
        f"The Practice trials setting is 2: participants get the first 2 practice trials by id "
        f"({first[0]}, {first[1]}); practice trials {added[0]}, {added[1]} are never shown."
    )
    assert "2 trial(s) added from CSV." in page
    assert line in page  # the message right after the upload
    assert "raise Practice trials to 4 in Settings" in page
    for shown in _pages(client, listening_study):
        assert line in shown
        # the unshown trial's clips give nothing away: no warning sends the researcher to fix it
        assert f"Practice trial {added[0]} has the clips" not in shown
    taker = participant(listening_study, seed=5)
    assert design.assign(taker, timezone.now())
    got = [s.trial_id for s in taker.slots.filter(trial__is_practice=True)]
    assert got == first


def test_it_warns_of_a_practice_trials_clips_once_the_setting_shows_it(
    client, experimenter, listening_study
):
    client.force_login(experimenter)
    _add_csv(client, listening_study, _practice_csv_on_attention_clips(listening_study))
    listening_study.settings = {**listening_study.settings, "practice_trials": 4}
    listening_study.save()
    added = listening_study.trials.filter(is_practice=True).order_by("id")[2]
    for page in _pages(client, listening_study):
        assert f"Practice trial {added.pk} has the clips of attention catch trial" in page
        assert "never shown" not in page and "The Practice trials setting" not in page


def test_it_says_when_a_trial_added_by_form_is_a_practice_trial_no_one_gets(
    client, experimenter, listening_study
):
    main = listening_study.trials.filter(is_practice=False, is_catch=False).first()
    client.force_login(experimenter)
    data = {"reference": main.candidate_b_id, "candidate_a": main.reference_id,
            "candidate_b": main.candidate_a_id, "instrument": main.instrument,
            "is_practice": "on", "expected": "a"}  # fmt: skip
    url = reverse("studies:trial_add", args=[listening_study.pk])
    page = client.post(url, data, follow=True).content.decode()
    added = listening_study.trials.latest("id")
    assert added.is_practice
    assert f"practice trial {added.pk} is never shown." in page
    assert page.count("is never shown") == 2  # the message and the page's own line


@pytest.mark.parametrize(
    "setting, says", [(4, "participants get only those 2"), (0, "no practice")]
)
def test_it_says_when_participants_get_fewer_practice_trials_than_the_setting(
    client, experimenter, listening_study, setting, says
):
    listening_study.settings = {**listening_study.settings, "practice_trials": setting}
    listening_study.save()
    client.force_login(experimenter)
    for page in _pages(client, listening_study):
        assert f"The Practice trials setting is {setting}" in page
        assert says in page


def test_it_says_nothing_of_practice_for_a_study_without_trials(client, experimenter):
    study = Study.objects.create(owner=experimenter, name="empty", instruments=["drums"])
    client.force_login(experimenter)
    for page in _pages(client, study):
        assert "Practice trials setting" not in page


def test_the_trials_page_of_a_closed_study_drops_the_practice_warnings_as_the_overview_does(
    client, experimenter, listening_study
):
    client.force_login(experimenter)
    _add_csv(client, listening_study, _practice_csv_on_attention_clips(listening_study))
    listening_study.settings = {**listening_study.settings, "practice_trials": 3}
    listening_study.save()
    trials, detail = _pages(client, listening_study)
    assert "practice-warning" in trials and "practice-warning" in detail
    listening_study.status = Study.Status.CLOSED
    listening_study.save()
    for page in _pages(client, listening_study):
        assert "practice-warning" not in page
