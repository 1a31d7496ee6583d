"""stimuli migration 0004 measures the sample peak of each ready clip stored before clips kept
it (Clip.peak_dbfs), from its file, in batches; clips it cannot measure stay unmeasured."""

from __future__ import annotations

import importlib
import io
import logging
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from evalsite.stimuli.models import Clip

BEFORE = ("stimuli", "0002_clip_meta")
FILLED = ("stimuli", "0004_clip_peak_dbfs_fill")
fill_migration = importlib.import_module("evalsite.stimuli.migrations.0004_clip_peak_dbfs_fill")


def _wav(peak: float) -> str:
    x = np.zeros((4800, 2), dtype=np.float32)
    x[100, 1] = peak
    buf = io.BytesIO()
    sf.write(buf, x, 48000, format="WAV", subtype="PCM_16")
    return default_storage.save("clips/old.wav", ContentFile(buf.getvalue()))


@contextmanager
def _before_peaks():
    """The schema before clips kept their peak (`BEFORE`): yields its Clip model, to store clips
    as that version did; migrates to the latest on the way out, which runs 0004 on them."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([BEFORE])
    try:
        yield (
            MigrationExecutor(connection)
            .loader.project_state([BEFORE])
            .apps.get_model("stimuli", "Clip")
        )
    finally:
        MigrationExecutor(connection).migrate(latest)


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_fills_the_peak_of_clips_stored_before_in_batches(monkeypatch):
    monkeypatch.setattr(fill_migration, "BATCH", 2)  # 5 clips: three batches
    with _before_peaks() as OldClip:
        made = {
            name: OldClip.objects.create(name=name, status=status, file=file).pk
            for name, status, file in [
                ("half", "ready", _wav(0.5)),
                ("quarter", "ready", _wav(0.25)),
                ("silent", "ready", _wav(0.0)),
                ("gone", "ready", "clips/never_written.wav"),
                ("pending", "pending", _wav(0.5)),
            ]
        }
    peaks = dict(Clip.objects.filter(pk__in=made.values()).values_list("name", "peak_dbfs"))
    # 16-bit PCM holds 0.5 as 16384/32768 exactly, 0.25 as 8192/32768
    assert peaks["half"] == pytest.approx(-6.0206, abs=1e-3)
    assert peaks["quarter"] == pytest.approx(-12.0412, abs=1e-3)
    assert peaks["silent"] is None and peaks["gone"] is None and peaks["pending"] is None


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_names_each_clip_it_could_not_read(caplog):
    """A file missing at migrate time (a media volume not mounted) or not audio is skipped
    without stopping the upgrade, and logged by clip and file so that the operator can measure
    it later with measure_clip_peaks (findings_rpf2.md, 3)."""
    caplog.set_level(logging.WARNING)
    with _before_peaks() as OldClip:
        garbage = default_storage.save("clips/garbage.wav", ContentFile(b"not audio" * 100))
        gone = OldClip.objects.create(name="gone-at-migrate", status="ready", file="clips/away.wav")
        bad = OldClip.objects.create(name="not-audio", status="ready", file=garbage)
        OldClip.objects.create(name="silent", status="ready", file=_wav(0.0))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for clip, file in ((gone, "clips/away.wav"), (bad, garbage)):
        assert [m for m in warned if f"clip {clip.pk} " in m and clip.name in m and file in m]
    assert all("measure_clip_peaks" in m for m in warned) and len(warned) == 2  # not the silent


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_it_says_how_many_clips_it_could_not_read_in_migrates_own_output(caplog, capsys):
    """migrate's output counts the clips left without a peak and names the command, whatever
    LOG_LEVEL hides (findings_rupg.md, 1a); a missing file's warning gives the OS's reason, not
    libsndfile's "System error." (findings_rupg.md, 4)."""
    caplog.set_level(logging.WARNING)
    logging.disable(logging.WARNING)  # as LOG_LEVEL=ERROR: no warning reaches a handler
    try:
        with _before_peaks() as OldClip:  # its way out runs 0004
            OldClip.objects.create(name="gone-at-migrate", status="ready", file="clips/away.wav")
            OldClip.objects.create(name="gone-too", status="ready", file="clips/away2.wav")
            OldClip.objects.create(name="measured", status="ready", file=_wav(0.5))
            capsys.readouterr()
    finally:
        logging.disable(logging.NOTSET)
    out = capsys.readouterr().out
    assert "stimuli 0004: 2 ready clips left without a peak, their files unreadable (missing" in out
    assert "manage.py measure_clip_peaks" in out
    assert not caplog.records  # the log said nothing: only the output did


@pytest.mark.django_db(transaction=True)  # migrates the schema back and forth
def test_its_warning_gives_the_os_reason_for_a_missing_file(caplog):
    caplog.set_level(logging.WARNING)
    with _before_peaks() as OldClip:
        OldClip.objects.create(name="gone-at-migrate", status="ready", file="clips/away.wav")
    (warned,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    path = default_storage.path("clips/away.wav")
    assert f"(No such file or directory: {path})" in warned and "System error" not in warned
