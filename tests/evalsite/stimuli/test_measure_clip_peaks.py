"""manage.py measure_clip_peaks fills the sample peak of every ready clip that has none (a file
migration stimuli 0004 could not read, e.g. a media volume not mounted during the upgrade) and
names the clips it still cannot read."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from evalsite.stimuli import served_level
from evalsite.stimuli.models import Clip

pytestmark = pytest.mark.django_db


def _wav_bytes(peak: float) -> bytes:
    x = np.zeros((48000, 2), dtype=np.float32)
    x[100, 1] = peak  # a click in silence: its peak limits the gain
    buf = io.BytesIO()
    sf.write(buf, x, 48000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _clip(name: str, file: str, status: str = "ready") -> Clip:
    return Clip.objects.create(
        name=name, status=status, file=file, loudness_lufs=-40.0, channels=2, peak_dbfs=None
    )


def _run() -> str:
    out = io.StringIO()
    call_command("measure_clip_peaks", stdout=out)
    return out.getvalue()


def test_it_names_the_clips_it_cannot_read_then_measures_them_once_their_files_are_back():
    away = _clip("gone-at-migrate", "clips/away.wav")
    garbage = _clip("not-audio", default_storage.save("clips/bad.wav", ContentFile(b"x" * 900)))
    with pytest.raises(CommandError, match="2 clips still have no peak") as refused:
        _run()
    for clip in (away, garbage):
        assert f"clip {clip.pk} {clip.name}: {clip.file.name}" in str(refused.value)
    default_storage.save("clips/away.wav", ContentFile(_wav_bytes(0.5)))  # the volume is back
    default_storage.delete(garbage.file.name)
    garbage.file = default_storage.save("clips/bad.wav", ContentFile(_wav_bytes(0.25)))
    garbage.save()
    assert "Measured the peak of 2 clips" in _run()
    away.refresh_from_db()
    garbage.refresh_from_db()
    # 16-bit PCM holds 0.5 as 16384/32768 exactly, 0.25 as 8192/32768
    assert away.peak_dbfs == pytest.approx(-6.0206, abs=1e-3)
    assert garbage.peak_dbfs == pytest.approx(-12.0412, abs=1e-3)
    # measured, the clip 17 LU under a -23 target counts in the quiet-clip warning again
    assert served_level.under_target([away], -23.0)
    assert "Measured the peak of 0 clips" in _run()  # nothing left to do


def test_it_leaves_measured_pending_and_silent_clips_as_they_are():
    measured = _clip("measured", default_storage.save("clips/m.wav", ContentFile(_wav_bytes(0.5))))
    Clip.objects.filter(pk=measured.pk).update(peak_dbfs=-1.0)  # kept, not read again
    pending = _clip("pending", "clips/not-yet.wav", status="pending")
    silent = _clip("silent", default_storage.save("clips/s.wav", ContentFile(_wav_bytes(0.0))))
    out = _run()
    assert "Measured the peak of 0 clips" in out and "1 silent" in out
    values = dict(Clip.objects.values_list("name", "peak_dbfs"))
    assert values == {"measured": -1.0, "pending": None, "silent": None}
    assert pending.pk and silent.pk


def test_it_gives_the_os_reason_for_a_missing_file():
    """A file missing (a media volume not mounted) is told apart from other I/O failures by the
    OS's reason, not libsndfile's "System error." (findings_rupg.md, 4)."""
    away = _clip("gone", "clips/never_written.wav")
    with pytest.raises(CommandError, match="^1 clip still has no peak") as refused:
        _run()
    path = default_storage.path("clips/never_written.wav")
    assert f"clip {away.pk} gone: clips/never_written.wav (No such file or directory: {path})" in (
        str(refused.value)
    )
    assert "System error" not in str(refused.value)


def test_it_reads_nothing_when_every_ready_clip_has_its_peak(django_assert_num_queries):
    """Run after every upgrade, whatever migrate said: with no peak missing it costs one query."""
    measured = _clip("measured", default_storage.save("clips/m.wav", ContentFile(_wav_bytes(0.5))))
    Clip.objects.filter(pk=measured.pk).update(peak_dbfs=-6.0)
    with django_assert_num_queries(1):
        assert "Measured the peak of 0 clips; 0 silent" in _run()


def test_it_counts_one_clip_in_the_singular():
    _clip("one", default_storage.save("clips/o.wav", ContentFile(_wav_bytes(0.5))))
    assert "Measured the peak of 1 clip;" in _run()
