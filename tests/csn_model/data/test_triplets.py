"""Triplet invariants on data made by `csn synth` (the session's tiny_dataset)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csn_model import CONDITIONS
from csn_model.cli import main
from csn_model.data.slakh import DataError, SlakhDataset
from csn_model.data.slakh_track import ACTIVE_ABS_RMS
from csn_model.data.torch_data import StemTorchDataset, TripletTorchDataset
from csn_model.data.triplets import (
    TripletSampler,
    load_triplets,
    make_eval_set,
    render_mix,
    render_stems,
    save_triplets,
)

SEG = 22050  # one-second segments


@pytest.fixture(scope="module")
def ds(tiny_dataset):
    return SlakhDataset(tiny_dataset)


@pytest.fixture(scope="module")
def sampler(ds):
    return TripletSampler(ds, "test", SEG, seed=7)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_it_builds_pseudo_mix_triplets_as_method_md_defines_them(sampler):
    for cond in CONDITIONS:
        k = CONDITIONS.index(cond)
        for _ in range(40):
            t = sampler.sample(cond, "pseudo")
            a, p, n = t.anchor.parts, t.positive.parts, t.negative.parts
            assert t.condition == cond and t.kind == "pseudo"
            # anchor and positive: the c stem of the same piece A, at different segments
            assert a[k].track == p[k].track and abs(a[k].start - p[k].start) >= SEG
            # negative: a c stem from a piece D != A ...
            assert n[k].track != a[k].track
            others = [j for j in range(len(CONDITIONS)) if j != k]
            # ... with exactly the anchor's other stems (B's, same segment)
            assert [a[j] for j in others] == [n[j] for j in others]
            b_tracks = {a[j].track for j in others if a[j] is not None}
            c_tracks = {p[j].track for j in others if p[j] is not None}
            assert len(b_tracks) <= 1 and len(c_tracks) <= 1
            assert a[k].track not in b_tracks | c_tracks and not b_tracks & c_tracks


def test_it_uses_the_original_piece_b_as_the_negative_when_d_is_b(sampler):
    """METHOD.md Training 2: n = D^(c)_B, and D = B gives the original piece B (time-aligned)."""
    rng, d_is_b = np.random.default_rng(3), 0
    for _ in range(400):
        t = sampler.sample(None, "pseudo", rng)
        k = CONDITIONS.index(t.condition)
        own = t.negative.parts[k]
        rest = [g for j, g in enumerate(t.negative.parts) if j != k and g is not None]
        if rest and own.track == rest[0].track:
            d_is_b += 1
            assert own.start == rest[0].start, f"negative {t.negative} is not piece B's own mix"
            active = sampler.ds.track(own.track).active_segments(t.condition, SEG, sampler.hop)
            assert own.start in active  # its c stem is audible there
    assert d_is_b > 10  # four test tracks: D = B is frequent


def test_it_marks_interchanged_conditions_only_where_the_reversed_triplet_is_valid(ds, sampler):
    checked = 0
    for _ in range(25):
        t = sampler.sample(None, "pseudo")
        for cond in t.interchanged:
            k = CONDITIONS.index(cond)
            assert cond != t.condition
            a, p, n = t.anchor.part(cond), t.positive.part(cond), t.negative.part(cond)
            # (anchor, negative, positive) under k: anchor and negative share B's k stem ...
            assert a == n and p is not None and p.track != a.track
            stems = [render_stems(ds, s, SEG)[k] for s in (t.anchor, t.negative, t.positive)]
            np.testing.assert_array_equal(stems[0], stems[1])
            # ... and the positive's k stem (another piece) is audible too, as is B's
            assert min(_rms(stems[0]), _rms(stems[2])) > ACTIVE_ABS_RMS
            checked += 1
    assert checked > 20


def test_it_picks_segments_where_the_conditions_stem_is_audible(ds, sampler):
    for cond in CONDITIONS:
        k = CONDITIONS.index(cond)
        for _ in range(10):
            t = sampler.sample(cond, "pseudo")
            for spec in (t.anchor, t.positive, t.negative):
                assert _rms(render_stems(ds, spec, SEG)[k]) > ACTIVE_ABS_RMS


def test_it_renders_mixes_as_the_sum_of_their_stems_and_reads_the_right_sources(ds, sampler):
    t = sampler.sample("bass", "pseudo")
    stems = render_stems(ds, t.anchor, SEG)  # (K, T)
    np.testing.assert_allclose(render_mix(ds, t.anchor, SEG), stems.sum(axis=0), atol=1e-6)
    seg = t.anchor.part("bass")
    direct = ds.track(seg.track).read_condition("bass", seg.start, SEG)
    np.testing.assert_array_equal(stems[CONDITIONS.index("bass")], direct)
    natural = sampler.sample("drums", "natural")
    seg = natural.anchor.part("drums")
    whole = ds.track(seg.track).read_mix(seg.start, SEG)
    np.testing.assert_allclose(render_mix(ds, natural.anchor, SEG), whole, atol=1e-6)


def test_it_builds_natural_and_isolated_stem_triplets(sampler):
    t = sampler.sample("piano", "natural")
    tracks = [{s.track for s in m.parts if s} for m in (t.anchor, t.positive, t.negative)]
    assert tracks[0] == tracks[1] and len(tracks[0]) == 1 and tracks[2] != tracks[0]
    assert t.anchor.part("piano").start != t.positive.part("piano").start
    assert t.interchanged == ()
    s = sampler.sample("guitar", "stem")
    assert all(
        m.parts.count(None) == len(CONDITIONS) - 1 for m in (s.anchor, s.positive, s.negative)
    )


def test_it_fixes_evaluation_sets_by_seed_and_round_trips_them_through_json(ds, tmp_path):
    first = make_eval_set(ds, "test", "pseudo", 6, seed=3, segment_frames=SEG)
    again = make_eval_set(ds, "test", "pseudo", 6, seed=3, segment_frames=SEG)
    other = make_eval_set(ds, "test", "pseudo", 6, seed=4, segment_frames=SEG)
    assert first == again and first != other
    assert len(set(first)) == len(first)
    assert {c: sum(t.condition == c for t in first) for c in CONDITIONS} == dict.fromkeys(
        CONDITIONS, 6
    )
    save_triplets(tmp_path / "eval.json", first, {"seed": 3})
    loaded, meta = load_triplets(tmp_path / "eval.json")
    assert loaded == first and meta == {"seed": 3}
    natural = make_eval_set(ds, "test", "natural", 4, seed=3, segment_frames=SEG)
    assert {t.kind for t in natural} == {"natural"} and len(natural) == 20


def test_it_rejects_a_file_that_is_not_a_triplet_set(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="x.json: field 'format'"):
        load_triplets(tmp_path / "x.json")


def test_it_serves_torch_items_identically_with_and_without_workers(ds, sampler):
    data = TripletTorchDataset(sampler, length=6)
    item = data[0]
    assert item["mix"].shape == (3, SEG) and item["stems"].shape == (3, len(CONDITIONS), SEG)
    assert item["interchanged"].dtype == torch.bool and item["interchanged"].shape == (5,)
    torch.testing.assert_close(item["mix"], item["stems"].sum(dim=1))
    k = item["condition"]
    assert not item["interchanged"][k]
    serial = list(torch.utils.data.DataLoader(data, batch_size=3, num_workers=0))
    forked = list(torch.utils.data.DataLoader(data, batch_size=3, num_workers=2))
    for x, y in zip(serial, forked):
        torch.testing.assert_close(x["mix"], y["mix"], rtol=0, atol=0)
    data.set_epoch(1)
    assert not torch.equal(data[0]["mix"], item["mix"])


def test_it_serves_fixed_lists_and_isolated_stems(ds, sampler):
    fixed = make_eval_set(ds, "test", "pseudo", 1, seed=0, segment_frames=SEG)
    data = TripletTorchDataset(fixed, ds=ds, num_frames=SEG)
    assert len(data) == len(fixed) and data.triplet(0) == fixed[0]
    stems = StemTorchDataset(sampler, length=4, condition="drums")
    item = stems[2]
    assert item["stems"].shape == (3, SEG) and item["condition"] == 0
    assert all(_rms(x.numpy()) > ACTIVE_ABS_RMS for x in item["stems"])


@pytest.mark.parametrize(
    ("seconds", "names"),
    [
        ("100", ["no pseudo triplets", "longest is 8 s", "two 100-s segments", "nothing written"]),
        ("0.00000001", ["--segment-seconds 1e-08", "under one sample"]),
    ],
)
def test_it_writes_no_triplet_file_when_no_segment_fits(
    tiny_dataset, tmp_path, capsys, seconds, names
):
    out = tmp_path / "t.json"
    argv = ["triplets", "--data", str(tiny_dataset), "--out", str(out), "--per-condition", "2"]
    assert main([*argv, "--segment-seconds", seconds]) == 1
    err = capsys.readouterr().err
    for name in names:
        assert name in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kind", "keep", "names"),
    [
        ("pseudo", 2, ["2 test tracks", "pseudo triplets need at least 3 tracks"]),
        ("natural", 1, ["1 test tracks", "natural triplets need at least 2 tracks"]),
    ],
)
def test_it_names_too_few_tracks_as_the_reason_for_no_triplets(
    tiny_dataset, tmp_path, capsys, kind, keep, names
):
    import shutil

    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    for track in sorted((data / "test").iterdir())[keep:]:
        shutil.rmtree(track)
    out = tmp_path / "t.json"
    argv = ["triplets", "--data", str(data), "--out", str(out), "--kind", kind]
    assert main([*argv, "--per-condition", "2", "--segment-seconds", "1"]) == 1
    err = capsys.readouterr().err
    for name in names:
        assert name in err, err
    assert "segments long" not in err  # the 8-s tracks are long enough
    assert not out.exists()


def test_it_leaves_no_temporary_file_when_the_triplet_file_cannot_be_written(ds, tmp_path):
    triplets = make_eval_set(ds, "test", "pseudo", 1, 0, SEG)
    target = tmp_path / "t.json"
    target.mkdir()  # a folder where the file should go
    with pytest.raises(OSError):
        save_triplets(target, triplets, {})
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def _triplet_doc(**changes) -> dict:
    part = [["Track00001", 0], None, None, None, None]
    triplet = {"condition": "drums", "kind": "pseudo", "interchanged": ["bass"]}
    triplet.update(anchor=part, positive=part, negative=part)
    doc = {"format": "csn-triplets", "version": 1, "conditions": list(CONDITIONS), "meta": {}}
    doc["triplets"] = [triplet]
    for key, value in changes.items():
        if key in triplet:
            triplet[key] = value
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"version": 99}, ["field 'version'", "99", "expected 1"]),
        ({"version": "1"}, ["field 'version'", "expected 1"]),
        ({"meta": [1, 2]}, ["field 'meta'", "mapping"]),
        ({"triplets": 5}, ["field 'triplets'", "list"]),
        ({"interchanged": "bass"}, ["triplets[0]", "interchanged", "list"]),
        ({"interchanged": ["flute"]}, ["triplets[0]", "interchanged", "flute"]),
        ({"interchanged": ["drums"]}, ["triplets[0]", "interchanged", "drums"]),
    ],
)
def test_it_names_the_field_of_a_malformed_triplet_file(tmp_path, changes, names):
    import json

    path = tmp_path / "t.json"
    path.write_text(json.dumps(_triplet_doc(**changes)))
    with pytest.raises(DataError) as err:
        load_triplets(path)
    for name in ["t.json", *names]:
        assert name in str(err.value), str(err.value)


def test_it_loads_a_well_formed_triplet_file(tmp_path):
    import json

    path = tmp_path / "t.json"
    path.write_text(json.dumps(_triplet_doc()))
    (triplet,), meta = load_triplets(path)
    assert triplet.interchanged == ("bass",) and meta == {}


def test_it_names_the_pieces_a_triplet_uses_besides_its_anchor_one_per_role(sampler):
    # Pseudo: B (the anchor's and negative's other stems), C (the positive's), D (the negative's
    # c stem), in that order; D = B names B twice (two roles). Natural: D only.
    rng, d_is_b = np.random.default_rng(5), 0
    for _ in range(200):
        t = sampler.sample(None, "pseudo", rng)
        k = CONDITIONS.index(t.condition)
        rest = [
            [s.track for j, s in enumerate(m.parts) if s and j != k] for m in (t.anchor, t.positive)
        ]
        b, c = rest[0][0], (rest[1] or [None])[0]
        expected = tuple(x for x in (b, c, t.negative.parts[k].track) if x is not None)
        assert t.other_pieces() == expected
        assert t.anchor.parts[k].track not in expected
        d_is_b += expected[0] == expected[-1]
    assert d_is_b > 10
    t = sampler.sample("piano", "natural")
    assert t.other_pieces() == (t.negative.part("piano").track,)
