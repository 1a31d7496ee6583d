"""Server-side assignment: least-filled trials first, reservations and their timeout, the fill
counted with finished participants folded, entries sharing a count, the realised design.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from evalsite.stimuli.models import Clip
from evalsite.studies import design, design_fill, design_order, flow_trials
from evalsite.studies.export_codebook import CODEBOOK
from evalsite.studies.models import (
    Answer,
    Assignment,
    FoldedParticipant,
    Participant,
    Study,
    StudyFold,
)
from tests.evalsite.studies.conftest import make_study, participant


@pytest.mark.django_db
def test_it_stores_a_trial_list_longer_than_one_insert_in_its_order_and_positions():
    from evalsite.studies import loadtest_study, participant_writes

    study = loadtest_study.make_study(participant_writes.SLOT_BATCH + 20)  # two INSERT statements
    p = participant(study, seed=5)
    now = timezone.now()
    assert design.assign(p, now)
    slots = list(p.slots.order_by("index"))
    trials = design.select_trials(study, p.seed, Counter())  # every trial, none filled yet
    expected = design_order.order_trials(trials, p.seed)
    shown = design_order.balance_positions(expected, p.seed)
    assert [s.index for s in slots] == list(range(len(trials)))
    assert [s.trial_id for s in slots] == [t.id for t in expected]
    assert [s.displayed_first for s in slots] == [shown[t.id] for t in expected]
    timeout = timedelta(seconds=int(study.setting("reservation_timeout_s")))
    assert {s.reserved_until for s in slots} == {now + timeout}
    assert {s.answerable_ms for s in slots} == {0}  # the load study has no listening check
    assert design.assign(p, now)  # again: the same list, nothing added
    assert p.slots.count() == len(trials)


def answer_all(p: Participant) -> None:
    for s in p.slots.all():
        Answer.objects.create(participant=p, trial=s.trial, trial_index=s.index, chosen="a",
                              chosen_position="A", displayed_first=s.displayed_first)  # fmt: skip


def recount(study: Study, now) -> Counter:
    """fill_counts by definition, the slow way: every stored answer to the study's trials, and
    every reserved slot without one."""
    counts = Counter(a.trial_id for a in Answer.objects.filter(trial__study=study))
    for s in Assignment.objects.filter(trial__study=study, reserved_until__gt=now):
        if not Answer.objects.filter(participant=s.participant_id, trial=s.trial_id).exists():
            counts[s.trial_id] += 1
    return counts


def finish(p: Participant) -> None:
    answer_all(p)
    Participant.objects.filter(pk=p.pk).update(step=Participant.Step.DONE)


@pytest.fixture
def small_study(experimenter, listening_catalogue) -> Study:
    """3 main trials per instrument (6), each wanted twice, 3 per participant, no catch/practice."""
    no_catch = {"identical": 0, "attention": 0, "repeat": 0}
    return make_study(
        experimenter, listening_catalogue, trials_per_participant=3, practice_trials=0,
        catch=no_catch,
    )  # fmt: skip


@pytest.mark.django_db
def test_it_assigns_least_filled_trials_first(small_study):
    now = timezone.now()
    first, second = participant(small_study, 1), participant(small_study, 2)
    assert design.assign(first, now) and design.assign(second, now)
    a = {s.trial_id for s in first.slots.all()}
    b = {s.trial_id for s in second.slots.all()}
    assert len(a) == len(b) == 3 and not a & b  # the second participant got the other three


@pytest.mark.django_db
def test_it_never_gives_one_participant_two_main_trials_of_one_instrument_and_reference(
    experimenter, listening_catalogue
):
    # Two such trials share a candidate (a model design's: the model's choice) and link each
    # other; they go to different participants. 8 main trials per instrument from 6 pieces:
    # references recur.
    study = make_study(experimenter, listening_catalogue, 8, practice_trials=0)
    main = list(study.trials.filter(is_practice=False, is_catch=False))
    pairs = {(t.instrument, t.reference_id) for t in main}
    assert len(pairs) < len(main)  # the case under test
    now, seen = timezone.now(), []
    for seed in range(50):
        p = participant(study, seed)
        if not design.assign(p, now):
            break
        trials = [s.trial for s in p.slots.select_related("trial")]
        got = [t for t in trials if not t.is_catch]
        # a random draw: every (instrument, reference) pair, though candidates recur across
        # instruments (the rule on shared candidates is the model design's)
        assert sorted((t.instrument, t.reference_id) for t in got) == sorted(pairs)
        repeats = [t for t in trials if t.catch_kind == "repeat"]  # by design: A/B swapped
        assert all(t.repeat_of_id in {g.id for g in got} for t in repeats)
        assert repeats or seen  # with nothing filled, an original goes before its pair's other
        seen.append(p)
        finish(p)
    assert 2 < len(seen) < 50  # more participants than without the rule, and the study filled
    counts = design_fill.fill_counts(study, now)
    assert all(counts[t.id] >= 2 for t in main)  # every main trial reached its target


@pytest.mark.django_db
def test_it_never_gives_one_participant_two_main_trials_of_one_instrument_on_one_reference_piece(
    experimenter, listening_catalogue
):
    # An upload names one piece for all its files: here the 6 mixes are 3 pieces of 2 clips.
    # Clips of one piece share their nearest neighbour (a model design's choice) and are one
    # song: two trials on them link as two on one clip do. The draw takes the other clip of a
    # piece when the piece recurs as a reference, so keyed by clip the rule never fired.
    mixes = listening_catalogue.clips.filter(meta={}).order_by("id")
    for i, pk in enumerate(mixes.values_list("pk", flat=True)):
        Clip.objects.filter(pk=pk).update(piece=f"Song{i // 2}")
    study = make_study(experimenter, listening_catalogue, 4, practice_trials=0)
    main = list(study.trials.filter(is_practice=False, is_catch=False).select_related("reference"))
    pieces = {(t.instrument, t.reference.piece_key) for t in main}
    assert len({(t.instrument, t.reference_id) for t in main}) > len(pieces)  # the case under test
    assert design.most_main_trials(study) == {"drums": 3, "guitar": 3}  # pieces, not clips
    now, seen = timezone.now(), 0
    for seed in range(50):
        p = participant(study, seed)
        if not design.assign(p, now):
            break
        got = [s.trial for s in p.slots.select_related("trial__reference")]
        got = [t for t in got if not t.is_catch]
        assert sorted((t.instrument, t.reference.piece_key) for t in got) == sorted(pieces)
        seen += 1
        finish(p)
    assert 2 < seen < 50
    counts = design_fill.fill_counts(study, now)
    assert all(counts[t.id] >= 2 for t in main)  # every main trial reached its target


@pytest.mark.django_db
def test_it_keeps_assignment_idempotent(small_study):
    p = participant(small_study, 1)
    design.assign(p, timezone.now())
    before = list(p.slots.values_list("trial_id", "index", "displayed_first"))
    design.assign(p, timezone.now())
    assert list(p.slots.values_list("trial_id", "index", "displayed_first")) == before


@pytest.mark.django_db
def test_it_releases_reservations_after_the_timeout(small_study):
    now = timezone.now()
    gone = participant(small_study, 1)
    design.assign(gone, now)
    mine = {s.trial_id for s in gone.slots.all()}
    later = now + timedelta(seconds=small_study.setting("reservation_timeout_s") + 1)
    counts = design_fill.fill_counts(small_study, later)
    assert all(counts[t] == 0 for t in mine)  # expired: no longer counted
    assert all(design_fill.fill_counts(small_study, now)[t] == 1 for t in mine)


@pytest.mark.django_db
def test_it_counts_stored_answers_after_reservations_expire(small_study):
    now = timezone.now()
    p = participant(small_study, 1)
    design.assign(p, now)
    answer_all(p)
    later = now + timedelta(days=1)
    assert sum(design_fill.fill_counts(small_study, later).values()) == 3


@pytest.mark.django_db
@pytest.mark.parametrize("finished", [False, True])  # still at their last trial, or done
def test_it_reports_full_when_every_trial_reached_its_target(small_study, finished):
    now = timezone.now()
    for seed in range(4):  # 4 participants x 3 trials = 6 trials x 2 answers
        p = participant(small_study, seed)
        assert design.assign(p, now)
        (finish if finished else answer_all)(p)
    assert all(n == 2 for n in design_fill.fill_counts(small_study, now).values())
    assert design.assign(participant(small_study, 99), now) is False
    assert StudyFold.objects.get(study=small_study).participants == (4 if finished else 0)


@pytest.mark.django_db
def test_it_includes_catch_trials_and_repeats_of_assigned_originals(listening_study):
    p = participant(listening_study, 5)
    design.assign(p, timezone.now())
    trials = [s.trial for s in p.slots.select_related("trial")]
    kinds = Counter(t.catch_kind for t in trials if t.is_catch)
    assert kinds == {"identical": 1, "attention": 1, "repeat": 1}
    ids = {t.id for t in trials}
    assert all(t.repeat_of_id in ids for t in trials if t.catch_kind == "repeat")
    practice = [s.index for s in p.slots.all() if s.trial.is_practice]
    assert practice == [0, 1]  # practice first


@pytest.mark.django_db
def test_it_numbers_the_slots_without_gaps_in_the_order_shown(listening_study):
    # The answer statement checks only the slot just before the one answered
    # (participant_writes.ANSWER_SQL): that needs slots numbered 0..n-1.
    p = participant(listening_study, 7)
    design.assign(p, timezone.now())
    assert sorted(p.slots.values_list("index", flat=True)) == list(range(p.slots.count()))


@pytest.mark.django_db
def test_it_exports_the_realised_design(listening_study):
    p = participant(listening_study, 5)
    design.assign(p, timezone.now())
    df = design.realised_design(listening_study)
    assert list(df.columns) == design.REALISED_COLUMNS
    assert len(df) == p.slots.count() and not df["answered"].any()
    assert set(df["displayed_first"]) <= {"a", "b"}
    assert df["trial_index"].tolist() == sorted(Assignment.objects.values_list("index", flat=True))


@pytest.fixture
def study_under_way(small_study):
    """Two finished participants, one half way, one with no answer yet, one screened out."""
    now = timezone.now()
    done = [participant(small_study, seed) for seed in (1, 2)]
    going, fresh = participant(small_study, 3), participant(small_study, 4)
    for p in (*done, going, fresh):
        assert design.assign(p, now)
    for p in done:
        finish(p)
    first = going.slots.order_by("index").first()
    Answer.objects.create(participant=going, trial=first.trial, trial_index=0, chosen="a",
                          chosen_position="A", displayed_first=first.displayed_first)  # fmt: skip
    Participant.objects.create(study=small_study, seed=5, step=Participant.Step.SCREENED_OUT)
    return small_study, now, done


@pytest.mark.django_db
def test_it_counts_as_a_full_recount_with_finished_participants_folded(study_under_way):
    study, now, done = study_under_way
    later = now + timedelta(seconds=study.setting("reservation_timeout_s") + 1)
    for when in (now, later, now):  # twice at `now`: a second entry folds nothing again
        assert design_fill.fill_counts(study, when) == recount(study, when)
    fold = StudyFold.objects.get(study=study)
    assert fold.participants == 3  # the two done and the screened-out one
    assert sum(fold.answers.values()) == 6  # the done ones' 3 answers each, once
    assert set(FoldedParticipant.objects.values_list("participant__seed", flat=True)) == {1, 2, 5}


@pytest.mark.django_db
def test_it_counts_a_finished_participants_answers_from_the_fold_not_again(study_under_way):
    study, now, done = study_under_way
    later = now + timedelta(seconds=study.setting("reservation_timeout_s") + 1)  # slots expired
    before = design_fill.fill_counts(study, later)
    # Not something the site does (answers are read-only in the admin): it shows the answers of
    # a folded participant are no longer read.
    Answer.objects.filter(participant=done[0]).delete()
    assert design_fill.fill_counts(study, later) == before
    assert design_fill.fill_counts(study, later) != recount(study, later)


@pytest.mark.django_db
def test_it_rebuilds_the_fold_when_a_finished_participant_is_deleted(study_under_way):
    study, now, done = study_under_way
    design_fill.fill_counts(study, now)
    done[0].delete()  # e.g. withdrew: its answers go with it
    assert design_fill.fill_counts(study, now) == recount(study, now)
    assert StudyFold.objects.get(study=study).participants == 2


@pytest.mark.django_db
def test_it_releases_a_finished_participants_slots_and_still_counts_its_answers(small_study):
    now = timezone.now()
    p = participant(small_study, 1)
    design.assign(p, now)
    answer_all(p)
    Participant.objects.filter(pk=p.pk).update(step=Participant.Step.TRIALS)
    p.refresh_from_db()
    assert flow_trials.finish_if_complete(p)
    after = timezone.now()
    assert not p.slots.filter(reserved_until__gt=after).exists()
    assert design_fill.fill_counts(small_study, after) == recount(small_study, after)
    assert sum(design_fill.fill_counts(small_study, after).values()) == 3


@pytest.mark.django_db
def test_it_lets_entries_that_arrive_together_share_one_count_and_their_slots(small_study):
    now = timezone.now()
    for i, seed in enumerate((1, 2, 3)):  # entries a second apart: one count, then reused
        assert design.assign(participant(small_study, seed), now + timedelta(seconds=i))
    counts, counted = design_fill.entry_fill(small_study, now + timedelta(seconds=3))
    assert not counted
    assert counts == recount(small_study, now) and sum(counts.values()) == 9
    # an entry that took its time before waiting for the lock, while the count was made
    assert design_fill.entry_fill(small_study, now - timedelta(seconds=1)) == (counts, False)
    counts, counted = design_fill.entry_fill(small_study, now + design_fill.FILL_REUSE)
    assert counted and counts == recount(small_study, now + design_fill.FILL_REUSE)


@pytest.mark.django_db
def test_it_sees_released_slots_only_at_the_next_count(small_study):
    now = timezone.now()
    gone = participant(small_study, 1)
    design.assign(gone, now)
    design.release_reservations(gone)  # e.g. screened out: its trials are free again
    soon, later = now + timedelta(seconds=1), now + design_fill.FILL_REUSE
    assert design_fill.entry_fill(small_study, soon) == (recount(small_study, now), False)
    assert sum(recount(small_study, soon).values()) == 0
    assert design_fill.entry_fill(small_study, later) == (Counter(), True)


@pytest.mark.django_db
def test_it_counts_again_before_turning_a_participant_away(small_study):
    now = timezone.now()
    entered = [participant(small_study, seed) for seed in range(4)]
    for p in entered:  # 4 participants x 3 trials = 6 trials x 2: full
        assert design.assign(p, now)
    design.release_reservations(entered[-1])  # the last one leaves: 3 trials wanted again
    late = participant(small_study, 99)
    assert design.assign(late, now + timedelta(seconds=1))  # the reused count says full
    freed = set(entered[-1].slots.values_list("trial_id", flat=True))
    assert set(late.slots.values_list("trial_id", flat=True)) == freed
    assert design.assign(participant(small_study, 100), now + timedelta(seconds=2)) is False


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # each thread commits on its own connection
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
def test_it_fills_every_trial_to_its_target_when_participants_enter_at_once(small_study):
    now = timezone.now()
    assert design.assign(participant(small_study, 10), now)  # counted: the others reuse it
    entering = [participant(small_study, seed) for seed in range(5)]  # room for 3 more
    start, outcomes = threading.Barrier(len(entering)), []

    def enter(p):
        try:
            start.wait()
            outcomes.append(design.assign(p, now))
        finally:
            connection.close()

    threads = [threading.Thread(target=enter, args=(p,)) for p in entering]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == [False, False, True, True, True]
    assert set(recount(small_study, now).values()) == {2}  # 6 trials, 2 participants each
    assert design_fill.entry_fill(small_study, now) == (recount(small_study, now), False)


@pytest.mark.django_db
def test_it_keeps_participants_steps_and_answers_out_of_admin_edits(admin_client, study_under_way):
    study, _, done = study_under_way
    answer = Answer.objects.filter(participant=done[0]).first()
    assert admin_client.get(f"/admin/studies/answer/{answer.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/studies/answer/add/").status_code == 403
    assert admin_client.post(f"/admin/studies/answer/{answer.pk}/change/", {}).status_code == 403
    page = admin_client.get(f"/admin/studies/participant/{done[0].pk}/change/")
    assert page.status_code == 200 and 'name="step"' not in page.content.decode()


@pytest.mark.django_db
def test_it_exports_which_trials_the_shared_candidate_rule_reads_as_model_designed(
    listening_study,
):
    """design.csv says which trials a model designed (Trial.model_designed, set by a model
    design or marked in a CSV or the form), so an analysis can tell where the rule applied."""
    main = listening_study.trials.filter(is_practice=False, is_catch=False)
    flagged = set(main.filter(instrument="drums").values_list("pk", flat=True))
    listening_study.trials.filter(pk__in=flagged).update(model_designed=True)
    p = participant(listening_study, 5)
    design.assign(p, timezone.now())
    df = design.realised_design(listening_study)
    assert df["model_designed"].tolist() == [t in flagged for t in df["trial"]]
    assert df["model_designed"].any() and not df["model_designed"].all()
    assert set(CODEBOOK["design"]) == set(design.REALISED_COLUMNS)
