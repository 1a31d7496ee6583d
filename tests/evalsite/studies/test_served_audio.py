"""Each participant's slot and part is served its own rendition of its clip (`served_audio`): the
identical-candidate catch trial's candidate is not its reference byte for byte, a clip played in
two slots (a repeat) or to two participants has other bytes each time, one URL keeps its bytes
(and its byte ranges), and the variation is inaudible: at most ~1 LSB of dither and a few ms of
silence around the clip, the loudness unchanged.
"""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import pytest
import soundfile as sf
from django.test import Client
from django.urls import reverse

from evalsite.stimuli.audio import loudness_lufs, normalised_path
from evalsite.studies import flow_trials, served_audio
from evalsite.studies.models import Assignment, Participant, Study
from tests.evalsite.studies.conftest import enter
from tests.evalsite.studies.participant_steps import (
    DESKTOP_UA,
    answer_current,
    finish_practice,
    to_step,
    url,
)

pytestmark = pytest.mark.django_db
LSB = 1 / 32768


def fetch(client, p: Participant, slot: Assignment, part: str) -> bytes:
    response = client.get(reverse("studies:audio", args=[p.token, slot.pk, part]))
    assert response.status_code == 200, response.status_code
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    return body


def position_of(slot: Assignment, canonical: str) -> str:
    return "A" if slot.displayed_first == canonical else "B"


def play_until(client, p: Participant, wanted) -> Assignment:
    """Answer trials until the current slot is one `wanted(slot)` accepts; that slot."""
    while not wanted(slot := flow_trials.current_slot(p)):
        answer_current(client, p)
    client.get(url(p), HTTP_USER_AGENT=DESKTOP_UA)  # its page, as a browser shows it first
    return slot


def in_trials(client, study: Study) -> Participant:
    p = to_step(client, enter(client, study), "practice")
    finish_practice(client, p)
    return p


def test_it_serves_the_identical_catch_candidate_unlike_its_reference(client, listening_study):
    p = in_trials(client, listening_study)
    slot = play_until(client, p, lambda s: s.trial.catch_kind == "identical")
    same = position_of(slot, slot.trial.expected)
    assert slot.trial.reference_id == getattr(slot.trial, f"candidate_{slot.trial.expected}_id")
    reference, candidate = fetch(client, p, slot, "r"), fetch(client, p, slot, same)
    assert hashlib.sha256(reference).digest() != hashlib.sha256(candidate).digest()
    assert len(reference) != len(candidate)  # the Content-Length (a devtools Size column)
    other = fetch(client, p, slot, "B" if same == "A" else "A")
    assert len({len(reference), len(candidate), len(other)}) == 3


def test_it_serves_a_clip_with_other_bytes_in_each_slot_and_to_each_participant(
    client, listening_study
):
    p = in_trials(client, listening_study)
    repeat = p.slots.get(trial__catch_kind="repeat")
    original = p.slots.get(trial=repeat.trial.repeat_of)
    first = play_until(client, p, lambda s: s.pk in (original.pk, repeat.pk))
    second = repeat if first.pk == original.pk else original
    earlier = {k: fetch(client, p, first, k) for k in "rAB"}
    play_until(client, p, lambda s: s.pk == second.pk)
    later = {k: fetch(client, p, second, k) for k in "rAB"}
    # the same reference and the same two candidates, shown swapped: no bytes recur
    assert not {hashlib.sha256(b).digest() for b in earlier.values()} & {
        hashlib.sha256(b).digest() for b in later.values()
    }
    # nor their sizes as a set (one size may meet another by chance: each slot draws its own
    # 0-60 ms of padding per sound, so a coincidence links nothing; all three would)
    assert sorted(len(b) for b in earlier.values()) != sorted(len(b) for b in later.values())

    other_client = Client()
    q = in_trials(other_client, listening_study)
    theirs = play_until(other_client, q, lambda s: s.trial_id == first.trial_id)
    assert fetch(other_client, q, theirs, "r") != earlier["r"]


def test_it_serves_one_url_the_same_bytes_and_byte_ranges_of_them(client, listening_study):
    p = to_step(client, enter(client, listening_study), "practice")  # practice varies too
    slot = play_until(client, p, lambda s: True)
    whole = fetch(client, p, slot, "A")
    assert fetch(client, p, slot, "A") == whole
    link = reverse("studies:audio", args=[p.token, slot.pk, "A"])
    for header, start, end in [("bytes=0-99", 0, 99), ("bytes=1000-", 1000, len(whole) - 1),
                               ("bytes=-300", len(whole) - 300, len(whole) - 1)]:  # fmt: skip
        part = client.get(link, HTTP_RANGE=header)
        assert part.status_code == 206
        assert part["Content-Range"] == f"bytes {start}-{end}/{len(whole)}"
        assert b"".join(part.streaming_content) == whole[start : end + 1]
    assert client.get(link, HTTP_RANGE=f"bytes={len(whole)}-").status_code == 416


def test_it_varies_a_preview_participants_sounds(client, listening_study, experimenter):
    listening_study.status = Study.Status.DRAFT
    listening_study.save()
    client.force_login(experimenter)
    link = reverse("studies:entry", args=[listening_study.slug]) + "?pid=preview-1"
    assert client.post(link, HTTP_USER_AGENT=DESKTOP_UA).status_code == 302
    p = to_step(client, listening_study.participants.get(external_pid="preview-1"), "practice")
    slot = play_until(client, p, lambda s: True)
    target = float(listening_study.setting("loudness_target_lufs"))
    plain = normalised_path(slot.trial.reference, target).read_bytes()
    served = fetch(client, p, slot, "r")
    assert served != plain and len(served) > len(plain) - 1


def test_it_varies_a_clip_inaudibly(listening_study):
    clip = listening_study.trials.filter(is_practice=False).first().reference
    target = float(listening_study.setting("loudness_target_lufs"))
    plain, sr = sf.read(normalised_path(clip, target), dtype="int16", always_2d=True)  # (T, C)
    for slot, part in [(1, "r"), (1, "A"), (2, "r"), (99, "B")]:
        ((lead, tail),) = [served_audio.pads(7, slot, sr)[part]]
        most = round(served_audio.PAD_MAX_S * sr)
        assert 0 <= lead <= most and 0 <= tail <= most
        payload = served_audio.rendition(normalised_path(clip, target), 7, slot, part)
        varied, sr2 = sf.read(io.BytesIO(payload), dtype="int16", always_2d=True)  # (T', C)
        assert sr2 == sr and varied.shape == (lead + plain.shape[0] + tail, plain.shape[1])
        padded = np.pad(plain.astype(np.int32), ((lead, tail), (0, 0)))  # (T', C)
        difference = varied.astype(np.int32) - padded
        assert 0 < np.abs(difference).max() <= 2  # LSBs: it changed, by dither only
        assert np.count_nonzero(difference) > 0.1 * difference.size  # over the whole clip
        # The dither leaves the loudness as it was, of the clip and of the padded file. (Padded
        # and plain files are not compared: BS.1770 measures in 400 ms blocks on a 100 ms grid
        # from the file's start, so a lead-in moves the grid and changes the measure of this
        # decaying 1.2 s tone by up to 0.27 LU, though no sample's level changes.)
        clip_part = varied[lead : lead + plain.shape[0]]
        assert abs(loudness_lufs(clip_part * LSB, sr) - loudness_lufs(plain * LSB, sr)) < 0.1
        assert abs(loudness_lufs(varied * LSB, sr) - loudness_lufs(padded * LSB, sr)) < 0.1
    assert served_audio.pads(7, 1, sr) != served_audio.pads(8, 1, sr)


def test_it_renders_any_byte_range_as_the_slice_of_the_whole(listening_study):
    clip = listening_study.trials.filter(is_practice=False).first().reference
    path = normalised_path(clip, float(listening_study.setting("loudness_target_lufs")))
    made = served_audio.Rendition(path, 7, 3, "B")
    whole = made.bytes()
    assert len(whole) == made.size
    samples, sr = sf.read(path, dtype="int16", always_2d=True)  # (T, C)
    copy = io.BytesIO()  # the header soundfile writes for the same format
    sf.write(
        copy, np.zeros((made.total, samples.shape[1]), np.int16), sr, format="WAV", subtype="PCM_16"
    )
    assert whole[: served_audio.HEADER] == copy.getvalue()[: served_audio.HEADER]
    frame = 2 * samples.shape[1]
    edge = served_audio.HEADER + frame * served_audio.BLOCK  # where the second dither draw starts
    for start, end in [(0, 10), (40, 50), (edge - 3, edge + 5), (1001, len(whole) + 9)]:
        assert made.read(start, end) == whole[start:end]
    with made.open() as stream:  # read as a response streams it, in odd steps after a seek
        stream.seek(edge - 7)
        got = b"".join(iter(lambda: stream.read(4093), b""))
    assert got == whole[edge - 7 :]


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24"])
def test_it_refuses_to_render_a_source_that_is_not_16_bit_pcm(tmp_path, subtype):
    # A rendition copies the source's int16 samples: soundfile does not scale a float file's
    # samples to int16 (0.5 reads as 0), so such a file would be served near silent. Every
    # stored normalised clip is 16-bit (stimuli.audio.wav_bytes); another must not slip by.
    path = tmp_path / "clip.wav"
    sf.write(path, np.full((800, 1), 0.5), 8000, format="WAV", subtype=subtype)
    expected = rf"{re.escape(str(path))}: WAV audio of subtype {subtype}; expected PCM_16"
    with pytest.raises(ValueError, match=expected):
        served_audio.Rendition(path, 7, 3, "B")
