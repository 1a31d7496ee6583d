"""Bad entries in a dataset folder: file names that are not UTF-8, track entries that are
dangling symlinks or symlink loops. Each is named with its path, and none is dropped silently;
a file the reader does not use does not stop it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from csn_model.cli import main
from csn_model.data.fingerprint import dataset_fingerprint
from csn_model.data.slakh import DataError, SlakhDataset


def _copy(tiny_dataset: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(tiny_dataset, tmp_path / name, symlinks=True))


def _first(root: Path, split: str) -> Path:
    return sorted(p for p in (root / split).iterdir() if p.is_dir())[0]


def _latin1(folder: Path, name: bytes) -> Path:
    """A path in `folder` whose last name is the given bytes (not valid UTF-8)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def _triplets(root: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    out = tmp_path / "t.json"
    rc = main(["triplets", "--data", str(root), "--split", "test", "--kind", "pseudo",
               "--per-condition", "2", "--out", str(out)])  # fmt: skip
    return rc, capsys.readouterr().err


def test_it_reads_and_fingerprints_a_dataset_with_a_stray_latin1_file_name(
    tiny_dataset, tmp_path, capsys
):
    root = _copy(tiny_dataset, tmp_path, "stray")
    _latin1(_first(root, "test"), b"notes_caf\xe9.txt").write_text("x")
    _latin1(_first(root, "test") / "stems", b"S0\xe9.flac").write_bytes(b"")
    ds = SlakhDataset(root)
    assert len(ds.tracks("test")) == 4
    # the stray file is part of the content, as any other file's name and size
    assert dataset_fingerprint(root) != dataset_fingerprint(tiny_dataset)
    rc, err = _triplets(root, tmp_path, capsys)
    assert rc == 0, err
    shown = [stem for _track, stem, _why in ds.skipped]
    assert "S0\\xe9" in shown  # the unlisted audio file, its name printable


def test_it_refuses_a_track_folder_whose_name_is_not_utf8_naming_it(tiny_dataset, tmp_path, capsys):
    root = _copy(tiny_dataset, tmp_path, "badname")
    _first(root, "test").rename(_latin1(root / "test", b"Track\xff02"))
    with pytest.raises(DataError, match=r"not valid UTF-8.*Track\\xff02"):
        SlakhDataset(root).tracks("test")
    rc, err = _triplets(root, tmp_path, capsys)
    assert rc == 1 and "Traceback" not in err
    assert "Track\\xff02" in err and "not valid UTF-8" in err
    err.encode("utf-8")  # printable as it is


def _break_links(root: Path) -> None:
    """A dangling symlink and a symlink loop among the train tracks."""
    (root / "train" / "Track00077").symlink_to("/nonexistent/Track77")
    (root / "train" / "TrackLoop").symlink_to("TrackLoop")


def test_it_refuses_track_entries_that_are_dangling_symlinks_or_loops_naming_each(
    tiny_dataset, tmp_path
):
    root = _copy(tiny_dataset, tmp_path, "links")
    (root / "train" / "Track00077").symlink_to("/nonexistent/Track77")
    with pytest.raises(DataError, match=r"Track00077: .*/nonexistent/Track77.*dangling"):
        SlakhDataset(root).tracks("train")
    (root / "train" / "Track00077").unlink()
    (root / "train" / "TrackLoop").symlink_to("TrackLoop")
    with pytest.raises(DataError, match=r"TrackLoop: .*symlink loop"):
        SlakhDataset(root).tracks("validation")  # the source check reads every split


def test_its_fingerprint_changes_with_a_broken_track_link(tiny_dataset, tmp_path):
    root = _copy(tiny_dataset, tmp_path, "fp")
    before = dataset_fingerprint(root)
    assert before == dataset_fingerprint(tiny_dataset)
    (root / "train" / "Track00077").symlink_to("/nonexistent/Track77")
    assert dataset_fingerprint(root) != before


def test_csn_triplets_names_a_dangling_track_link(tiny_dataset, tmp_path, capsys):
    root = _copy(tiny_dataset, tmp_path, "cli")
    _break_links(root)
    rc, err = _triplets(root, tmp_path, capsys)
    assert rc == 1 and "Traceback" not in err
    assert "Track00077" in err or "TrackLoop" in err


def test_it_names_the_folder_above_the_root_whose_name_is_not_utf8(tiny_dataset, tmp_path):
    parent = _latin1(tmp_path, b"caf\xe9")
    parent.mkdir()
    root = _copy(tiny_dataset, parent, "data")
    with pytest.raises(DataError) as caught:
        SlakhDataset(root)
    message = str(caught.value)
    assert "(b'caf\\xe9')" in message  # the name at fault, not the root's own 'data'
    assert "b'data'" not in message


def test_a_missing_stem_names_the_entries_of_its_folder_whose_names_are_not_utf8(
    tiny_dataset, tmp_path
):
    root = _copy(tiny_dataset, tmp_path, "renamed")
    stems = _first(root, "test") / "stems"
    listed = sorted(p for p in stems.iterdir() if p.suffix == ".flac")[0]
    listed.rename(_latin1(stems, b"S0\xe9.flac"))  # the listed stem, renamed in Latin-1
    with pytest.raises(DataError) as err:
        SlakhDataset(root).tracks("test")
    message = str(err.value)
    assert f"{listed.stem}.flac|.wav does not exist" in message, message
    assert "not valid UTF-8" in message and "S0\\xe9.flac" in message, message
    message.encode("utf-8")  # printable as it is


def test_a_missing_stem_in_a_folder_of_utf8_names_says_only_that_it_is_missing(
    tiny_dataset, tmp_path
):
    root = _copy(tiny_dataset, tmp_path, "removed")
    stems = _first(root, "test") / "stems"
    sorted(p for p in stems.iterdir() if p.suffix == ".flac")[0].unlink()
    with pytest.raises(DataError, match=r"\.flac\|\.wav does not exist$"):
        SlakhDataset(root).tracks("test")
