"""A participant coming back after its reservations lapsed: trials that went to others and reached
their target meanwhile are taken out of its list (`design_return`), the rest re-reserved."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace as T

import pytest
from django.test import Client
from django.utils import timezone

from evalsite.stimuli.models import piece_key
from evalsite.studies import design, design_order, flow_trials
from evalsite.studies.models import Answer, Assignment, Participant, Trial
from tests.evalsite.studies.conftest import enter, make_study
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer,
    answer_current,
    client_log,
    finish,
    listened,
    open_trial,
    post,
    to_step,
    url,
)
from tests.evalsite.studies.return_steps import (
    answer_elsewhere,
    lapse,
    to_a_main_trial,
    to_main_trials,
)


def main_answers(study) -> Counter:
    rows = Answer.objects.filter(
        trial__study=study, trial__is_practice=False, trial__is_catch=False
    )
    return Counter(rows.values_list("trial_id", flat=True))


def indices(p: Participant) -> list[int]:
    return list(p.slots.order_by("index").values_list("index", flat=True))


def break_the_rule_before(slot: Assignment) -> None:
    """Give the slot's trial the reference of the trial just before it: an order rule the
    seed's own order broke (common with few references), not one a return broke."""
    previous = Assignment.objects.select_related("trial").get(
        participant_id=slot.participant_id, index=slot.index - 1
    )
    Trial.objects.filter(pk=slot.trial_id).update(reference_id=previous.trial.reference_id)


def order(p: Participant) -> list[tuple[int, int, int]]:
    return list(p.slots.order_by("index").values_list("pk", "index", "trial_id"))


@pytest.mark.django_db
def test_it_takes_out_the_trials_that_others_answered_to_their_target_meanwhile(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    first, second = Client(), Client()
    p1 = to_step(first, enter(first, study, pid="away"), "practice")
    lapse(p1)
    p2 = finish(second, to_step(second, enter(second, study, pid="next"), "practice"))
    assert p2.step == "done"
    assert max(main_answers(study).values()) == 1
    first.get(url(p1), HTTP_USER_AGENT=DESKTOP_UA)  # back: every main trial was taken meanwhile
    p1.refresh_from_db()
    # Its practice and checks would give the study nothing without a main trial to go with
    # them: it is not kept at them for a completion code, and holds no slot.
    assert p1.step == "full" and not p1.completion_code and not p1.slots.exists()
    assert not Answer.objects.filter(participant=p1).exists()


@pytest.mark.django_db
def test_it_keeps_the_checks_of_a_participant_that_has_main_trials_left(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    first = Client()
    p1 = to_step(first, enter(first, study, pid="away"), "practice")
    lapse(p1)
    mains = [s.trial for s in p1.slots.select_related("trial") if _is_main(s.trial)]
    answer_elsewhere(study, mains[1:])  # all but one of its main trials reached their target
    p1 = finish(first, p1)
    assert p1.step == "done"  # completes as normal, with the one main trial left
    assert indices(p1) == list(range(p1.slots.count()))
    assert not p1.slots.filter(trial__catch_kind="repeat", trial__repeat_of__in=mains[1:]).exists()
    kept = {"identical", "attention", ""}  # the other checks and the practice stay
    assert kept <= set(p1.slots.values_list("trial__catch_kind", flat=True))
    assert [t for t, n in main_answers(study).items() if n > 1] == []


@pytest.mark.django_db
def test_it_tells_a_participant_with_only_practice_answered_that_the_study_is_full(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    client = Client()
    p = to_main_trials(client, to_step(client, enter(client, study, pid="away"), "practice"))
    practice_answers = Answer.objects.filter(participant=p).count()
    assert practice_answers > 0
    lapse(p)
    answer_elsewhere(study, [s.trial for s in p.slots.select_related("trial") if _is_main(s.trial)])
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    p.refresh_from_db()
    assert p.step == "full" and not p.completion_code
    # What it answered stays stored with its slots (the export shows it); nothing else is held.
    answered = set(Answer.objects.filter(participant=p).values_list("trial_id", flat=True))
    assert set(p.slots.values_list("trial_id", flat=True)) == answered
    assert len(answered) == practice_answers


@pytest.mark.django_db
def test_it_completes_a_participant_that_answered_main_trials_when_the_rest_were_taken(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1,
                       catch={"identical": 0, "attention": 0, "repeat": 0})  # fmt: skip
    client = Client()
    p = to_main_trials(client, to_step(client, enter(client, study, pid="away"), "practice"))
    for _ in range(2):
        answer_current(client, p)
    lapse(p)
    rest = [s.trial for s in p.slots.select_related("trial") if _is_main(s.trial)][2:]
    answer_elsewhere(study, rest)  # everything it had left reached its target meanwhile
    for _ in range(2):  # the return's recheck reads the page again, which finds it complete
        client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    p.refresh_from_db()
    # Its two main answers are data the study keeps and counts: it is paid with its code.
    assert p.step == "done" and p.completion_code
    assert not p.slots.filter(trial__in=rest).exists()


def _is_main(trial: Trial) -> bool:
    return not (trial.is_practice or trial.is_catch)


@pytest.mark.django_db
def test_it_renumbers_and_re_reserves_what_stays_in_its_order(experimenter, listening_catalogue):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    client = Client()
    p = to_main_trials(client, to_step(client, enter(client, study), "practice"))
    answered = list(p.slots.order_by("index").values_list("pk", "index")[:2])  # the practice
    before = list(p.slots.order_by("index").select_related("trial")[2:])
    lapse(p)
    repeat = next(s.trial for s in before if s.trial.catch_kind == "repeat")
    taken = [repeat.repeat_of, next(s.trial for s in before if not s.trial.is_catch
                                    and s.trial_id != repeat.repeat_of_id)]  # fmt: skip
    answer_elsewhere(study, taken)
    now = timezone.now()
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 302  # read again
    assert list(p.slots.order_by("index").values_list("pk", "index")[:2]) == answered
    after = list(p.slots.order_by("index").select_related("trial")[2:])
    gone = {t.pk for t in taken} | {repeat.pk}
    left = [s.trial_id for s in before if s.trial_id not in gone]  # in their order, repaired
    refs = {t.id: t for t in design.trial_refs(study.trials.all())}  # where a rule broke
    last_practice = refs[p.slots.get(index=1).trial_id]
    seen = [last_practice.id, *(s.trial_id for s in before)]  # the pairs the seed placed
    expected = design_order.repair_order([refs[t] for t in left], before=last_practice,
                                         adjacent=set(zip(seen, seen[1:])))  # fmt: skip
    assert [s.trial_id for s in after] == [t.id for t in expected]
    assert indices(p) == list(range(len(answered) + len(after)))
    assert all(s.reserved_until > now for s in after)
    moved = [s for s in after if s.index != next(b.index for b in before if b.pk == s.pk)]
    assert moved and all(s.answerable_ms is None and s.shown_at is None for s in moved)
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 200
    assert finish(client, p).step == "done"
    assert max(main_answers(study).values()) == 1


@pytest.mark.django_db
def test_it_stores_nothing_from_a_page_whose_trial_was_taken_out(experimenter, listening_catalogue):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    client, other_tab = Client(), Client()
    p = to_step(client, enter(client, study), "practice")
    shown = to_a_main_trial(client, p)  # the page stays open while the participant is away
    lapse(p)
    answer_elsewhere(study, [shown.trial])
    response = post(
        client, p, "trials", index=shown.index, slot=shown.pk, choice="A", log=client_log()
    )
    assert response.status_code == 302 and "early" not in response["Location"]
    assert not Answer.objects.filter(participant=p, trial=shown.trial).exists()
    assert not p.slots.filter(trial=shown.trial).exists()
    p.refresh_from_db()
    assert p.early_answers == 0  # not a script's answer
    # the next slot took its number: from a page still showing the old one nothing is stored
    listened(Assignment.objects.get(participant=p, index=shown.index))
    other_tab.cookies = client.cookies
    post(other_tab, p, "trials", index=shown.index, slot=shown.pk, choice="A", log=client_log())
    assert not Answer.objects.filter(participant=p, trial_index=shown.index).exists()
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 200


@pytest.mark.django_db
def test_it_stores_nothing_from_an_old_tab_once_another_tab_showed_the_slot_now_at_its_number(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    client, other_tab = Client(), Client()
    p = to_step(client, enter(client, study), "practice")
    shown = to_a_main_trial(client, p)  # tab 1 shows it, and stays open while the participant
    lapse(p)  # is away past the timeout; meanwhile others bring its trial to the target
    answer_elsewhere(study, [shown.trial])
    other_tab.cookies = client.cookies  # tab 2 opens the page: the list is checked again
    assert other_tab.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 302
    page = other_tab.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    now_at = page.context["slot"]  # the next trial took the number, and tab 2 shows it
    assert now_at.index == shown.index and now_at.trial_id != shown.trial_id
    listened(Assignment.objects.get(pk=now_at.pk))  # its listening time has passed
    old_page = post(client, p, "trials", index=shown.index, slot=shown.pk, choice="A",
                    log=client_log())  # fmt: skip
    assert old_page.status_code == 302 and old_page["Location"] == url(p)  # the current trial
    assert not Answer.objects.filter(participant=p).filter(trial_index=shown.index).exists()
    p.refresh_from_db()
    assert p.early_answers == 0
    answer(other_tab, p, now_at)  # tab 2's own answer is stored, for the trial it showed
    assert Answer.objects.get(participant=p, trial_index=shown.index).trial_id == now_at.trial_id


@pytest.mark.django_db
def test_it_names_a_renumbered_slots_sounds_by_the_slot_so_no_cached_clip_is_replayed(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    client = Client()
    p = to_step(client, enter(client, study), "practice")
    shown = to_a_main_trial(client, p)
    old_urls = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).context["audio"]
    assert client.get(old_urls["A"])["Cache-Control"] == "private, max-age=3600"
    lapse(p)
    answer_elsewhere(study, [shown.trial])
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)  # checked again: the next trial is at its number
    page = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert page.context["slot"].index == shown.index
    new_urls = page.context["audio"]
    assert set(new_urls.values()).isdisjoint(old_urls.values())  # a browser's cache has none
    assert all(client.get(u).status_code == 404 for u in old_urls.values())
    assert all(client.get(u).status_code == 200 for u in new_urls.values())


@pytest.mark.django_db
def test_it_stores_the_answer_of_a_page_left_open_whose_trial_is_still_wanted(listening_study):
    client = Client()
    p = to_main_trials(client, to_step(client, enter(client, listening_study), "practice"))
    shown = open_trial(client, p)
    lapse(p)
    now = timezone.now()
    post(client, p, "trials", index=shown.index, slot=shown.pk, choice="B", log=client_log())
    assert Answer.objects.filter(participant=p, trial=shown.trial).exists()
    assert not p.slots.filter(index__gt=shown.index, reserved_until__lte=now).exists()


def test_it_repairs_only_the_order_rules_a_removal_broke():
    def t(i, ref, catch=False, repeat_of=None, piece=None):
        return T(id=i, reference_id=ref, reference_piece=piece or piece_key(ref, None, "", ""),
                 is_catch=catch, repeat_of_id=repeat_of)  # fmt: skip

    kept = [t(1, 10), t(2, 11), t(3, 11), t(4, 12), t(5, 13, True), t(6, 14)]  # 2, 3 clash
    repaired = design_order.repair_order(kept)
    assert design_order.violations(repaired) == 0
    assert [x.id for x in repaired] == [1, 2, 4, 3, 5, 6]  # one swap; the catch trial stays
    close = [t(1, 10), t(2, 11), t(7, 11, True, repeat_of=2), t(4, 12), t(8, 15, True)]
    repaired = design_order.repair_order(close)
    assert design_order.violations(repaired) == 0 and repaired[2].is_catch
    untouched = [t(1, 10), t(2, 11), t(4, 12)]
    assert design_order.repair_order(untouched, before=t(0, 9)) == untouched
    # 1, 2 share a reference as the seed placed them; 3, 4 only since 9 between them went
    seeded = [1, 2, 3, 9, 4, 5]
    kept = [t(1, 10), t(2, 10), t(3, 11), t(4, 11), t(5, 12)]
    repaired = design_order.repair_order(kept, adjacent=set(zip(seeded, seeded[1:])))
    assert [x.id for x in repaired] == [1, 2, 3, 5, 4]
    # 2 and 3 have two clips of one piece as references: back to back once 9 between them went
    song = piece_key(11, 1, "uploads", "song")
    seeded = [1, 2, 9, 3, 4]
    kept = [t(1, 10), t(2, 11, piece=song), t(3, 12, piece=song), t(4, 13)]
    repaired = design_order.repair_order(kept, adjacent=set(zip(seeded, seeded[1:])))
    assert [x.id for x in repaired] == [1, 2, 4, 3]
    assert design_order.violations(repaired) == 0


@pytest.mark.django_db
def test_it_keeps_the_list_as_it_was_when_nothing_was_taken_out(experimenter, listening_catalogue):
    study = make_study(experimenter, listening_catalogue)  # target 2: no trial fills up here
    client = Client()
    p = to_main_trials(client, to_step(client, enter(client, study), "practice"))
    current = flow_trials.current_slot(p)
    break_the_rule_before(current)
    was = order(p)
    lapse(p)
    now = timezone.now()
    response = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert response.status_code == 200 and response.context["slot"].pk == current.pk
    assert order(p) == was  # the seed's own break stays: a return repairs only its own
    assert not p.slots.filter(index__gte=current.index, reserved_until__lte=now).exists()
    listened(current)
    post(client, p, "trials", index=current.index, slot=current.pk, choice="A", log=client_log())
    assert Answer.objects.filter(participant=p, trial_id=current.trial_id,
                                 trial_index=current.index).exists()  # fmt: skip
    p.refresh_from_db()
    assert p.early_answers == 0


@pytest.mark.django_db
def test_it_stores_the_answer_of_a_page_left_open_when_nothing_was_taken_out(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue)
    client = Client()
    p = to_main_trials(client, to_step(client, enter(client, study), "practice"))
    shown = open_trial(client, p)
    break_the_rule_before(shown)
    was = order(p)
    lapse(p)
    post(client, p, "trials", index=shown.index, slot=shown.pk, choice="A", log=client_log())
    assert Answer.objects.filter(participant=p, trial_id=shown.trial_id,
                                 trial_index=shown.index).exists()  # fmt: skip
    assert order(p) == was


@pytest.mark.django_db
def test_it_never_moves_the_current_slot_when_later_trials_are_taken_out(
    experimenter, listening_catalogue
):
    study = make_study(experimenter, listening_catalogue, target_answers_per_trial=1)
    client = Client()
    p = to_step(client, enter(client, study), "practice")
    shown = to_a_main_trial(client, p)  # its page is open
    break_the_rule_before(shown)
    later = next(s.trial for s in p.slots.filter(index__gt=shown.index).select_related("trial")
                 if not s.trial.is_catch)  # fmt: skip
    lapse(p)
    answer_elsewhere(study, [later])
    assert client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA).status_code == 302  # read again
    assert not p.slots.filter(trial=later).exists()
    assert Assignment.objects.get(participant=p, index=shown.index).pk == shown.pk
    response = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert response.context["slot"].pk == shown.pk
    post(client, p, "trials", index=shown.index, slot=shown.pk, choice="A", log=client_log())
    assert Answer.objects.filter(participant=p, trial_id=shown.trial_id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("back_by", ["page", "answer"])
def test_it_tells_a_participant_left_with_no_trial_that_the_study_is_full(
    experimenter, listening_catalogue, back_by
):
    study = make_study(
        experimenter,
        listening_catalogue,
        target_answers_per_trial=1,
        practice_trials=0,
        catch={"identical": 0, "attention": 0, "repeat": 0},
    )
    client = Client()  # fmt: skip
    p = to_step(client, enter(client, study), "trials")
    shown = open_trial(client, p)
    lapse(p)
    answer_elsewhere(study, [s.trial for s in p.slots.select_related("trial")])
    if back_by == "answer":
        post(client, p, "trials", index=shown.index, slot=shown.pk, choice="A", log=client_log())
    else:
        client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)
    assert Participant.objects.get(pk=p.pk).step == "full"  # moved by the recheck itself
    response = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA, follow=True)
    assert response.status_code == 200 and "studies/participant/full.html" in (
        t.name for t in response.templates
    )
    p.refresh_from_db()
    assert p.step == "full" and p.finished_at is not None and not p.slots.exists()
    assert not Answer.objects.filter(participant=p).exists()


@pytest.mark.django_db
def test_it_never_loops_on_the_trial_page_of_a_participant_without_slots(listening_study):
    client = Client()
    p = to_step(client, enter(client, listening_study), "practice")
    p.slots.all().delete()
    Participant.objects.filter(pk=p.pk).update(step="trials")
    response = client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA, follow=True)
    assert response.status_code == 200
    p.refresh_from_db()
    assert p.step == "full"
