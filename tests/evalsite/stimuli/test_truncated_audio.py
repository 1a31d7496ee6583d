"""A file whose data is shorter than its header declares (an interrupted copy or upload) is
refused with both lengths, not stored as a shorter clip: libsndfile reports a cut WAV or AIFF
as a whole, shorter one, and a cut FLAC fails part-way."""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile

from evalsite.stimuli import audio
from evalsite.stimuli.models import Clip

SR = 44100
SECONDS = 4.0


def _encoded(fmt: str, subtype: str = "PCM_16") -> bytes:
    t = np.arange(int(SECONDS * SR)) / SR
    rng = np.random.default_rng(0)
    x = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), SR, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("AIFF", "PCM_24")])
def test_it_refuses_a_wav_or_aiff_cut_short_naming_both_lengths(tmp_path, fmt, subtype):
    whole = _encoded(fmt, subtype)
    path = tmp_path / "take.snd"
    path.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(audio.AudioError) as err:
        audio.read_audio(path, "bad_truncated.wav")
    msg = str(err.value)
    assert msg.startswith("bad_truncated.wav: cut short: its data holds 1.33 s (")
    assert f"of the {SECONDS:.2f} s ({int(SECONDS * SR)} frames) its header declares" in msg


def test_it_refuses_a_flac_cut_short_naming_both_lengths(tmp_path):
    whole = _encoded("FLAC")
    path = tmp_path / "take.flac"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(audio.AudioError) as err:
        audio.read_audio(path, "take.flac")
    msg = str(err.value)
    assert msg.startswith("take.flac: cut short: its data holds ")
    assert f"of the {SECONDS:.2f} s ({int(SECONDS * SR)} frames) its header declares" in msg


def _reads(path, frames: int) -> bool:
    """Whether libsndfile decodes the first `frames` frames of the file in one read."""
    with sf.SoundFile(str(path)) as f:
        try:
            return f.read(frames, dtype="float32").shape[0] == frames
        except (sf.LibsndfileError, RuntimeError):
            return False


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5, 0.9])
def test_a_cut_flacs_refusal_gives_the_frames_that_decode(tmp_path, share):
    """The review's case (findings_rdiff.md, 6): counted in blocks of 65,536 frames, a FLAC cut
    in its first 1.5 s was said to hold 0.00 s. The frames named are those that decode, no
    fewer: one more fails."""
    t = np.arange(10 * SR) / SR
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((t.size, 2))).astype(np.float32)  # (T, 2)
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="FLAC")
    whole = buf.getvalue()
    path = tmp_path / "cut.flac"
    path.write_bytes(whole[: int(len(whole) * share)])
    with pytest.raises(audio.AudioError) as err:
        audio.read_audio(path, "cut.flac")
    held = int(re.search(r"its data holds [0-9.]+ s \((\d+) frames\)", str(err.value)).group(1))
    assert held > 0 and _reads(path, held) and not _reads(path, held + 1)


def test_it_takes_a_wav_whose_header_leaves_the_length_to_the_file(tmp_path):
    """A writer that cannot seek back (ffmpeg to a pipe) leaves 0xFFFFFFFF as the data size."""
    raw = bytearray(_encoded("WAV"))
    at = raw.index(b"data") + 4
    raw[at : at + 4] = struct.pack("<I", 0xFFFFFFFF)
    path = tmp_path / "piped.wav"
    path.write_bytes(bytes(raw))
    data, sr = audio.read_audio(path)
    assert data.shape == (int(SECONDS * SR), 1) and sr == SR


def test_it_refuses_a_cut_upload_and_keeps_nothing_of_it(owner):
    whole = _encoded("WAV")
    clip = audio.clip_from_upload(
        SimpleUploadedFile("bad_truncated.wav", whole[: len(whole) // 3]), None, -23.0
    )
    assert clip.status == Clip.Status.FAILED and clip.pk is None
    assert clip.error.startswith("bad_truncated.wav: cut short: its data holds 1.33 s")
    assert not Clip.objects.exists()
