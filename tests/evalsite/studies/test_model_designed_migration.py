"""studies migration 0014 flags the main trials a design from the model made
(Trial.model_designed) and no other: not a random draw's, nor a trial added by hand to a
model-designed study after its design, whose candidates the model did not choose."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from evalsite.studies.models import Trial

BEFORE = ("studies", "0013_consent_versions")
FLAGGED = ("studies", "0014_trial_model_designed")
RECOMPUTED = ("studies", "0016_trial_model_designed_recompute")


@contextmanager
def _schema_at(target: tuple[str, str]):
    """The database migrated back to `target`, its historical apps given to the block; migrated
    forward to the latest schema again however the block ends."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([target])
    try:
        yield MigrationExecutor(connection).loader.project_state([target]).apps
    finally:
        MigrationExecutor(connection).migrate(latest)


def _clips(catalogue) -> list[int]:
    return list(catalogue.clips.filter(meta={}).values_list("pk", flat=True))


def _make(apps, owner_id: int, clips: list[int]) -> dict[str, list[int]]:
    """As the database held them before 0014: a model design with its history entry and a
    trial added by hand after it; one designed before designs wrote that entry (2 per
    instrument, drums short by one), with a trial added after; a random draw."""
    Study, Trial, StudyEvent = (apps.get_model("studies", n) for n in ("Study", "Trial",
                                                                        "StudyEvent"))  # fmt: skip
    r, a, b, c = clips[:4]

    def trial(study, instrument, x, y, **fields) -> int:
        return Trial.objects.create(study=study, instrument=instrument, reference_id=r,
                                    candidate_a_id=x, candidate_b_id=y, model_choice="a",
                                    **fields).pk  # fmt: skip

    made: dict[str, list[int]] = {"model": [], "other": []}
    logged = Study.objects.create(owner_id=owner_id, name="logged", instruments=["drums"],
                                  design={"by": "model_design", "per_instrument": 2})  # fmt: skip
    made["model"] += [trial(logged, "drums", a, b), trial(logged, "drums", a, c)]
    made["other"].append(trial(logged, "drums", a, b, is_catch=True, catch_kind="repeat"))
    StudyEvent.objects.create(study=logged, kind="trials", changes={"added": 3, "how": "model"})
    made["other"].append(trial(logged, "drums", b, c))  # by hand, after the design
    unlogged = Study.objects.create(
        owner_id=owner_id, name="unlogged", instruments=["drums", "bass"],
        design={"by": "model_design", "per_instrument": 2, "shortfall": {"drums": 1},
                "thresholds": {"drums": {}, "bass": {}}},
    )  # fmt: skip
    made["model"] += [trial(unlogged, "drums", a, b), trial(unlogged, "bass", a, c),
                      trial(unlogged, "bass", b, c)]  # fmt: skip
    made["other"].append(trial(unlogged, "drums", b, c))  # by hand, after the design
    drawn = Study.objects.create(owner_id=owner_id, name="drawn", instruments=["drums"],
                                 design={"by": "random_design", "per_instrument": 2})  # fmt: skip
    made["other"] += [trial(drawn, "drums", a, b), trial(drawn, "drums", a, c)]
    return made


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_flags_the_main_trials_a_design_from_the_model_made_and_no_other(
    experimenter, listening_catalogue
):
    with _schema_at(BEFORE) as apps:
        made = _make(apps, experimenter.pk, _clips(listening_catalogue))
    flagged = set(Trial.objects.filter(model_designed=True).values_list("pk", flat=True))
    assert flagged == set(made["model"])
    assert not flagged & set(made["other"])


def _designed_twice(apps, owner_id: int, clips: list[int]) -> list[int]:
    """A study designed from the model, emptied ("Delete all trials", which leaves the design
    stored here as the jobs wrote it then) and designed again: one `trials` entry with how
    "model" per design. Returns the current design's main trials, as made before 0014's flag."""
    Study, Trial, StudyEvent = (apps.get_model("studies", n) for n in ("Study", "Trial",
                                                                        "StudyEvent"))  # fmt: skip
    r, a, b, c = clips[:4]
    study = Study.objects.create(owner_id=owner_id, name="twice", instruments=["drums"],
                                 design={"by": "model_design", "per_instrument": 2})  # fmt: skip

    def trial(x: int, y: int) -> int:
        return Trial.objects.create(study=study, instrument="drums", reference_id=r,
                                    candidate_a_id=x, candidate_b_id=y,
                                    model_choice="a").pk  # fmt: skip

    first = trial(a, b)
    StudyEvent.objects.create(study=study, kind="trials", changes={"added": 1, "how": "model"})
    Trial.objects.filter(pk=first).delete()
    StudyEvent.objects.create(study=study, kind="trials", changes={"deleted": 1})
    current = [trial(a, b), trial(a, c)]
    StudyEvent.objects.create(study=study, kind="trials", changes={"added": 2, "how": "model"})
    return current


def _flagged() -> set[int]:
    return set(Trial.objects.filter(model_designed=True).values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_flags_the_latest_design_of_a_study_designed_twice(experimenter, listening_catalogue):
    with _schema_at(BEFORE) as apps:
        current = _designed_twice(apps, experimenter.pk, _clips(listening_catalogue))
        MigrationExecutor(connection).migrate([FLAGGED])
        apps = MigrationExecutor(connection).loader.project_state([FLAGGED]).apps
        flagged = set(apps.get_model("studies", "Trial").objects
                      .filter(model_designed=True).values_list("pk", flat=True))  # fmt: skip
    assert flagged == set(current)


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_recomputes_the_flags_0014_missed_on_a_study_designed_twice_and_again_unchanged(
    experimenter, listening_catalogue
):
    """A database that ran 0014 when it took the first design entry holds the current design's
    trials unflagged; 0016 flags them, and running it again changes nothing."""
    clips = _clips(listening_catalogue)
    with _schema_at(FLAGGED) as apps:
        current = _designed_twice(apps, experimenter.pk, clips)  # unflagged, as 0014 left them
        made = _make(apps, experimenter.pk, clips)
        T = apps.get_model("studies", "Trial")
        T.objects.filter(pk__in=made["model"]).update(model_designed=True)  # as 0014 set them
        MigrationExecutor(connection).migrate([RECOMPUTED])
        once = _flagged()
        MigrationExecutor(connection).migrate([FLAGGED])  # reverse is a no-op: flags stay
        MigrationExecutor(connection).migrate([RECOMPUTED])
        twice = _flagged()
    assert once == set(current) | set(made["model"])
    assert twice == once
