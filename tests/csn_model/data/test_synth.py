"""csn synth: the generator's output is a Slakh dataset the reader loads, stems sum to the mix."""

from __future__ import annotations

import numpy as np
import yaml

from csn_model import CONDITIONS
from csn_model.data.slakh import SlakhDataset


def test_it_writes_a_dataset_the_reader_loads(tiny_dataset):
    ds = SlakhDataset(tiny_dataset)
    assert ds.sample_rate == 22050
    assert [len(ds.tracks(s)) for s in ("train", "validation", "test")] == [6, 2, 4]
    for split in ds.splits:
        for track in ds.tracks(split):
            assert track.num_frames == 8 * 22050
            assert len(track.conditions) >= 3
            assert set(track.conditions) <= set(CONDITIONS)
    assert ds.skipped == []


def test_it_makes_stems_that_sum_to_the_mix_exactly(tiny_dataset):
    ds = SlakhDataset(tiny_dataset)
    for track in ds.tracks("test"):
        n = track.num_frames
        stems = sum(track.read_condition(c, 0, n) for c in track.conditions)
        np.testing.assert_array_equal(stems, track.read_mix(0, n))


def test_it_records_what_each_stem_plays_and_every_listed_stem_is_audible(tiny_dataset):
    ds = SlakhDataset(tiny_dataset)
    for track in ds.tracks("train"):
        meta = yaml.safe_load((track.path / "metadata.yaml").read_text())
        assert {"tempo", "key", "mode", "style"} <= set(meta)
        listed = {s["condition"] for s in meta["stems"].values()}
        assert listed == set(track.conditions)  # no listed instrument is silent
        for sm in meta["stems"].values():
            assert {"program_num", "is_drum", "inst_class", "midi_program_name"} <= set(sm)
            assert (sm["bank"] == 128) == sm["is_drum"]
