"""The Python API (csn_model Embedder, `csn embed`) gives the site's vectors for the same file
when its target_lufs is the level the catalogue's clips are stored at (the search API's
`catalogue_lufs`): both bring audio to it with csn_model.loudness before embedding."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from csn_model.inference import Embedder
from evalsite.retrieval.ingest import embed_clips
from evalsite.retrieval.models import Embedding
from evalsite.retrieval.query import upload_vector
from evalsite.stimuli.audio import clip_from_array
from evalsite.stimuli.models import Catalogue
from tests.evalsite.retrieval.helpers import SR, piece_audio

pytestmark = pytest.mark.django_db


def _stereo(piece: int, gain: float) -> np.ndarray:
    x = piece_audio(piece, seconds=4.0).astype(np.float32)  # (T,)
    return gain * np.stack([x, 0.7 * x], axis=1)  # (T, 2)


@pytest.fixture
def levelled(ada):
    """A catalogue stored at -23 LUFS, as a study's Clips page or import_slakh stores it."""
    catalogue = Catalogue.objects.create(owner=ada, name="levelled")
    for p in range(3):
        clip_from_array(_stereo(p, 0.05 * (p + 1)), SR, catalogue, target_lufs=-23.0,
                        name=f"P{p:02d}", piece=f"P{p:02d}")  # fmt: skip
    return catalogue


def test_python_gives_the_sites_vector_for_a_stored_clip(levelled, checkpoint):
    clips = list(levelled.clips.order_by("pk"))
    embed_clips([c.pk for c in clips])
    site = np.stack([Embedding.objects.get(clip=c).as_array() for c in clips])  # (3, D)
    python = Embedder.from_checkpoint(checkpoint, device="cpu")  # levels by default
    np.testing.assert_array_equal(python.embed_files([c.file.path for c in clips]), site)


def test_python_on_the_original_file_matches_the_stored_clip_at_any_level(levelled, checkpoint,
                                                                           tmp_path):  # fmt: skip
    clip = levelled.clips.order_by("pk").first()
    embed_clips([clip.pk])
    site = Embedding.objects.get(clip=clip).as_array()  # (D,)
    python = Embedder.from_checkpoint(checkpoint, device="cpu")
    for gain in (0.05, 0.5 * 0.05):  # as uploaded, and 6 dB quieter
        path = tmp_path / f"P00_{gain}.wav"
        sf.write(path, _stereo(0, gain), SR, subtype="FLOAT")
        v = python.embed_files([path])[0]
        assert np.linalg.norm(v - site) < 0.01 * np.linalg.norm(site)  # 16-bit storage apart


def test_a_query_upload_gets_the_vector_python_gives_the_file(checkpoint, tmp_path):
    path = tmp_path / "q.wav"
    sf.write(path, _stereo(1, 0.02), SR, subtype="FLOAT")  # far below the target
    upload = SimpleUploadedFile("q.wav", path.read_bytes(), content_type="audio/wav")
    site = upload_vector(upload, -23.0)  # (D,) the catalogue's level
    python = Embedder.from_checkpoint(checkpoint, device="cpu").embed_files([path])[0]
    np.testing.assert_allclose(python, site, rtol=1e-5, atol=1e-6)


def test_a_query_upload_just_under_the_target_gets_the_vector_python_gives_the_file(
    checkpoint, tmp_path
):
    """One gain rule on both paths (csn_model.loudness.fit_gain): a file 0.05 LU under the target
    was left as it was by Python and levelled by the site, 1e-3 apart (findings_rf F4)."""
    from csn_model.loudness import loudness_lufs, playback_lufs

    x = _stereo(1, 1.0)
    played = playback_lufs(loudness_lufs(x, SR), 2)
    near = (x * 10 ** ((-23.05 - played) / 20)).astype(np.float32)
    assert playback_lufs(loudness_lufs(near, SR), 2) == pytest.approx(-23.05, abs=1e-3)
    path = tmp_path / "near.wav"
    sf.write(path, near, SR, subtype="FLOAT")
    upload = SimpleUploadedFile("near.wav", path.read_bytes(), content_type="audio/wav")
    site = upload_vector(upload, -23.0)  # (D,)
    python = Embedder.from_checkpoint(checkpoint, device="cpu").embed_files([path])[0]
    np.testing.assert_allclose(python, site, rtol=1e-5, atol=1e-6)


def test_python_at_the_level_the_search_api_reports_gives_a_non_default_catalogues_vectors(
    ada, checkpoint
):
    loud = Catalogue.objects.create(owner=ada, name="at -16")  # `import_slakh --lufs -16`
    for p in range(3):
        clip_from_array(_stereo(p, 0.05 * (p + 1)), SR, loud, target_lufs=-16.0,
                        name=f"P{p:02d}", piece=f"P{p:02d}")  # fmt: skip
    clips = list(loud.clips.order_by("pk"))
    embed_clips([c.pk for c in clips])
    site = np.stack([Embedding.objects.get(clip=c).as_array() for c in clips])  # (3, D)
    client = Client()
    client.force_login(ada)
    answer = client.get("/retrieval/api/search", {"catalogue": loud.pk, "clip": clips[0].pk,
                                                  "instrument": "bass", "k": 1}).json()  # fmt: skip
    level = answer["catalogue_lufs"]
    assert level == pytest.approx(-16.0, abs=0.1)

    files = [c.file.path for c in clips]
    at_level = Embedder.from_checkpoint(checkpoint, device="cpu", target_lufs=level)
    np.testing.assert_array_equal(at_level.embed_files(files), site)
    default = Embedder.from_checkpoint(checkpoint, device="cpu")  # -23: not this catalogue's
    assert not np.allclose(default.embed_files(files), site, atol=1e-3)


def test_python_measures_every_file_the_site_takes_on_its_own_channels():
    """Python levels a file on its own channels up to OWN_CHANNELS_MAX and on its mono mix
    beyond (BS.1770 weights five channels at most); the site must take no file that Python
    would measure on its mix, or the two would level it differently."""
    from csn_model.loudness import OWN_CHANNELS_MAX
    from evalsite.stimuli.audio import DEFAULT_LIMITS

    assert DEFAULT_LIMITS.max_channels <= OWN_CHANNELS_MAX
