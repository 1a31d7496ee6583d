"""Validation, loudness, normalisation and storage of clips."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

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


@pytest.mark.parametrize(
    "data",
    [
        np.full((SR, 1), 0.5, np.float32),
        np.full((SR, 2), -0.9, np.float32),
        0.5 + noise(1.0, 1e-5),  # with noise at -100 dBFS
        np.linspace(0.2, 0.6, SR, dtype=np.float32)[:, None],  # an offset that drifts
    ],
    ids=["dc", "stereo negative dc", "dc with inaudible noise", "slow drift"],
)
def test_it_refuses_a_dc_offset_as_silent(data):
    with pytest.raises(audio.AudioError, match=r"^take\.wav: silent \(peak -\d+\.\d dBFS"):
        audio.validate(data, SR, "take.wav")


def test_it_takes_quiet_audio_riding_on_a_dc_offset():
    t = np.arange(2 * SR) / SR
    bass = (0.005 * np.sin(2 * np.pi * 41.2 * t)).astype(np.float32)[:, None]  # E1, -46 dBFS
    for data in (0.3 + noise(2.0, 0.003), bass, 0.5 + bass, noise(2.0, 0.003) - 0.7):
        audio.validate(data, SR, "take.wav")  # no AudioError


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
    for channels in (1, 2):  # mono is brought to the target played on both speakers
        y, gain = audio.normalise(noise(3.0, 0.01, channels=channels), SR, -23.0)
        played = audio.playback_lufs(audio.loudness_lufs(y, SR), channels)
        assert played == pytest.approx(-23.0, abs=0.1)
        assert gain > 0
    stereo, _ = audio.normalise(noise(3.0, 0.01, channels=2), SR, -23.0)
    assert audio.loudness_lufs(stereo, SR) == pytest.approx(-23.0, abs=0.1)  # as measured


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
    assert clip.loudness_lufs == pytest.approx(-23.0 - audio.DUAL_MONO_LU, abs=0.2)  # mono
    assert clip.duration_s == pytest.approx(2.0) and clip.channels == 1
    assert clip.sha256 == hashlib.sha256(open(clip.file.path, "rb").read()).hexdigest()
    assert len(clip.token) >= 20 and clip.name == "My Drum Loop.flac"


@pytest.mark.django_db
def test_it_refuses_a_bad_upload_with_a_clear_error_and_keeps_nothing_of_it(
    owner, settings, django_capture_on_commit_callbacks
):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    with django_capture_on_commit_callbacks(execute=True):  # the file's delete after the commit
        clip = audio.clip_from_upload(upload(np.zeros((SR, 1), np.float32), SR, "quiet.wav"), cat)
    assert clip.status == Clip.Status.FAILED and clip.pk is None
    assert clip.error.startswith("quiet.wav: silent")
    assert not cat.clips.exists()  # not a catalogue clip, and a retry adds no row either
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


@pytest.mark.django_db
def test_it_refuses_an_upload_of_constant_samples_as_silent(owner):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    clip = audio.clip_from_upload(upload(np.full((SR, 1), 0.5), SR, "dc.wav"), cat, -23.0)
    assert clip.status == Clip.Status.FAILED and clip.error.startswith("dc.wav: silent")
    assert not cat.clips.exists()


@pytest.mark.django_db
def test_a_failed_clip_stays_failed_when_processed_again(owner):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    clip = Clip.objects.create(catalogue=cat, name="x.wav", status="failed", error="x.wav: bad")
    assert audio.process_clip(clip).status == Clip.Status.FAILED  # no crash, no new try


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
    assert audio.playback_lufs(audio.loudness_lufs(data, sr), 1) == pytest.approx(-18.0, abs=0.2)
    made = louder.stat().st_ino  # a rewrite (temporary file, then rename) gets a new inode
    assert audio.normalised_path(clip, -18.0) == louder and louder.stat().st_ino == made


def long_silence(path, seconds: int, sr: int = 48000, channels: int = 2):
    """A FLAC of `seconds` of digital silence: well under a megabyte for ten minutes, which
    decode to sr * seconds * channels * 4 bytes of float32."""
    block = np.zeros((sr * 10, channels), np.float32)  # (T, C)
    with sf.SoundFile(path, "w", sr, channels, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(block)
    return path


def peak_traced_bytes(fn) -> int:
    """The most memory Python and numpy held at once while fn ran."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize(
    ("sr", "channels", "message"),
    [
        (48000, 2, r"duration 600\.00 s; expected 0\.5-120 s"),
        (8000, 1, r"sample_rate 8000 Hz; expected 16000-96000 Hz"),
        (16000, 3, r"channels 3; expected 1-2"),
    ],
)
def test_it_refuses_a_long_or_odd_file_from_its_header_before_decoding_it(
    tmp_path, sr, channels, message
):
    path = long_silence(tmp_path / "long.flac", 600, sr, channels)
    assert path.stat().st_size < 1_000_000  # 600 s of 48 kHz stereo decode to 230 MB

    def read():
        with pytest.raises(audio.AudioError, match=rf"^long\.flac: {message}"):
            audio.read_audio(path)

    assert peak_traced_bytes(read) < 2_000_000


def without_length(path):
    """The FLAC at path with its length unknown: STREAMINFO holds the total sample count in the
    low 36 bits of its bytes 10-17 (after "fLaC" and the block header), and 0 means unknown,
    which libsndfile reports as the largest frame count it can (as for some MP3 streams)."""
    data = bytearray(path.read_bytes())
    field = slice(8 + 10, 8 + 18)
    data[field] = (int.from_bytes(data[field], "big") & ~((1 << 36) - 1)).to_bytes(8, "big")
    path.write_bytes(data)
    return path


def test_it_stops_decoding_a_file_whose_header_does_not_tell_its_length(tmp_path):
    unknown = without_length(long_silence(tmp_path / "unknown.flac", 600))
    assert sf.info(str(unknown)).frames > 600 * 48000
    limits = audio.Limits(max_duration_s=2.0)

    def read():
        with pytest.raises(audio.AudioError, match=r"^unknown\.flac: duration over 2 s; expected"):
            audio.read_audio(unknown, limits=limits)

    # no more than the limit is decoded: 2 s of 48 kHz stereo float32 are 768 kB
    assert peak_traced_bytes(read) < 3_000_000
    # python-soundfile seeks to where each read ended, which fails at the end of a FLAC of
    # unknown length: one within the limit is refused as undecodable (it was a ValueError from
    # numpy, asked for an array of 2**63 frames)
    short = without_length(long_silence(tmp_path / "short.flac", 20))
    with pytest.raises(audio.AudioError, match=r"^short\.flac: cannot decode audio"):
        audio.read_audio(short)


def test_it_decodes_an_mp3_up_to_the_limit_whatever_length_its_header_gives(tmp_path):
    whole = tmp_path / "take.mp3"
    sf.write(whole, noise(3.0), SR, format="MP3")
    limits = audio.Limits(max_duration_s=2.0)
    with pytest.raises(audio.AudioError, match=r"^take\.mp3: duration over 2 s; expected"):
        audio.read_audio(whole, limits=limits)
    cut = tmp_path / "cut.mp3"  # its header still says 3 s: libsndfile estimates MP3 lengths
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert sf.info(str(cut)).duration == pytest.approx(3.0)
    data, _ = audio.read_audio(cut, limits=limits)
    assert 1.0 < data.shape[0] / SR < 2.0


@pytest.mark.django_db
def test_it_marks_a_long_upload_failed_without_decoding_it(owner, tmp_path):
    cat = Catalogue.objects.create(owner=owner, name="uploads")
    uploaded = SimpleUploadedFile(
        "talk.flac", long_silence(tmp_path / "talk.flac", 600).read_bytes()
    )
    made = []
    assert peak_traced_bytes(lambda: made.append(audio.clip_from_upload(uploaded, cat))) < 5_000_000
    (clip,) = made
    assert clip.status == Clip.Status.FAILED
    assert clip.error.startswith("talk.flac: duration 600.00 s; expected 0.5-120 s"), clip.error


def per_speaker_rms_db(path):
    data, _ = sf.read(path, always_2d=True)  # (T, C); a mono file plays on both speakers
    return 10 * np.log10(np.mean(data[:, 0].astype(np.float64) ** 2))


@pytest.mark.django_db
def test_it_plays_mono_and_stereo_copies_of_a_signal_equally_loud(owner):
    mono = noise(2.0, 0.02)  # (T, 1)
    stereo = np.repeat(mono, 2, axis=1)  # (T, 2): the same signal on both speakers
    for target in (None, -23.0):  # stored as is and normalised at upload
        clips = [audio.clip_from_array(x, SR, None, target, name="x") for x in (mono, stereo)]
        served = [audio.normalised_path(c, -23.0) for c in clips]
        levels = [per_speaker_rms_db(p) for p in served]
        assert levels[0] == pytest.approx(levels[1], abs=0.1), (target, levels)


@pytest.mark.django_db
def test_it_serves_a_mono_clip_measured_at_the_target_3_db_quieter(owner):
    x = noise(2.0, 0.02)  # (T, 1)
    x = x * 10 ** ((-23.0 - audio.loudness_lufs(x, SR)) / 20)  # measured -23, one channel
    clip = audio.clip_from_array(x, SR, None, None, name="mono")
    assert clip.loudness_lufs == pytest.approx(-23.0, abs=0.05)
    served = audio.normalised_path(clip, -23.0)
    assert served != Path(clip.file.path)
    assert served.name != f"{clip.token}_-23.0.wav"  # a copy cached with the old gain is unused
    gain = per_speaker_rms_db(served) - per_speaker_rms_db(clip.file.path)
    assert gain == pytest.approx(-10 * np.log10(2), abs=0.05)


@pytest.mark.parametrize("target", [float("nan"), float("inf"), float("-inf")])
def test_it_refuses_to_normalise_to_a_target_that_is_not_a_number(target):
    tone = (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)  # (T,)
    with pytest.raises(audio.AudioError, match="loudness target"):
        audio.normalise(tone, 8000, target)
