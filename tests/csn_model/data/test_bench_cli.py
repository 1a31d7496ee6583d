"""`csn bench-data --keep DIR`: the datasets it writes stay inside DIR, and DIR is its own."""

from __future__ import annotations

from csn_model.cli import main
from csn_model.data.synth import MANIFEST

# The smallest run that still loads pseudo triplets: 3 training tracks of 2 s.
TINY = ["bench-data", "--tracks", "4", "--seconds", "2", "--items", "2"]
TINY += ["--segment-seconds", "0.5", "--format", "wav"]


def test_it_refuses_a_keep_folder_it_did_not_make_and_touches_nothing_beside_it(tmp_path, capsys):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    sibling = tmp_path / "keep-w1"  # where earlier versions wrote, after deleting it
    sibling.mkdir()
    (sibling / "precious.txt").write_text("mine too")
    assert main([*TINY, "--workers", "1", "--keep", str(keep)]) == 2
    assert str(keep) in capsys.readouterr().err
    assert (keep / "notes.txt").read_text() == "mine"
    assert (sibling / "precious.txt").read_text() == "mine too"
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]


def test_it_writes_each_dataset_under_the_keep_folder_and_reruns_there(tmp_path):
    keep = tmp_path / "keep"
    assert main([*TINY, "--workers", "2", "--keep", str(keep)]) == 0
    assert (keep / "w1" / MANIFEST).is_file() and (keep / "w2" / MANIFEST).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    assert main([*TINY, "--workers", "1", "--keep", str(keep)]) == 0  # its own folder: reused
    assert (keep / "w1" / MANIFEST).is_file()


def test_it_refuses_too_few_tracks_for_pseudo_triplets_before_any_work(tmp_path, capsys):
    keep = tmp_path / "keep"
    for tracks in ("2", "3"):  # 2 training tracks: pseudo triplets need 3
        try:
            main(["bench-data", "--tracks", tracks, "--keep", str(keep)])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"--tracks {tracks} was accepted")
        err = capsys.readouterr().err
        assert f"--tracks: {tracks} tracks give 2 training tracks" in err
        assert "at least 4" in err and "Traceback" not in err
    assert not keep.exists()  # nothing synthesised
