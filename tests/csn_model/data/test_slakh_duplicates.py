"""Original Slakh2100's duplicate renderings (one source MIDI, several tracks): refused by default,
left out with `duplicates="omit"` (one track kept per source MIDI, as Slakh2100-redux does)."""

from __future__ import annotations

import argparse
import logging
import shutil

import pytest
import yaml

from csn_model.cli import main
from csn_model.config import ConfigError, DataConfig, ExperimentConfig, FeatureConfig
from csn_model.data.fingerprint import dataset_fingerprint
from csn_model.data.slakh import DataError, SlakhDataset
from csn_model.train import make_datasets, run_source
from csn_model.train_cli import add_arguments, run_config

from .conftest import SR

KEPT = "train/Track00001"
LEFT_OUT = "same source MIDI as a kept track"


def _copy(root, source: str, to: str):
    """A second rendering of `source` (same metadata.yaml, so the same lmd_midi_dir and UUID)."""
    return shutil.copytree(root / source, root / to)


@pytest.fixture
def original(slakh_mini):
    """slakh_mini with Track00001 (train) rendered again in validation and test, as Slakh2100 has
    it."""
    _copy(slakh_mini, KEPT, "validation/Track01502")
    _copy(slakh_mini, KEPT, "test/Track01877")
    return slakh_mini


def test_it_keeps_the_train_copy_and_leaves_out_the_validation_and_test_copies(original):
    ds = SlakhDataset(original, duplicates="omit")
    assert [[t.name for t in ds.tracks(s)] for s in ds.splits] == [
        ["Track00001"],
        ["Track01501"],
        ["Track01876"],
    ]
    assert [track for track, _reason in ds.omitted] == [
        "validation/Track01502",
        "test/Track01877",
    ]
    assert all(KEPT in reason and "lmd_midi_dir" in reason for _t, reason in ds.omitted)
    assert ds.omit_summary() == f"2 tracks left out: {LEFT_OUT}"
    with pytest.raises(DataError, match=f"test/Track01877 is left out: {LEFT_OUT}: {KEPT}"):
        ds.track("Track01877")


def test_it_leaves_out_a_duplicate_within_one_split_keeping_the_lowest_name(slakh_mini):
    _copy(slakh_mini, KEPT, "train/Track00002")
    meta = slakh_mini / "train" / "Track00002" / "metadata.yaml"
    shared = yaml.safe_load(meta.read_text())
    shared["lmd_midi_dir"] = "lmd_matched/O/T/H/TROTHER12345/other.mid"  # the UUID alone is shared
    meta.write_text(yaml.safe_dump(shared, sort_keys=False))
    assert len(SlakhDataset(slakh_mini).tracks("train")) == 2  # the default reads both, as before
    ds = SlakhDataset(slakh_mini, duplicates="omit")
    assert [t.name for t in ds.tracks("train")] == ["Track00001"]
    ((track, reason),) = ds.omitted
    assert track == "train/Track00002" and KEPT in reason and "UUID" in reason


def test_it_leaves_out_a_track_linked_to_a_kept_one_through_a_left_out_one(slakh_mini):
    # validation/B shares lmd_midi_dir with train/A, test/C shares B's UUID only: the two fields
    # name one source MIDI, so C is a third rendering of A's piece and is left out too.
    def rewrite(track, **fields):
        meta = slakh_mini / track / "metadata.yaml"
        data = yaml.safe_load(meta.read_text()) | fields
        meta.write_text(yaml.safe_dump(data, sort_keys=False))

    _copy(slakh_mini, KEPT, "validation/Track01502")
    _copy(slakh_mini, KEPT, "test/Track01877")
    rewrite("validation/Track01502", UUID="b" * 32)
    rewrite("test/Track01877", UUID="b" * 32, lmd_midi_dir="lmd_matched/C/C/C/TRC/c.mid")
    ds = SlakhDataset(slakh_mini, duplicates="omit")
    ds.check_sources()  # what the first read of a split does
    assert [track for track, _ in ds.omitted] == ["validation/Track01502", "test/Track01877"]
    reason = dict(ds.omitted)["test/Track01877"]
    assert KEPT in reason and "validation/Track01502" in reason and "UUID" in reason


def test_it_leaves_out_a_track_linked_to_a_kept_one_by_a_later_track():
    # The linking track comes last: train/A and validation/B share no id, test/C shares A's path
    # and B's UUID, so all three are one source MIDI; only A is kept.
    from csn_model.data.slakh import _omit

    tracks = [
        ("train/A", {"lmd_midi_dir": "X", "UUID": "a"}),
        ("validation/B", {"lmd_midi_dir": "Y", "UUID": "b"}),
        ("test/C", {"lmd_midi_dir": "X", "UUID": "b"}),
    ]
    omitted = dict(_omit(tracks))
    assert list(omitted) == ["validation/B", "test/C"]
    assert omitted["validation/B"].endswith("train/A (UUID b, via test/C)")
    assert omitted["test/C"].endswith("train/A (lmd_midi_dir X)")


def test_it_still_refuses_duplicates_by_default_and_names_the_option(original):
    with pytest.raises(DataError) as err:
        SlakhDataset(original).tracks("train")
    for part in ("train/Track00001 and test/Track01877", "Slakh2100-redux", 'duplicates="omit"'):
        assert part in str(err.value)
    with pytest.raises(DataError, match="duplicates: expected 'refuse' or 'omit', got 'keep'"):
        SlakhDataset(original, duplicates="keep")


def test_it_fingerprints_what_omit_leaves_out(original, slakh_mini):
    as_written = dataset_fingerprint(original)
    omit = SlakhDataset(original, duplicates="omit")
    assert SlakhDataset(original).fingerprint == as_written  # refuse: the content alone, as before
    assert omit.fingerprint != as_written  # a triplet file or run of one mode refuses the other
    shutil.rmtree(original / "validation" / "Track01502")
    shutil.rmtree(original / "test" / "Track01877")
    nothing_left_out = SlakhDataset(slakh_mini, duplicates="omit")
    assert nothing_left_out.fingerprint == SlakhDataset(slakh_mini).fingerprint  # the same tracks


def test_it_reads_the_runs_data_config_and_records_it_in_the_run_source(original, caplog):
    cfg = ExperimentConfig(
        features=FeatureConfig(sample_rate=SR, segment_seconds=0.5),
        data=DataConfig(duplicates="omit"),
    )
    source = run_source(cfg, original, None)
    assert source["dataset"]["fingerprint"] == SlakhDataset(original, duplicates="omit").fingerprint
    with caplog.at_level(logging.INFO, logger="dup-test"):
        make_datasets(cfg, original, logging.getLogger("dup-test"))
    assert f"2 tracks left out: {LEFT_OUT}" in caplog.text
    with pytest.raises(DataError, match="--duplicates omit"):
        run_source(ExperimentConfig(), original, None)
    with pytest.raises(ConfigError, match="field data.duplicates must be 'refuse' or 'omit'"):
        ExperimentConfig(data=DataConfig(duplicates="keep"))


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([], "refuse"),
        (["--duplicates", "omit"], "omit"),
        (["--set", "data.duplicates=omit"], "omit"),
        (["--set", "data.duplicates=omit", "--duplicates", "refuse"], "refuse"),
    ],
)
def test_it_takes_the_duplicates_flag_into_the_train_config(argv, want):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--out", "o", *argv])
    assert run_config(args).data.duplicates == want


def test_it_passes_the_duplicates_flag_to_the_triplets_command(original, tmp_path, capsys):
    out = tmp_path / "t.json"
    argv = ["triplets", "--data", str(original), "--split", "validation", "--out", str(out),
            "--per-condition", "1", "--segment-seconds", "0.5"]  # fmt: skip
    assert main(argv) == 1
    assert "--duplicates omit" in capsys.readouterr().err
    main([*argv, "--duplicates", "omit"])
    printed = capsys.readouterr()
    assert f"csn triplets: 2 tracks left out: {LEFT_OUT}" in printed.out + printed.err
