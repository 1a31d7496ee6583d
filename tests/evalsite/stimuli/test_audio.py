"""Validation, loudness, normalisation and storage of clips."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile

from evalsite.stimuli import audio
from evalsite.stimuli.models import Catalogue, Clip

SR = 44100


def noise(seconds=2.0, level=0.1, sr=SR, channels=1, seed=0):
    return (level * np.random.default_rng(seed).standard_normal((int(seconds * sr), channels))
            ).astype(np.float32)  # fmt: skip


def upload(data, sr, name="take.wav", fmt="WAV", subtype=None):
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=fmt, subtype=subtype)
    return SimpleUploadedFile(name, buf.getvalue())


@pytest.mark.parametrize(
    ("data", "sr", "field"),
    [
        (noise(0.2), SR, "duration"),
        (noise(200.0 / 100), 8000, "sample_rate"),
        (np.zeros((SR, 1), np.float32), SR, "silent"),
        (noise(1.0, channels=3), SR, "channels"),
    ],
)
def test_it_rejects_bad_audio_naming_the_field(data, sr, field):
    with pytest.raises(audio.AudioError, match=rf"^take\.wav: {field}"):
        audio.validate(data, sr, "take.wav")


def test_it_reports_undecodable_files_with_their_name(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"this is not audio")
    with pytest.raises(audio.AudioError, match=r"^notes\.wav: cannot decode audio"):
        audio.read_audio(bad)


def test_it_measures_loudness_like_pyloudnorm():
    # pyloudnorm is the independent reference (ITU-R BS.1770-4 implementation).
    x = noise(3.0, 0.05)
    expected = pyloudnorm.Meter(SR).integrated_loudness(x.astype(np.float64))
    assert audio.loudness_lufs(x, SR) == pytest.approx(expected, abs=1e-6)


def test_it_normalises_to_the_target_loudness():
    y, gain = audio.normalise(noise(3.0, 0.01), SR, -23.0)
    assert audio.loudness_lufs(y, SR) == pytest.approx(-23.0, abs=0.1)
    assert gain > 0


def test_it_limits_the_gain_to_keep_peaks_below_the_ceiling():
    spiky = noise(3.0, 0.001)
    spiky[1000] = 0.9
    y, _ = audio.normalise(spiky, SR, -10.0)
    assert 20 * np.log10(np.max(np.abs(y))) <= audio.PEAK_CEILING_DBFS + 1e-4


@pytest.mark.django_db
def test_it_stores_an_upload_as_normalised_16_bit_wav_under_a_random_name(owner):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    clip = audio.clip_from_upload(upload(noise(2.0, 0.02), SR, "My Drum Loop.flac", "FLAC"),
                                  cat, target_lufs=-23.0)  # fmt: skip
    assert clip.status == Clip.Status.READY, clip.error
    assert "Drum" not in clip.file.name and clip.file.name.endswith(".wav")
    info = sf.info(clip.file.path)
    assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", SR)
    assert clip.loudness_lufs == pytest.approx(-23.0, abs=0.2)
    assert clip.duration_s == pytest.approx(2.0) and clip.channels == 1
    assert clip.sha256 == hashlib.sha256(open(clip.file.path, "rb").read()).hexdigest()
    assert len(clip.token) >= 20 and clip.name == "My Drum Loop.flac"


@pytest.mark.django_db
def test_it_marks_a_bad_upload_failed_with_a_clear_error(owner):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    clip = audio.clip_from_upload(upload(np.zeros((SR, 1), np.float32), SR, "quiet.wav"), cat)
    assert clip.status == Clip.Status.FAILED
    assert clip.error.startswith("quiet.wav: silent")
    assert audio.process_clip(clip).status == Clip.Status.FAILED  # stays failed, no crash


@pytest.mark.django_db
def test_it_refuses_float_audio_above_full_scale_without_a_target_instead_of_clipping_it(owner):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    hot = noise(2.0, 0.02)
    hot[100] = 2.0  # +6.0 dBFS, only a float file can hold it
    clip = audio.clip_from_upload(
        upload(hot, SR, "hot.wav", "WAV", "FLOAT"), cat
    )  # no loudness target
    assert clip.status == Clip.Status.FAILED
    assert clip.error.startswith("hot.wav: peak +6.0 dBFS; expected at most 0 dBFS"), clip.error
    with pytest.raises(audio.AudioError, match="peak \\+6.0 dBFS"):
        audio.clip_from_array(hot, SR, cat, name="hot")
    assert not Clip.objects.filter(name="hot").exists()
    stored = audio.clip_from_upload(
        upload(hot, SR, "hot.wav", "WAV", "FLOAT"), cat, target_lufs=-23.0
    )
    assert stored.status == Clip.Status.READY  # normalisation brings its peak under the ceiling
    data, _ = sf.read(stored.file.path)
    assert 20 * np.log10(np.max(np.abs(data))) <= audio.PEAK_CEILING_DBFS + 0.01


@pytest.mark.django_db
def test_it_names_an_undecodable_upload_without_the_storage_path(owner):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    clip = audio.clip_from_upload(SimpleUploadedFile("My Notes.txt", b"not audio"), cat)
    assert clip.status == Clip.Status.FAILED
    assert clip.error.startswith("My Notes.txt: cannot decode audio"), clip.error
    stored = clip.file.name  # e.g. clips/<name>.txt under MEDIA_ROOT
    assert stored not in clip.error and "clips/" not in clip.error and "media" not in clip.error


@pytest.mark.django_db
def test_it_caches_a_study_specific_loudness_version(owner):
    clip = audio.clip_from_array(noise(1.0, 0.05), SR, None, -23.0, name="x")
    assert audio.normalised_path(clip, -23.0).name == clip.file.name.split("/")[-1]
    louder = audio.normalised_path(clip, -18.0)
    data, sr = sf.read(louder)
    assert audio.loudness_lufs(data, sr) == pytest.approx(-18.0, abs=0.2)
    made = louder.stat().st_ino  # a rewrite (temporary file, then rename) gets a new inode
    assert audio.normalised_path(clip, -18.0) == louder and louder.stat().st_ino == made
