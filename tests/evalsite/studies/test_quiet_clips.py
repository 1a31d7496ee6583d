"""A clip whose peaks keep its gain far under the study's loudness target (a click in silence)
is named, with how far under it plays, on the Clips page, in the upload's result and on the
overview, which counts such clips, so a researcher sees them before opening the study."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from evalsite.stimuli import served_level
from evalsite.stimuli.audio import clip_from_array, playback_lufs
from evalsite.stimuli.models import Catalogue
from evalsite.studies.models import Study, Trial
from tests.evalsite.studies.experimenter_personas import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

SR = 48000


def _click(seconds: float = 3.0) -> np.ndarray:
    """Digital silence with one -6 dBFS click: its peak, not its loudness, limits the gain."""
    x = np.zeros(int(seconds * SR), dtype=np.float32)
    x[SR] = 0.5
    return x


def _tone(seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.fixture
def quiet_study(alice) -> Study:
    catalogue = Catalogue.objects.create(owner=alice, name="alice clips")
    clip_from_array(_click(), SR, catalogue, -23.0, name="click.wav", piece="Click")
    clip_from_array(_tone(), SR, catalogue, -23.0, name="tone.wav", piece="Tone")
    return Study.objects.create(
        owner=alice, name="Levels", instruments=["drums"], catalogue=catalogue,
        settings={"loudness_target_lufs": -23.0},
    )  # fmt: skip


def test_it_tells_how_far_under_the_target_a_clip_plays(quiet_study):
    (click,) = quiet_study.catalogue.clips.filter(name="click.wav")
    (tone,) = quiet_study.catalogue.clips.filter(name="tone.wav")
    under = served_level.under_target([click, tone], -23.0)
    assert set(under) == {click.pk}
    # stored with its peak at the -1 dBFS ceiling, it gets no more gain: played as stored, at
    # the -37.7 LUFS the review measured for this clip (findings_rres.md, finding 7)
    assert under[click.pk] == pytest.approx(playback_lufs(click.loudness_lufs, 1), abs=0.05)
    assert under[click.pk] == pytest.approx(-37.7, abs=0.05)


def test_it_names_a_quiet_clip_on_the_clips_page_and_the_overview(client, alice, quiet_study):
    client.force_login(alice)
    (click,) = quiet_study.catalogue.clips.filter(name="click.wav")
    played = served_level.under_target([click], -23.0)[click.pk]
    html = client.get(reverse("studies:clips", args=[quiet_study.pk])).content.decode()
    line = f"played at {played:.1f} LUFS, {-23.0 - played:.1f} LU under the target"
    assert line in html and html.count("LU under the target: its peaks limit the gain") == 1
    _tones(quiet_study)
    _trial(quiet_study, ["t0.wav", "click.wav", "t1.wav"])
    overview = client.get(reverse("studies:study_detail", args=[quiet_study.pk])).content.decode()
    assert 'id="quiet-clips"' in overview
    assert "1 clip in this study's trials plays more than 1 LU under the loudness target" in (
        overview
    )


def test_a_higher_target_counts_the_headroom_a_clip_has(client, alice, quiet_study):
    """The tone stored at -23 has headroom to -17 and beyond: not flagged at -17; the click is."""
    Study.objects.filter(pk=quiet_study.pk).update(settings={"loudness_target_lufs": -17.0})
    quiet_study.refresh_from_db()
    clips = list(quiet_study.catalogue.clips.all())
    assert {c.name for c in clips if c.pk in served_level.under_target(clips, -17.0)} == {
        "click.wav"
    }


def test_the_upload_result_says_how_far_under_the_target_it_plays(client, alice, quiet_study):
    client.force_login(alice)
    buf = io.BytesIO()
    sf.write(buf, _click(2.0), SR, format="WAV", subtype="PCM_16")
    upload = SimpleUploadedFile("extra_click.wav", buf.getvalue())
    response = client.post(
        reverse("studies:clips", args=[quiet_study.pk]), {"files": [upload]}, follow=True
    )
    html = response.content.decode()
    result = html[html.index('id="upload-results"') :]
    result = result[: result.index("</table>")]
    assert "extra_click.wav" in result and "LU under the target: its peaks limit the gain" in result


def test_no_clip_is_flagged_where_every_clip_reaches_the_target(client, alice, quiet_study):
    quiet_study.catalogue.clips.filter(name="click.wav").delete()
    client.force_login(alice)
    overview = client.get(reverse("studies:study_detail", args=[quiet_study.pk])).content.decode()
    assert 'id="quiet-clips"' not in overview and "LU under the target" not in overview


def test_it_keeps_each_clips_peak_so_a_page_view_reads_no_audio(client, alice, quiet_study):
    """The peak is measured once, when the clip is stored: with its file gone, the overview and
    the Clips page still name the click (a view that read the file would find nothing)."""
    (click,) = quiet_study.catalogue.clips.filter(name="click.wav")
    data, _sr = sf.read(click.file.path, dtype="float32", always_2d=True)
    assert click.peak_dbfs == pytest.approx(20 * np.log10(np.max(np.abs(data))), abs=1e-4)
    for clip in quiet_study.catalogue.clips.all():
        clip.file.storage.delete(clip.file.name)
    client.force_login(alice)
    overview = client.get(reverse("studies:study_detail", args=[quiet_study.pk])).content.decode()
    assert 'id="quiet-clips-unused"' in overview
    html = client.get(reverse("studies:clips", args=[quiet_study.pk])).content.decode()
    assert html.count("LU under the target: its peaks limit the gain") == 1


def _trial(study: Study, names: list[str]) -> None:
    r, a, b = (study.catalogue.clips.get(name=n) for n in names)
    Trial.objects.create(study=study, reference=r, candidate_a=a, candidate_b=b,
                         instrument="drums")  # fmt: skip


def _tones(study: Study) -> None:
    for i in range(3):
        clip_from_array(_tone() * (1 + i / 10), SR, study.catalogue, -23.0, name=f"t{i}.wav",
                        piece=f"T{i}")  # fmt: skip


def test_the_overview_counts_quiet_clips_in_the_studys_trials(client, alice, quiet_study):
    _tones(quiet_study)
    _trial(quiet_study, ["t0.wav", "click.wav", "t1.wav"])
    client.force_login(alice)
    overview = client.get(reverse("studies:study_detail", args=[quiet_study.pk])).content.decode()
    assert "1 clip in this study's trials plays more than 1 LU under" in overview
    assert "leave it out of the trials" in overview


def test_a_quiet_clip_in_no_trial_is_not_told_to_be_left_out(client, alice, quiet_study):
    """The review's case (findings_rdiff.md, 4): the click is in the catalogue, in no trial; the
    warning to leave it out of the trials would never clear. It is named apart, as such."""
    _tones(quiet_study)
    _trial(quiet_study, ["t0.wav", "t1.wav", "t2.wav"])
    client.force_login(alice)
    overview = client.get(reverse("studies:study_detail", args=[quiet_study.pk])).content.decode()
    assert 'id="quiet-clips"' not in overview and "leave it out" not in overview
    assert "1 ready clip of the catalogue, in none of this study's trials, would play" in (overview)


def test_clips_whose_peak_is_not_known_yet_are_counted_and_named_until_measured(
    client, alice, quiet_study
):
    """A clip stored by a process still on the code before peaks were kept (between `migrate`
    and its restart), or whose file migration stimuli 0004 could not read, has no peak: the
    quiet-clip warning cannot judge it. The overview and the Clips page count and name such
    clips and give the command that measures them, until it has (findings_rupg.md, 1)."""
    quiet_study.catalogue.clips.filter(name="click.wav").update(peak_dbfs=None)
    client.force_login(alice)
    # where each page names the click once its peak is known
    pages = {
        reverse("studies:study_detail", args=[quiet_study.pk]): 'id="quiet-clips-unused"',
        reverse("studies:clips", args=[quiet_study.pk]): 'class="error quiet-clip"',
    }
    for url, named in pages.items():
        html = client.get(url).content.decode()
        assert named not in html
        note = html[html.index('id="clips-peak-unknown"') :]
        note = note[: note.index("</p>")]
        assert "1 ready clip of the catalogue has no measured peak yet (click.wav)" in note
        assert "manage.py measure_clip_peaks" in note
    call_command("measure_clip_peaks", stdout=io.StringIO())
    for url, named in pages.items():
        html = client.get(url).content.decode()
        assert 'id="clips-peak-unknown"' not in html and named in html  # the click judged again


def test_a_few_clips_without_a_peak_are_named_and_the_rest_counted(client, alice, quiet_study):
    _tones(quiet_study)
    quiet_study.catalogue.clips.update(peak_dbfs=None)
    client.force_login(alice)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(served_level, "PEAK_UNKNOWN_NAMED", 2)
        html = client.get(reverse("studies:study_detail", args=[quiet_study.pk])).content.decode()
    named = "(click.wav, tone.wav and 3 more)"
    assert f"5 ready clips of the catalogue have no measured peak yet {named}" in html
