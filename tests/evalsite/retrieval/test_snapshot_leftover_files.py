"""Snapshot files no row names do not pile up: a writer whose row does not commit removes its
file, files left by a killed writer (its .npz or .tmp) are swept once older than
snapshot.LEFTOVER_AFTER_S (never a younger one: its writer may be about to commit it), at the
worker's next refresh and at the catalogue's delete, and a file that cannot be removed never
fails a catalogue's committed delete. Writers run in processes of their own (snapshot_writer.py)
on this test's PostgreSQL database, stopped at a point and then let go on or SIGKILLed.
(Moved from the rsnap review's repros, which left such files for ever.)"""

# ruff: noqa: F811  (test_index_sync's fixtures, imported below, are these tests' parameters)

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.db import transaction

from evalsite.retrieval import snapshot
from evalsite.retrieval.models import Embedding, IndexSnapshot, to_bytes
from evalsite.stimuli.models import Catalogue, Clip
from tests.evalsite.retrieval.test_index_sync import DIM, catalogue, version  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)  # the writers' processes see the rows
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def postgresql():
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs DATABASE_URL=postgresql://... (a database the writers' processes share)")


class Writer:
    """snapshot_writer.py in its own process, on this test's database and media."""

    def __init__(self, version_id: int, catalogue_id: int, point: str, log: Path) -> None:
        db = settings.DATABASES["default"]
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "evalsite.settings",
            "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "CSN_HOME": str(log.parent / "csn_home"),
        }
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.evalsite.retrieval.snapshot_writer",
                 str(version_id), str(catalogue_id), point],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                text=True,
            )  # fmt: skip

    def paused(self) -> str:
        """The name of the file it stopped at."""
        line = self.proc.stdout.readline()
        assert line.startswith("paused "), line + self.log.read_text()
        return line.split()[1]

    def go_on(self) -> str:
        """Let it finish; its log."""
        out, _ = self.proc.communicate("\n", timeout=120)
        assert self.proc.returncode == 0 and out.strip() == "done", out + self.log.read_text()
        return self.log.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL


def files() -> set[str]:
    folder = Path(settings.MEDIA_ROOT) / snapshot.FOLDER
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def age(*names: str) -> None:
    """Date the files' last change back past the grace period, as if written long ago."""
    then = time.time() - snapshot.LEFTOVER_AFTER_S - 60
    for name in names:
        os.utime(Path(settings.MEDIA_ROOT) / snapshot.FOLDER / name, (then, then))


def current_file(version_id: int, catalogue_id: int) -> str:
    row = IndexSnapshot.objects.get(version_id=version_id, catalogue_id=catalogue_id)
    return snapshot.path_for(version_id, catalogue_id, row.generation).name


def embedded_catalogue(owner, version, name: str, n: int = 20) -> Catalogue:
    made = Catalogue.objects.create(owner=owner, name=name)
    clips = Clip.objects.bulk_create(
        Clip(catalogue=made, name=f"c{i}", piece=f"P{i:02d}", status=Clip.Status.READY)
        for i in range(n)
    )
    rng = np.random.default_rng(n)
    Embedding.objects.bulk_create(
        Embedding(clip=c, version=version, vector=to_bytes(rng.standard_normal(DIM))) for c in clips
    )
    return made


def refresh_as_the_worker(version, catalogue) -> None:
    snapshot.refresh_catalogues(version, list(catalogue.clips.values_list("pk", flat=True)))


def test_it_removes_its_file_when_the_catalogue_goes_before_its_row_commits(
    postgresql, version, catalogue, tmp_path
):
    writer = Writer(version.pk, catalogue.pk, "renamed", tmp_path / "writer.log")
    written = writer.paused()
    assert files() == {written}
    catalogue.delete()  # committed while the writer holds its file, not yet its row
    log = writer.go_on()
    assert "could not write its index snapshot" in log and "IntegrityError" in log
    assert not IndexSnapshot.objects.exists()
    assert files() == set()


def test_it_sweeps_the_files_of_killed_writers_once_they_are_old(
    postgresql, version, catalogue, tmp_path
):
    leftovers = set()
    for point in ("renamed", "renamed", "writing"):  # killed before its row, or in np.savez
        writer = Writer(version.pk, catalogue.pk, point, tmp_path / "writer.log")
        leftovers.add(writer.paused())
        writer.kill()
    assert {Path(n).suffix for n in leftovers} == {".npz", ".tmp"} and files() == leftovers

    refresh_as_the_worker(version, catalogue)  # writes the first row's file
    current = current_file(version.pk, catalogue.pk)
    assert files() == leftovers | {current}  # young: their writers might still commit them

    age(*leftovers, current)
    refresh_as_the_worker(version, catalogue)  # nothing to write; sweeps
    assert current_file(version.pk, catalogue.pk) == current
    assert files() == {current}


def test_it_sweeps_a_deleted_catalogues_files_then_or_once_old(
    postgresql, version, catalogue, ada, tmp_path
):
    writer = Writer(version.pk, catalogue.pk, "renamed", tmp_path / "writer.log")
    old = writer.paused()
    writer.kill()
    age(old)
    assert snapshot.refresh(version, catalogue.pk)  # the row's file (refresh alone: no sweep)
    assert len(files()) == 2
    catalogue.delete()
    assert files() == set()  # its row's file and the old leftover

    gone = embedded_catalogue(ada, version, "gone")
    writer = Writer(version.pk, gone.pk, "writing", tmp_path / "writer2.log")
    young = writer.paused()
    writer.kill()
    gone.delete()
    assert files() == {young}  # its writer might still be writing it
    age(young)
    refresh_as_the_worker(version, embedded_catalogue(ada, version, "other"))
    assert files() == {current_file(version.pk, Catalogue.objects.get(name="other").pk)}


@pytest.fixture
def undeletable(version, catalogue):
    """The catalogue's snapshot file made immutable (chattr +i): unlink fails with EPERM, as
    when web processes run as a user that may not remove the worker's files."""
    snapshot.refresh(version, catalogue.pk)
    path = Path(settings.MEDIA_ROOT) / snapshot.FOLDER / current_file(version.pk, catalogue.pk)
    try:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"chattr +i refused here ({exc}): needs root on a filesystem with attributes")
    yield path
    subprocess.run(["chattr", "-i", str(path)], check=True)


def test_it_deletes_a_catalogue_whose_file_cannot_be_removed(
    catalogue, undeletable, client, django_user_model, caplog
):
    admin = django_user_model.objects.create_superuser("root", "r@example.org", "pw-long-enough-1")
    client.force_login(admin)
    client.raise_request_exception = False
    with caplog.at_level(logging.WARNING):
        answer = client.post(f"/admin/stimuli/catalogue/{catalogue.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302  # was 500, after the delete had committed
    assert not Catalogue.objects.filter(pk=catalogue.pk).exists()
    assert undeletable.exists()  # a stray file, logged with its reason
    assert any(
        undeletable.name in r.getMessage() and "Operation not permitted" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_it_runs_later_commit_actions_when_the_file_cannot_be_removed(catalogue, undeletable):
    ran = []
    with transaction.atomic():
        catalogue.delete()
        transaction.on_commit(lambda: ran.append("later"), robust=True)
    assert ran == ["later"]
