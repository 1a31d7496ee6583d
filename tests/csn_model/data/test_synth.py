"""csn synth: the generator's output is a Slakh dataset the reader loads, stems sum to the mix."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import yaml

from csn_model import CONDITIONS
from csn_model.cli import main
from csn_model.data.render import RenderError
from csn_model.data.slakh import SlakhDataset
from csn_model.data.synth import MANIFEST, split_plan, synthesize


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


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def test_it_is_deterministic_across_worker_counts_and_skips_finished_tracks(tmp_path):
    kwargs = dict(seconds=3.0, audio_format="wav", progress=False)
    one = synthesize(tmp_path / "w1", 4, 11, workers=1, **kwargs)
    two = synthesize(tmp_path / "w2", 4, 11, workers=2, **kwargs)
    assert one.rendered == two.rendered == 4
    assert _digest(tmp_path / "w1") == _digest(tmp_path / "w2")
    before = _digest(tmp_path / "w1")
    again = synthesize(tmp_path / "w1", 5, 11, workers=1, **kwargs)  # one more track
    assert (again.rendered, again.already_done) == (1, 4)
    after = _digest(tmp_path / "w1")
    assert {k: after[k] for k in before} == before


def test_it_refuses_to_mix_settings_in_one_folder_and_names_bad_soundfonts(tmp_path):
    synthesize(tmp_path / "d", 1, 0, seconds=1.0, progress=False)
    with pytest.raises(RenderError, match="seed: 0 there, 1 now"):
        synthesize(tmp_path / "d", 1, 1, seconds=1.0, progress=False)
    with pytest.raises(RenderError, match="nope.sf2: file not found"):
        synthesize(tmp_path / "e", 1, 0, soundfont=tmp_path / "nope.sf2", progress=False)


def test_it_refuses_a_non_empty_folder_without_its_manifest(tmp_path):
    foreign = tmp_path / "foreign"
    (foreign / "train" / "Track00001").mkdir(parents=True)
    (foreign / "train" / "Track00001" / "metadata.yaml").write_text("UUID: someone else's\n")
    with pytest.raises(RenderError, match=f"{foreign}: .*no {MANIFEST}"):
        synthesize(foreign, 2, 0, seconds=1.0, progress=False)
    assert not (foreign / MANIFEST).exists()
    assert [p.name for p in foreign.iterdir()] == ["train"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert synthesize(empty, 1, 0, seconds=1.0, progress=False).rendered == 1


def test_it_runs_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--tracks", "2", "--seconds", "2", "--seed", "5",
                 "--no-progress", "--workers", "1", "--midi"]) == 0  # fmt: skip
    assert len(list(out.glob("train/Track00001/MIDI/S*.mid"))) >= 3
    assert "synth: 2 tracks (2 rendered, 0 already done)" in capsys.readouterr().out
    assert len(SlakhDataset(out).tracks("train")) == 2
    assert main(["synth", "--out", str(out), "--tracks", "2", "--seconds", "2", "--seed", "5",
                 "--no-progress"]) == 0  # fmt: skip
    assert "already done" in capsys.readouterr().out
    assert main(["synth", "--out", str(out), "--tracks", "0"]) == 2


def test_it_splits_prefix_stably():
    plan = split_plan(20, (0.7, 0.15, 0.15))
    assert plan[:10] == split_plan(10, (0.7, 0.15, 0.15))
    assert [plan.count(s) for s in ("train", "validation", "test")] == [14, 3, 3]


def test_it_refuses_split_fractions_that_are_not_three_shares(tmp_path):
    # Two shares summing to 1 used to pass the check and fail later with an IndexError.
    with pytest.raises(ValueError, match=r"split fractions \(0.5, 0.5\): expected three shares"):
        synthesize(tmp_path / "d", 1, 0, seconds=1.0, split_fractions=(0.5, 0.5), progress=False)
    assert not (tmp_path / "d").exists()


def _render_or_die(job) -> dict:
    """A render that dies like an OOM-killed worker (SIGKILL of its own process) on track 2."""
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from csn_model.data import synth  # noqa: PLC0415

    if job[2] == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return synth._render_job(job)


@pytest.mark.timeout(90)
def test_it_fails_naming_the_track_whose_worker_died_and_a_rerun_resumes(tmp_path, monkeypatch):
    from csn_model.data import synth  # noqa: PLC0415

    kwargs = dict(seconds=2.0, audio_format="wav", progress=False)
    # The pool pickles the render function by name, so the workers run this test's one.
    monkeypatch.setattr(synth, "_render_job", _render_or_die)
    with pytest.raises(RenderError, match="Track00002") as err:
        synthesize(tmp_path / "d", 4, 3, workers=2, **kwargs)
    assert "worker" in str(err.value)
    written = {p.name for p in (tmp_path / "d").glob("*/Track*")}
    named = set(re.findall(r"Track\d{5}", str(err.value)))
    assert named == {f"Track{i:05d}" for i in range(1, 5)} - written  # exactly the lost ones
    monkeypatch.undo()
    again = synthesize(tmp_path / "d", 4, 3, workers=1, **kwargs)
    assert again.rendered >= 1 and again.already_done == 4 - again.rendered
    assert sorted(p.name for p in (tmp_path / "d").glob("*/Track*")) == [
        f"Track{i:05d}" for i in range(1, 5)
    ]
