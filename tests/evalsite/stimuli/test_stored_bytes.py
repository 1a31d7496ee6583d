"""The bytes a clip is stored with never change for the same upload: the catalogue's duplicate
check compares the stored WAV's sha256, so a file uploaded before a change and again after it
must hash the same (findings_rret2, F1: after csn_model/loudness.py took over, mono clips were
gained in float32 instead of float64 and a few samples came out 1 LSB off).

The hashes are pinned from the code before that change (ca34375^1, evalsite/stimuli/audio.py),
made by running the same uploads through `read_audio`, `fit_level` and `wav_bytes` there:
    git archive ca34375^1 | tar -x -C OLD && cd OLD && \
    PYTHONPATH=OLD python golden.py 1,1,0.05,0.9 2,1,0.05,0.9 3,1,0.005,0.3 4,2,0.05,0.9 ...
(golden.py builds each input with `golden_upload` below). Any future change to the stored audio
fails here; change the pins only with a migration story for the clips already stored.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile

from evalsite.stimuli.audio import clip_from_upload
from evalsite.stimuli.models import Catalogue, Clip

SR = 44100
TARGETS_LUFS = (-23.0, -16.0, -40.0)
# (seed, channels, level, click peak) -> stored sha256 at each of TARGETS_LUFS, from ca34375^1.
PRE_MERGE_SHA256 = [
    ((1, 1, 0.05, 0.9), ["3891ae3c90dd1cd6d3342cdb695adc3b60a21c1d8ed554275ea32f6537710833",
                         "f7a332233bfc964cf6aaa05c157a40febf01fa8df00b83e2c202315c9a44f0f0",
                         "813db84935644ef28a1f9e8f44b8af5c90e3583450ac1c59061a342033a42fdb"]),
    ((2, 1, 0.05, 0.9), ["fcedc30d9e5ba8e19cb46bc987143a6ae73c11699c422d2397dea47cba79fba5",
                         "6b4de1ae4855169d1c6420580d9760ebdbd569b00c517b7adf7a8107272f94e1",
                         "b310a1743e993851df95dfa64b011cefac5a4687eaa11e1e0fdcad5480dac2ef"]),
    ((3, 1, 0.005, 0.3), ["f4c0fac56e51f69e45d1a58f4c66c810568e8c6129850340198bbe48e444c646",
                          "f4c0fac56e51f69e45d1a58f4c66c810568e8c6129850340198bbe48e444c646",
                          "dac2093e93c4ed501ef37c1c4eb767a5866a0d7e496117bc4f07eac6a0e9d4f6"]),
    ((4, 2, 0.05, 0.9), ["62d3e35db46dfd31474f97638734dc1eeffa4b687fe9c55a49cfb2100eab1932",
                         "c43bb7ab734fef20f0735f48fb7542ff1c1481e430506eab41489a2bbef036c7",
                         "e792e6384ec942be041971c52f88584c9aada3c3f10d6e3d47c3353e59499d41"]),
    ((5, 2, 0.005, 0.3), ["11328eb43f60bdc6346d20b53ef90ce8b3cfd87b52c3ccc864f26bf158a9b627",
                          "11328eb43f60bdc6346d20b53ef90ce8b3cfd87b52c3ccc864f26bf158a9b627",
                          "7438dd26ace4cd18d106f3f2e82c47ff6900e140ef2bb9f2c6540215c8e27c44"]),
]  # fmt: skip


def golden_upload(seed: int, channels: int, level: float, spike: float) -> bytes:
    """A 3 s 16-bit WAV of four tones and noise with five clicks, from a seeded generator."""
    rng = np.random.default_rng(seed)
    t = np.arange(3 * SR) / SR
    tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in rng.uniform(60, 3000, 4))
    x = level * (tone[:, None] + 0.4 * rng.standard_normal((t.size, channels)))  # (T, C)
    x[rng.integers(0, t.size, 5)] = spike  # a few clicks: the peak ceiling holds the gain down
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def upload(case, name="take.wav"):
    return SimpleUploadedFile(name, golden_upload(*case), content_type="audio/wav")


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "hashes"), PRE_MERGE_SHA256, ids=lambda v: str(v)[:20])
def test_it_stores_an_upload_with_the_bytes_the_code_before_the_loudness_merge_stored(
    owner, case, hashes
):
    catalogue = Catalogue.objects.create(name=f"pins {case}", owner=owner)
    stored = []
    for target in TARGETS_LUFS:
        clip = clip_from_upload(upload(case, f"take{target}.wav"), catalogue, target)
        assert clip.status == Clip.Status.READY, clip.error
        stored.append(clip.sha256)
    assert stored == hashes


@pytest.mark.django_db
def test_it_takes_a_mono_upload_stored_before_the_loudness_merge_as_a_duplicate(owner):
    catalogue = Catalogue.objects.create(name="before and after", owner=owner)
    case, hashes = PRE_MERGE_SHA256[0]
    earlier = Clip.objects.create(  # the row the code before the merge left for this upload
        catalogue=catalogue, name="take.wav", status=Clip.Status.READY, sha256=hashes[0]
    )

    again = clip_from_upload(upload(case), catalogue, TARGETS_LUFS[0])

    assert again.duplicate_of == earlier
    assert list(Clip.objects.filter(catalogue=catalogue)) == [earlier]


@pytest.mark.django_db
def test_it_takes_the_same_mono_upload_twice_as_a_duplicate(owner):
    catalogue = Catalogue.objects.create(name="twice", owner=owner)
    first = clip_from_upload(upload(PRE_MERGE_SHA256[1][0]), catalogue, -23.0)
    second = clip_from_upload(upload(PRE_MERGE_SHA256[1][0]), catalogue, -23.0)

    assert first.status == Clip.Status.READY and second.duplicate_of == first
    assert Clip.objects.filter(catalogue=catalogue).count() == 1
