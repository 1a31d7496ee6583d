"""The feedback after a practice answer explains it by how the trial was built, checked from its
clips: "the same <instrument> part" only for a candidate built from the reference's stem of the
judged instrument (an attention set), "the reference itself" for an identical candidate, else only
which answer was expected (e.g. a CSV trial of three unrelated pieces). An answer sent from a
second window after the trial was answered in the first is told that the feedback shown is the
first window's; one from a window further behind (the first window has moved on to a later trial)
is told its answer was not saved, and is shown no later trial's feedback as its own."""

from __future__ import annotations

import pytest

from evalsite.studies.models import Participant, Trial
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    acknowledge,
    answer,
    answer_current,
    open_trial,
    to_step,
    url,
)
from tests.evalsite.studies.practice_sets import add_spare_attention_sets

pytestmark = pytest.mark.django_db

STEMS = {"en": "had the same drums part as the reference", "ja": "参照と同じドラムのパート"}
EXPECTED = {"en": "The expected answer was {}.", "ja": "正解は {} でした。"}


def _feedback_page(client, study, lang: str) -> tuple[str, str]:
    """The first practice trial's feedback page (after a right answer) and its expected position."""
    p = to_step(client, enter(client, study, lang=lang), "practice")
    Participant.objects.filter(pk=p.pk).update(language=lang)
    slot, _ = answer_current(client, p, expected=True)
    return client.get(url(p)).content.decode(), p.state["feedback"]["position"]


def _first_practice(study) -> Trial:
    trial = study.trials.filter(is_practice=True, instrument="drums").first()
    assert trial is not None
    study.trials.filter(is_practice=True).exclude(pk=trial.pk).delete()
    return trial


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_it_explains_a_stem_built_practice_trial_by_its_shared_part(
    client, experimenter, listening_catalogue, lang
):
    # practice is built from attention sets no catch trial uses: one more than the catch trials
    add_spare_attention_sets(listening_catalogue)
    study = make_study(experimenter, listening_catalogue)
    trial = _first_practice(study)
    assert trial.candidate_a.meta.get("kind") == "attention"  # built from the attention set
    page, position = _feedback_page(client, study, lang)
    assert STEMS[lang] in page
    assert EXPECTED[lang].format(position) not in page


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_it_says_only_the_expected_answer_for_three_unrelated_pieces(client, listening_study, lang):
    trial = _first_practice(listening_study)
    ref, a, b = listening_study.catalogue.clips.filter(meta={}).order_by("id")[:3]
    Trial.objects.filter(pk=trial.pk).update(reference=ref, candidate_a=a, candidate_b=b,
                                             expected="a")  # fmt: skip
    page, position = _feedback_page(client, listening_study, lang)
    assert EXPECTED[lang].format(position) in page
    assert STEMS[lang] not in page


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_it_does_not_claim_a_shared_part_for_stems_of_another_reference(
    client, listening_study, lang
):
    trial = _first_practice(listening_study)
    other = listening_study.catalogue.clips.filter(meta={}).exclude(pk=trial.reference_id)[0]
    Trial.objects.filter(pk=trial.pk).update(reference=other)
    page, position = _feedback_page(client, listening_study, lang)
    assert EXPECTED[lang].format(position) in page
    assert STEMS[lang] not in page


def test_a_practice_answer_from_a_second_window_is_told_the_trial_was_answered_there(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    slot = open_trial(client, p)  # both windows show this practice trial
    answer(client, p, slot, "A")  # the first window's answer: its feedback is stored
    response = answer(client, p, slot, "B", step="practice")  # the second window's
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert 'id="answered-elsewhere"' in page and "another window" in page
    assert 'id="feedback"' in page
    assert 'id="answered-elsewhere"' not in client.get(url(p)).content.decode()  # said once
    p.refresh_from_db()
    assert p.answers.get(trial=slot.trial).chosen_position == "A"  # the first one is kept


def _answer_first_practice_in_a_window_left_behind(client, p, move_on) -> tuple[str, str]:
    """Window B keeps the first practice trial open while window A answers it, continues and
    `move_on(client, p)`; then window B's answer (refused) is sent. Window B's page after it."""
    first = open_trial(client, p)  # window B keeps showing this practice trial
    answer(client, p, first, "A")  # window A answers it ...
    acknowledge(client, p)  # ... and continues
    move_on(client, p)
    response = answer(client, p, first, "B", step="practice")  # window B's answer
    assert response["Location"].endswith(f"?answered={first.pk}")
    page = client.get(response["Location"], HTTP_USER_AGENT=DESKTOP_UA).content.decode()
    return page, client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).content.decode()


def _answer_the_next_practice_trial(client, p):
    p.refresh_from_db()
    second = open_trial(client, p)
    assert p.step == "practice" and second.trial.is_practice
    answer(client, p, second, "A")  # its feedback is now the one stored


def test_a_window_two_practice_trials_behind_is_told_and_shown_no_later_trials_feedback(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    page, then = _answer_first_practice_in_a_window_left_behind(
        client, p, _answer_the_next_practice_trial
    )
    assert 'id="answered-elsewhere"' in page and "was not saved" in page
    assert 'id="feedback"' not in page and "feedback below" not in page
    assert 'id="continue"' in page
    # Continue: the current step's page, the second trial's feedback, without the note
    assert 'id="feedback"' in then and 'id="answered-elsewhere"' not in then


def test_a_window_behind_a_practice_trial_not_yet_answered_is_told_its_answer_was_not_saved(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    page, then = _answer_first_practice_in_a_window_left_behind(client, p, lambda c, p: None)
    assert 'id="answered-elsewhere"' in page and "was not saved" in page
    assert 'id="feedback"' not in page and "data-answer" not in page and 'id="continue"' in page
    assert "data-answer" in then and 'id="answered-elsewhere"' not in then  # the next trial


def test_the_note_to_a_window_left_behind_is_in_japanese_for_a_japanese_participant(
    client, listening_study
):
    p = to_step(client, enter(client, listening_study), "practice")
    Participant.objects.filter(pk=p.pk).update(language="ja")
    page, _ = _answer_first_practice_in_a_window_left_behind(
        client, p, _answer_the_next_practice_trial
    )
    assert "別のウィンドウで回答済み" in page and "was not saved" not in page
    assert "フィードバック" not in page
