"""The length a WAV or AIFF header declares (csn_model.data.audio_header), which libsndfile
clamps to the data a file cut short still holds."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from csn_model.data.audio_header import declared_frames

SR = 8000
FRAMES = 3 * SR


def _write(path, fmt, subtype, channels=1):
    x = 0.1 * np.sin(np.arange(FRAMES * channels) / 5).reshape(FRAMES, channels)
    sf.write(path, x, SR, format=fmt, subtype=subtype)
    return path


@pytest.mark.parametrize(
    "fmt, subtype, channels",
    [("WAV", "PCM_16", 1), ("WAV", "PCM_24", 2), ("WAV", "FLOAT", 1), ("WAVEX", "PCM_16", 2),
     ("RF64", "PCM_16", 1), ("AIFF", "PCM_16", 2), ("AIFF", "FLOAT", 1)],
)  # fmt: skip
def test_it_reads_the_declared_length_which_a_cut_file_keeps(tmp_path, fmt, subtype, channels):
    path = _write(tmp_path / "a.snd", fmt, subtype, channels)
    assert declared_frames(path) == FRAMES == sf.info(str(path)).frames
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    assert declared_frames(path) == FRAMES
    assert sf.info(str(path)).frames < FRAMES // 2  # what libsndfile reports and decodes


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"),
                                           ("WAV", "IMA_ADPCM")])  # fmt: skip
def test_it_says_nothing_of_formats_it_does_not_count_in_frames(tmp_path, fmt, subtype):
    assert declared_frames(_write(tmp_path / "a.snd", fmt, subtype)) is None


@pytest.mark.parametrize("size", [0x7FFFF000, 0xFFFFFFFF])
def test_it_says_nothing_of_a_streaming_writers_placeholder_size(tmp_path, size):
    path = _write(tmp_path / "a.wav", "WAV", "PCM_16")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    raw[at : at + 4] = struct.pack("<I", size)
    path.write_bytes(bytes(raw))
    assert declared_frames(path) is None
    assert sf.info(str(path)).frames == FRAMES  # libsndfile reads such a file to its end


def test_it_says_nothing_of_an_empty_data_chunk(tmp_path):
    """libsndfile opens it as 0 frames: too short for the catalogue, not cut short."""
    path = _write(tmp_path / "a.wav", "WAV", "PCM_16")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    raw[at : at + 4] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))
    assert declared_frames(path) is None and sf.info(str(path)).frames == 0


def test_it_says_nothing_of_a_file_too_short_for_a_header(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    assert declared_frames(tmp_path / "a.wav") is None
