"""The /datasets/ listing and its audio view (range requests, confinement to the dataset).

Personas: `ada`, an experimenter logged in on `client`; `listed`, a site offering tiny_dataset."""

from __future__ import annotations

import html
import re
import shutil

import pytest
import yaml
from django.utils.text import slugify

from csn_model.data.slakh import DataError, SlakhDataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(settings, tiny_dataset, tmp_path):
    """Persona: a site whose data folder is empty and whose CSN_DATASETS names tiny_dataset."""
    settings.CSN_DATA_DIR = tmp_path / "empty"
    settings.CSN_DATASETS = [tiny_dataset]
    return tiny_dataset


@pytest.fixture
def escaping(settings, tiny_dataset, tmp_path):
    """Persona: a copy of tiny_dataset where two test tracks' metadata.yaml point audio_dir
    outside the dataset, one by "../..", one by an absolute path (their stems moved there)."""
    root = tmp_path / "escaping"
    shutil.copytree(tiny_dataset, root)
    tracks = sorted(p for p in (root / "test").iterdir() if p.is_dir())
    values = {}
    outside = ("../../../outside/stems", str(tmp_path / "elsewhere"))
    for track, value in zip(tracks, outside, strict=False):
        target = (track / value).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(track / "stems", target)
        meta = track / "metadata.yaml"
        meta.write_text(meta.read_text().replace("audio_dir: stems", f"audio_dir: {value}"))
        values[track.name] = value
    settings.CSN_DATA_DIR = tmp_path / "empty"
    settings.CSN_DATASETS = [root]
    return root, values, [t.name for t in tracks[len(outside) :]]


def _audio_url(root, relpath: str) -> str:
    return f"/datasets/{slugify(root.name)}/audio/{relpath}"


def test_it_lists_tracks_per_split_with_tempo_key_programs_and_audio(client, ada, listed):
    page = client.get("/datasets/")
    assert page.status_code == 200
    html = page.content.decode()
    ds = SlakhDataset(listed)
    for split in ("train", "validation", "test"):
        assert f"<strong>{split}</strong>" in html
        for track in ds.tracks(split):
            assert f'data-track="{track.name}"' in html
            assert f"{track.metadata['tempo']:.0f} bpm" in html
            assert _audio_url(listed, f"{split}/{track.name}/mix.flac") in html
    t = ds.tracks("test")[0]
    stem = t.stems[t.conditions[0]][0]
    assert _audio_url(listed, f"test/{t.name}/stems/{stem.name}.flac") in html
    assert f"program {t.programs('bass')[0]}" in html


def test_it_says_how_to_make_a_dataset_when_there_is_none(client, ada, settings, tmp_path):
    settings.CSN_DATA_DIR = tmp_path
    settings.CSN_DATASETS = []
    assert "csn synth --out DIR" in client.get("/datasets/").content.decode()


def test_it_serves_audio_whole_and_by_byte_range(client, ada, listed):
    rel = "test/Track00002/mix.flac"
    data = (listed / rel).read_bytes()
    whole = client.get(_audio_url(listed, rel))
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == data and whole["Content-Type"] == "audio/flac"
    part = client.get(_audio_url(listed, rel), HTTP_RANGE="bytes=100-1099")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-1099/{len(data)}"
    assert b"".join(part.streaming_content) == data[100:1100]
    tail = client.get(_audio_url(listed, rel), HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == data[-10:]
    bad = client.get(_audio_url(listed, rel), HTTP_RANGE=f"bytes={len(data)}-")
    assert bad.status_code == 416 and bad["Content-Range"] == f"bytes */{len(data)}"


def test_it_refuses_paths_outside_the_dataset_and_non_audio_files(client, ada, listed, tmp_path):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF secret")
    link = listed / "test" / "Track00002" / "stems" / "link.wav"
    link.symlink_to(secret)
    try:
        for rel in (
            "../secret.wav",
            "test/../../secret.wav",
            "%2e%2e/%2e%2e/secret.wav",
            "test/Track00002/stems/link.wav",  # a symlink that leaves the root
            "test/Track00002/metadata.yaml",  # inside, but not audio
            "/etc/passwd",
        ):
            response = client.get(_audio_url(listed, rel))
            assert response.status_code == 404, rel
    finally:
        link.unlink()
    assert client.get("/datasets/no-such-dataset/audio/test/x.flac").status_code == 404


def test_it_answers_404_for_an_audio_path_with_a_nul_byte(client, ada, listed):
    assert client.get(_audio_url(listed, "test/a%00.flac")).status_code == 404


def test_it_lists_a_track_whose_audio_dir_leaves_the_dataset_as_an_error_row(client, ada, escaping):
    root, values, intact = escaping
    assert intact
    for url in ("/datasets/", f"/datasets/{slugify(root.name)}/?split=test"):
        page = client.get(url)
        assert page.status_code == 200, url
        text = html.unescape(page.content.decode())
        for name, value in values.items():
            assert f"{name}/metadata.yaml: audio_dir={value!r}" in text
        for name in intact:  # the rest of the listing still renders
            assert _audio_url(root, f"test/{name}/mix.flac") in text


def test_it_sends_anonymous_visitors_to_the_login_page(client, listed):
    slug = slugify(listed.name)
    for url in (
        "/datasets/",
        f"/datasets/{slug}/",
        _audio_url(listed, "test/Track00002/mix.flac"),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_it_answers_404_naming_the_splits_for_an_unknown_split(client, ada, listed):
    response = client.get(f"/datasets/{slugify(listed.name)}/?split=tset")
    assert response.status_code == 404
    text = html.unescape(response.content.decode())
    assert "split='tset'" in text and "expected one of train, validation, test" in text
    assert client.get(f"/datasets/{slugify(listed.name)}/?split=test").status_code == 200


def test_it_lists_every_track_of_original_slakh2100_including_duplicates(
    client, ada, listed, settings, tmp_path
):
    # Browsing reads each track's folder alone (no split is loaded for training or import), so
    # tracks rendered from one source MIDI are listed as they are, not refused.
    root = shutil.copytree(listed, tmp_path / "slakh2100")
    train, test = (sorted((root / s).iterdir())[0] for s in ("train", "test"))
    meta = yaml.safe_load((test / "metadata.yaml").read_text())
    meta["lmd_midi_dir"] = yaml.safe_load((train / "metadata.yaml").read_text())["lmd_midi_dir"]
    (test / "metadata.yaml").write_text(yaml.safe_dump(meta))  # one source MIDI, two splits
    settings.CSN_DATASETS = [root]
    with pytest.raises(DataError, match="source MIDI"):
        SlakhDataset(root).tracks("test")  # what an import would say
    for url in ("/datasets/", f"/datasets/{slugify(root.name)}/?split=test"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert f'data-track="{test.name}"' in page.content.decode()


def test_it_plays_a_track_folder_that_is_a_symlink_inside_the_dataset(
    client, ada, settings, tiny_dataset, tmp_path
):
    """A subset made of symlinked track folders (a common way to use part of a Slakh copy):
    the listing's players play; a path naming a file outside the dataset is still refused."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF secret")
    subset = tmp_path / "subset"
    (subset / "test").mkdir(parents=True)
    (subset / "test" / "Track00002").symlink_to(tiny_dataset / "test" / "Track00002")
    settings.CSN_DATA_DIR = tmp_path / "empty"
    settings.CSN_DATASETS = [subset]
    page = client.get(f"/datasets/{slugify(subset.name)}/").content.decode()
    urls = sorted(set(re.findall(r'/datasets/subset/audio/[^"]+', page)))
    assert _audio_url(subset, "test/Track00002/mix.flac") in urls and len(urls) > 1
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        rel = url.removeprefix("/datasets/subset/audio/")
        assert b"".join(response.streaming_content) == (subset / rel).read_bytes()
    for rel in (
        "test/Track00002/../../../secret.wav",
        "test/Track00002/stems/../../../../secret.wav",
        "test/../../secret.wav",
        "test/Track00002/metadata.yaml",
    ):
        assert client.get(_audio_url(subset, rel)).status_code == 404, rel
