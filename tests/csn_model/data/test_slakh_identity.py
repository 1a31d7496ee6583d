"""What the reader and the benchmark take a dataset to be: its fingerprint, one source MIDI in two
splits refused (Slakh2100's duplicates), and silence judged as csn_model.silence judges it (a
constant offset is silent)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml

from csn_model.data.fingerprint import dataset_fingerprint
from csn_model.data.slakh import DataError, SlakhDataset

from .conftest import SECONDS, SR, stem_signal


def _edit_metadata(track_dir, **fields) -> None:
    path = track_dir / "metadata.yaml"
    meta = yaml.safe_load(path.read_text())
    for key, value in fields.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path.write_text(yaml.safe_dump(meta, sort_keys=False))


def test_it_fingerprints_a_dataset_by_its_tracks_metadata_and_files(slakh_mini, tmp_path):
    before = dataset_fingerprint(slakh_mini)
    assert dataset_fingerprint(shutil.copytree(slakh_mini, tmp_path / "copy")) == before
    assert SlakhDataset(slakh_mini).fingerprint == before
    (slakh_mini / "omitted" / "Track00049" / "extra.txt").write_text("omitted/ is not read\n")
    assert dataset_fingerprint(slakh_mini) == before
    meta = slakh_mini / "train" / "Track00001" / "metadata.yaml"
    meta.write_text(meta.read_text() + "# edited\n")
    edited = dataset_fingerprint(slakh_mini)
    assert edited != before
    stem = slakh_mini / "test" / "Track01876" / "stems" / "S00.wav"
    sf.write(stem, np.zeros(SR), SR, subtype="PCM_16")  # another length: another size
    assert dataset_fingerprint(slakh_mini) not in (before, edited)


def test_it_refuses_one_source_midi_in_two_splits_and_recommends_redux(slakh_mini):
    train, test = slakh_mini / "train" / "Track00001", slakh_mini / "test" / "Track01876"
    lmd = yaml.safe_load((train / "metadata.yaml").read_text())["lmd_midi_dir"]
    _edit_metadata(test, lmd_midi_dir=lmd)  # Slakh2100's duplicates: one Lakh MIDI, two tracks
    with pytest.raises(DataError) as err:
        SlakhDataset(slakh_mini).tracks("test")
    for part in ("train/Track00001", "test/Track01876", lmd, "Slakh2100-redux", "omitted/"):
        assert part in str(err.value)
    _edit_metadata(test, lmd_midi_dir=None, UUID="1a81ae092884234f3264e2f45927f00a")
    with pytest.raises(DataError, match="train/Track00001 and test/Track01876 \\(UUID"):
        SlakhDataset(slakh_mini).track("Track01876")


def test_it_reads_tracks_without_source_fields_or_sharing_them_within_a_split(slakh_mini):
    _edit_metadata(slakh_mini / "test" / "Track01876", lmd_midi_dir=None, UUID=None)
    _edit_metadata(slakh_mini / "validation" / "Track01501", lmd_midi_dir=None, UUID=None)
    ds = SlakhDataset(slakh_mini)
    assert [len(ds.tracks(s)) for s in ds.splits] == [1, 1, 1]


def test_it_gives_csn_synth_tracks_their_source_midi_fields(tiny_dataset):
    metas = [yaml.safe_load(p.read_text()) for p in sorted(tiny_dataset.glob("*/*/metadata.yaml"))]
    sources = {m["lmd_midi_dir"] for m in metas}
    assert len(sources) == len({m["UUID"] for m in metas}) == len(metas) == 12
    assert all(m["UUID"] in m["lmd_midi_dir"] for m in metas)


def test_it_counts_a_constant_offset_stem_as_silent_like_the_catalogue(slakh_mini):
    # S00 is the track's only guitar: a constant 0.5 (pure DC) makes no sound.
    stem = slakh_mini / "train" / "Track00001" / "stems" / "S00.flac"
    sf.write(stem, np.full(SR * SECONDS, 0.5), SR, subtype="PCM_16")
    ds = SlakhDataset(slakh_mini)
    t = ds.track("Track00001")
    assert "guitar" not in t.conditions and t.silent_stems == ("S00",)
    assert ("Track00001", "S00", "silent audio") in ds.skipped
    assert len(t.active_segments("guitar", SR // 2, SR // 4)) == 0


def test_it_finds_active_segments_above_a_constant_offset(slakh_mini):
    # S06 (strings, the only "others" stem) enters half-way; an offset under it is not sound.
    stem = slakh_mini / "train" / "Track00001" / "stems" / "S06.flac"

    def others():
        track = SlakhDataset(slakh_mini).track("Track00001")
        return track.active_segments("others", SR // 2, SR // 4)

    clean = others()
    sf.write(stem, 0.3 + stem_signal("Track00001", "S06"), SR, subtype="PCM_16")
    offset = others()
    assert clean.min() >= SR * SECONDS // 2 - SR // 2
    np.testing.assert_array_equal(offset, clean)
