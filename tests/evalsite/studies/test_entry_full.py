"""A study full for a newcomer: told at the door whenever the fill that assignment counts (answers
plus live reservations, `design_fill`) already leaves no trial, and told truly why (enough
answers, or the remaining trials taken by participants now taking part), also at the late check
after the screening; the places left that the progress page shows the researcher."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evalsite.studies import flow, progress
from evalsite.studies.models import Assignment, Participant, Study
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import DESKTOP_UA, finish, post, to_step, url
from tests.evalsite.studies.return_steps import lapse

pytestmark = pytest.mark.django_db

ENOUGH = "Every trial already has enough answers"
TAKEN = "are being taken by participants taking part now"


def _one_answer_each(experimenter, catalogue, **settings) -> Study:
    """Target 1 answer per main trial, no screening: one participant takes every main trial."""
    return make_study(experimenter, catalogue, target_answers_per_trial=1, screening=False,
                      min_listen_share=0, **settings)  # fmt: skip


def _given_trials(study: Study, pid: str) -> tuple[Client, Participant]:
    """A participant given its trials (at the practice), who stops there."""
    client = Client()
    p = to_step(client, enter(client, study, pid=pid), "instructions")
    post(client, p, "instructions")
    p.refresh_from_db()
    assert p.step == "practice", p.step
    return client, p


def test_it_tells_a_newcomer_at_the_door_when_every_trial_left_is_reserved(
    experimenter, listening_catalogue
):
    study = _one_answer_each(experimenter, listening_catalogue)
    _given_trials(study, "first")  # reserves every main trial, answers none
    door = Client()
    newcomer = enter(door, study, PROLIFIC_PID="pp-door", STUDY_ID="s", SESSION_ID="se")
    assert newcomer.step == "full" and newcomer.finished_at is not None
    page = door.get(url(newcomer)).content.decode()
    assert TAKEN in page and ENOUGH not in page and "return your submission" in page
    japanese = door.get(url(newcomer), {"lang": "ja"}, follow=True).content.decode()
    assert "他の参加者" in japanese


def test_it_lets_a_newcomer_in_once_the_reservations_ran_out(experimenter, listening_catalogue):
    study = _one_answer_each(experimenter, listening_catalogue)
    _, first = _given_trials(study, "first")
    past = timezone.now() - timedelta(seconds=1)
    Assignment.objects.filter(participant=first).update(reserved_until=past)
    assert enter(Client(), study, pid="second").step == "browser_check"


def test_the_late_check_says_the_trials_are_taken_then_that_they_have_enough_answers(
    experimenter, listening_catalogue
):
    study = _one_answer_each(experimenter, listening_catalogue)
    late = Client()
    p = to_step(late, enter(late, study), "instructions")  # let in: nothing reserved yet
    first_client, first = _given_trials(study, "first")  # takes every trial meanwhile
    post(late, p, "instructions")
    p.refresh_from_db()
    assert p.step == "full" and not p.slots.exists()
    page = late.get(url(p)).content.decode()
    assert TAKEN in page and ENOUGH not in page and "try again later" in page
    finish(first_client, first)
    page = late.get(url(p)).content.decode()
    assert ENOUGH in page and TAKEN not in page


def test_progress_shows_reserved_slots_and_the_places_left(
    client, experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=2,
                       trials_per_participant=3, screening=False, min_listen_share=0)  # fmt: skip
    main = study.trials.filter(is_practice=False, is_catch=False).count()
    assert main == 6
    figures = progress.summary(study)
    assert figures["capacity"] == {"open_slots": 12, "per_participant": 3, "places": 4}
    _, first = _given_trials(study, "first")
    figures = progress.summary(study)
    assert figures["capacity"] == {"open_slots": 9, "per_participant": 3, "places": 3}
    reserved = {t.pk: t.n_reserved for t in figures["per_trial"]}
    given = set(first.slots.filter(trial__is_catch=False, trial__is_practice=False)
                .values_list("trial_id", flat=True))  # fmt: skip
    assert reserved == {pk: int(pk in given) for pk in reserved}
    client.force_login(experimenter)
    html = client.get(reverse("studies:progress", args=[study.pk])).content.decode()
    assert "0 / 2 (1 reserved)" in html
    assert "3 more participants" in html


@pytest.mark.parametrize("others", ["answered", "reserved"])
def test_a_participant_back_after_its_trials_were_taken_is_told_which_way(
    experimenter, listening_catalogue, others
):
    study = _one_answer_each(experimenter, listening_catalogue, practice_trials=0,
                             catch={"identical": 0, "attention": 0, "repeat": 0})  # fmt: skip
    away = Client()
    p = to_step(away, enter(away, study, PROLIFIC_PID="pp-away", SESSION_ID="se"), "trials")
    lapse(p)
    next_client = Client()
    nxt = to_step(next_client, enter(next_client, study, pid="next"), "trials")
    if others == "answered":
        finish(next_client, nxt)
    page = away.get(url(p), HTTP_USER_AGENT=DESKTOP_UA, follow=True).content.decode()
    p.refresh_from_db()
    assert p.step == "full" and not p.completion_code
    assert (ENOUGH in page, TAKEN in page) == (others == "answered", others == "reserved")
    assert "return your submission" in page


FREE_NOW = "Trials have become free again"
BACK_LATER = "try again later with the study's link"


@pytest.mark.parametrize(
    "ids", [{"pid": "worker-7"}, {"PROLIFIC_PID": "pp-7", "STUDY_ID": "s", "SESSION_ID": "se-7"}]
)
def test_it_takes_an_id_turned_away_at_the_door_by_reservations_in_once_trials_are_free(
    experimenter, listening_catalogue, ids
):
    study = _one_answer_each(experimenter, listening_catalogue)
    _, holder = _given_trials(study, "holder")
    door = Client()
    p = enter(door, study, **ids)
    assert p.step == "full"
    page = door.get(url(p)).content.decode()
    assert TAKEN in page and "30 minutes" in page and BACK_LATER in page
    counts = progress.participant_counts(study)
    assert (counts["started"], counts["in_progress"], counts["other"]) == (2, 1, 1)
    lapse(holder)  # nothing is reserved any more
    page = door.get(url(p)).content.decode()
    assert FREE_NOW in page and TAKEN not in page and "30 minutes" not in page
    for browser in (Client(), door):  # a fresh browser, then the one it was turned away in
        again = enter(browser, study, **ids)
        assert (again.pk, again.step) == (p.pk, "browser_check")
    counts = progress.participant_counts(study)  # the same participant, counted once
    assert (counts["started"], counts["in_progress"], counts["other"]) == (2, 2, 0)


def test_it_takes_an_id_turned_away_at_start_by_reservations_back_to_the_instructions(
    experimenter, listening_catalogue
):
    study = _one_answer_each(experimenter, listening_catalogue)
    late = Client()
    p = to_step(late, enter(late, study, pid="late"), "instructions")
    _, holder = _given_trials(study, "holder")
    post(late, p, "instructions")
    p.refresh_from_db()
    assert p.step == "full"
    assert enter(Client(), study, pid="late").step == "full"  # still reserved: still turned away
    lapse(holder)
    again = enter(Client(), study, pid="late")
    assert (again.pk, again.step) == (p.pk, "instructions")  # consent and screening kept


def test_it_keeps_an_id_turned_away_because_every_trial_has_its_answers_out_for_good(
    experimenter, listening_catalogue
):
    study = _one_answer_each(experimenter, listening_catalogue)
    holder_client, holder = _given_trials(study, "holder")
    finish(holder_client, holder)
    door = Client()
    p = enter(door, study, pid="too-late")
    page = door.get(url(p)).content.decode()
    assert p.step == "full" and ENOUGH in page and BACK_LATER not in page
    assert "<h1>The study is full</h1>" in page
    again = enter(Client(), study, pid="too-late")
    assert (again.pk, again.step) == (p.pk, "full")


def test_the_temporary_full_page_has_its_own_heading_in_both_languages(
    experimenter, listening_catalogue
):
    study = _one_answer_each(experimenter, listening_catalogue, languages=["en", "ja"])
    _given_trials(study, "holder")
    door = Client()
    p = enter(door, study, pid="x1")
    english = door.get(url(p)).content.decode()
    assert (
        "<h1>The study is full</h1>" not in english and "<h1>No trial is free now</h1>" in english
    )
    japanese = door.get(url(p), {"lang": "ja"}, follow=True).content.decode()
    assert (
        "募集は終了しました" not in japanese
        and "<h1>現在、空いている試行がありません</h1>" in japanese
    )


def test_it_takes_no_one_turned_away_for_now_into_a_paused_study_and_none_back_once_closed(
    experimenter, listening_catalogue
):
    study = _one_answer_each(experimenter, listening_catalogue)
    _, holder = _given_trials(study, "holder")
    door = Client()
    p = enter(door, study, pid="worker-8")
    lapse(holder)
    study.status = Study.Status.PAUSED
    study.save()
    assert enter(Client(), study, pid="worker-8").step == "full"
    study.status = Study.Status.CLOSED
    study.save()
    page = door.get(url(p)).content.decode()
    assert "<h1>The study has closed</h1>" in page and BACK_LATER not in page


PAGES = {  # what the page of an id turned away for now says once the study is paused or closed
    ("paused", "en"): ("<h1>The study is paused</h1>", "not open at the moment"),
    ("paused", "ja"): ("<h1>この実験は一時停止中です</h1>", "この実験は現在受け付けていません"),
    ("closed", "en"): ("<h1>The study has closed</h1>", "no longer accepting participants"),
    ("closed", "ja"): ("<h1>この実験は終了しました</h1>", "この実験の受付は終了しました"),
}
WRONG = (FREE_NOW, "Open the study's link again", "given to other participants", TAKEN,
         "試行に空きが出ました", "他の参加者に割り当てられました")  # fmt: skip


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("status", ["paused", "closed"])
def test_an_id_turned_away_for_now_is_told_the_study_is_paused_or_closed(
    experimenter, listening_catalogue, status, lang
):
    """Trials free again, but the study paused (`flow.resume` takes no one back then) or closed:
    the page says so, not "open the link again" nor "given to others" (findings_rpf2.md, 2)."""
    study = _one_answer_each(experimenter, listening_catalogue, languages=["en", "ja"])
    _, holder = _given_trials(study, "holder")
    door = Client()
    p = enter(door, study, PROLIFIC_PID="pp-9", SESSION_ID="se-9", lang=lang)
    assert p.step == "full"
    lapse(holder)
    Study.objects.filter(pk=study.pk).update(status=status)
    page = door.get(url(p)).content.decode()
    heading, text = PAGES[(status, lang)]
    assert heading in page and text in page
    assert not [w for w in WRONG if w in page]
    returning = "提出を取り消して" if lang == "ja" else "please return your submission"
    assert returning in page
    assert enter(Client(), study, PROLIFIC_PID="pp-9", SESSION_ID="se-9").step == "full"


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_final_full_page_joins_its_two_sentences_as_its_language_does(
    experimenter, listening_catalogue, lang
):
    """The page of an id turned away for good, while the trials are reserved and once they were
    given to others: English puts a space between the sentences, Japanese none after "。"
    (findings_ra11y F3)."""
    study = _one_answer_each(experimenter, listening_catalogue, languages=["en", "ja"])
    _, holder = _given_trials(study, "holder")
    door = Client()
    p = enter(door, study, pid="final-1", lang=lang)
    p.state.pop(flow.FULL_FOR_NOW)  # turned away for good, not for now: no retry
    p.save(update_fields=["state"])
    joins = {
        "en": ("taking part now. Thank you for your interest", "other participants. Thank you"),
        "ja": ("割り当てられています。ご関心", "割り当てられました。ご関心"),
    }[lang]
    for join in joins:
        page = door.get(url(p)).content.decode()
        assert join in page and "。 " not in page
        lapse(holder)  # the trials it held are given to no one now: "were given to others"
