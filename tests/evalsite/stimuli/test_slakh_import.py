"""`import_slakh` itself on the tiny dataset's test split (Track00002, 05, 08, 11, all with drums
and bass): what its report lists, and the clips it makes, in order, when some fail."""

from __future__ import annotations

import shutil

import pytest

from csn_model.data.slakh import DataError, SlakhDataset
from csn_model.data.slakh_track import Track
from evalsite.stimuli import slakh_import
from evalsite.stimuli.audio import AudioError
from evalsite.stimuli.models import Catalogue
from evalsite.stimuli.slakh_import import import_slakh

pytestmark = pytest.mark.django_db
MIX = "Track{:05d} mix @0.0s"


def _set(x: int, y: int, cond: str) -> tuple[str, str, str]:
    group = f"Track{x:05d}+Track{y:05d}:{cond}"
    return (
        MIX.format(x),
        f"attention {cond} same ({group})",
        f"attention {cond} different ({group})",
    )


@pytest.fixture
def catalogue(owner):
    return Catalogue.objects.create(owner=owner, name="tiny")


@pytest.fixture
def made(monkeypatch) -> tuple[list[str], set[str]]:
    """(the clips asked for, in order; the names whose audio is refused as too quiet)."""
    asked: list[str] = []
    refused: set[str] = set()
    make = slakh_import.clip_from_array

    def clip_from_array(*args, name, **kwargs):
        asked.append(name)
        if name in refused:
            raise AudioError("too quiet")
        return make(*args, name=name, **kwargs)

    monkeypatch.setattr(slakh_import, "clip_from_array", clip_from_array)
    return asked, refused


def _names(report) -> dict:
    return {
        "mixes": [c.name for c in report.mixes],
        "attention": [tuple(c.name for c in clips) for clips in report.attention],
        "skipped": report.skipped,
        "existing": [line.split(" clip ")[0] for line in report.existing],
    }


def test_it_skips_what_fails_and_reuses_what_an_earlier_import_made(
    tiny_dataset, catalogue, made, monkeypatch
):
    asked, refused = made
    drums_only = {"Track00008"}
    conditions = Track.conditions.fget
    monkeypatch.setattr(
        Track,
        "conditions",
        property(lambda t: ("drums",) if t.name in drums_only else conditions(t)),
    )
    refused |= {MIX.format(5), _set(11, 2, "bass")[1]}
    report = import_slakh(
        tiny_dataset, "test", catalogue, seconds=2.0, attention=True, conditions=("drums", "bass")
    )
    assert _names(report) == {
        "mixes": [MIX.format(2), MIX.format(8), MIX.format(11)],
        "attention": [_set(11, 2, "drums")],
        "skipped": [
            "Track00005: too quiet",
            "Track00002+Track00008: fewer than 2 shared conditions",
            "Track00008+Track00011: fewer than 2 shared conditions",
            "Track00011+Track00002 (bass): too quiet",
        ],
        "existing": [],
    }
    assert asked == [
        MIX.format(2), MIX.format(5), MIX.format(8), MIX.format(11), *_set(11, 2, "drums")[1:],
        _set(11, 2, "bass")[1],
    ]  # fmt: skip
    made_before = list(catalogue.clips.order_by("pk").values_list("name", flat=True))
    assert made_before == [MIX.format(2), MIX.format(8), MIX.format(11), *_set(11, 2, "drums")[1:]]
    pks = {c.piece: c.pk for c in report.mixes}

    refused.clear()
    asked.clear()
    again = import_slakh(
        tiny_dataset, "test", catalogue, seconds=2.0, attention=True, conditions=("bass", "drums")
    )
    assert _names(again) == {
        "mixes": [MIX.format(5)],
        # x's conditions in their order (drums, then bass), whatever the order asked for
        "attention": [_set(2, 5, "drums"), _set(2, 5, "bass"), _set(11, 2, "bass")],
        "skipped": [
            "Track00005+Track00008: fewer than 2 shared conditions",
            "Track00008+Track00011: fewer than 2 shared conditions",
        ],
        "existing": [
            "Track00002: mix", "Track00008: mix", "Track00011: mix",
            "Track00011+Track00002 (drums): attention set",
        ],
    }  # fmt: skip
    assert asked == [
        MIX.format(5), *_set(2, 5, "drums")[1:], *_set(2, 5, "bass")[1:], *_set(11, 2, "bass")[1:]
    ]  # fmt: skip
    assert again.existing[:3] == [
        f"Track{n:05d}: mix clip {pks[f'Track{n:05d}']}" for n in (2, 8, 11)
    ]


def test_it_skips_every_track_shorter_than_the_excerpt(tiny_dataset, catalogue, made):
    report = import_slakh(tiny_dataset, "test", catalogue, seconds=9.0, attention=True)
    assert _names(report) == {
        "mixes": [],
        "attention": [],
        "skipped": [f"Track{n:05d}: shorter than 9 s" for n in (2, 5, 8, 11)],
        "existing": [],
    }
    assert made[0] == [] and not catalogue.clips.exists()


def test_it_pairs_no_track_with_itself(tiny_dataset, catalogue, made):
    asked, refused = made
    refused |= {MIX.format(n) for n in (5, 8, 11)}
    report = import_slakh(tiny_dataset, "test", catalogue, seconds=1.0, attention=True)
    assert _names(report) == {
        "mixes": ["Track00002 mix @0.0s"],
        "attention": [],
        "skipped": [f"Track{n:05d}: too quiet" for n in (5, 8, 11)],
        "existing": [],
    }
    assert asked == [MIX.format(n) for n in (2, 5, 8, 11)]


def test_it_makes_only_mixes_without_attention(tiny_dataset, catalogue, made):
    report = import_slakh(tiny_dataset, "test", catalogue, seconds=1.0)
    assert _names(report)["mixes"] == [MIX.format(n) for n in (2, 5, 8, 11)]
    assert made[0] == _names(report)["mixes"] and report.attention == []


def test_it_fails_on_an_earlier_mix_clip_without_a_start(tiny_dataset, catalogue, made):
    import_slakh(tiny_dataset, "test", catalogue, seconds=1.0)
    clip = catalogue.clips.get(piece="Track00005")
    clip.start_s = None
    clip.save()
    made[0].clear()
    with pytest.raises(DataError) as error:
        import_slakh(tiny_dataset, "test", catalogue, seconds=1.0, attention=True)
    assert str(error.value) == f"clip {clip.pk}: imported mix of Track00005 has no start_s"
    assert made[0] == [] and catalogue.clips.count() == 4


def test_it_fails_on_an_earlier_mix_without_a_start_before_making_any_clip(
    tiny_dataset, catalogue, made
):
    import_slakh(tiny_dataset, "test", catalogue, seconds=1.0)
    catalogue.clips.filter(piece="Track00002").delete()  # would be made again, first
    catalogue.clips.filter(piece="Track00011").update(start_s=None)  # the last track
    made[0].clear()
    with pytest.raises(DataError, match="imported mix of Track00011 has no start_s"):
        import_slakh(tiny_dataset, "test", catalogue, seconds=1.0)
    assert made[0] == [] and catalogue.clips.count() == 3


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused mixes"])
def test_it_reads_every_track_from_its_own_mix_excerpt_start(
    tiny_dataset, catalogue, monkeypatch, reused
):
    """Each track gets its own nonzero start; every stem and mix read of a track must use it, and
    so must the attention clips' start_s. With `reused`, the mixes come from an earlier import and
    the start chooser now picks other starts: their stored start_s still decides."""
    sr = SlakhDataset(tiny_dataset).sample_rate
    names = [f"Track{n:05d}" for n in (2, 5, 8, 11)]
    starts = {name: (k + 1) * sr for k, name in enumerate(names)}  # 1, 2, 3, 4 s
    monkeypatch.setattr(slakh_import, "best_start", lambda track, *_, **__: starts[track.name])
    if reused:
        import_slakh(tiny_dataset, "test", catalogue, seconds=2.0)
        moved = {name: start + sr // 2 for name, start in starts.items()}
        monkeypatch.setattr(slakh_import, "best_start", lambda track, *_, **__: moved[track.name])
    reads: list[tuple[str, str, int]] = []  # (what, track, start)
    read_mix, read_condition = Track.read_mix, Track.read_condition

    def record_mix(self, start, num_frames):
        reads.append(("mix", self.name, start))
        return read_mix(self, start, num_frames)

    def record_condition(self, condition, start, num_frames):
        reads.append((condition, self.name, start))
        return read_condition(self, condition, start, num_frames)

    monkeypatch.setattr(Track, "read_mix", record_mix)
    monkeypatch.setattr(Track, "read_condition", record_condition)
    report = import_slakh(
        tiny_dataset, "test", catalogue, seconds=2.0, attention=True, conditions=("drums", "bass")
    )

    assert report.skipped == [] and len(report.attention) == 2 * len(names)
    assert [c.piece for c in report.mixes] == ([] if reused else names)
    assert [(w, t, s) for w, t, s in reads if s != starts[t]] == []
    assert {t for w, t, _ in reads if w != "mix"} == set(names)  # every track's stems were read
    assert {t for w, t, _ in reads if w == "mix"} == (set() if reused else set(names))
    for ref, same, different in report.attention:
        x = ref.piece
        y = names[(names.index(x) + 1) % len(names)]
        cond = same.meta["condition"]
        assert ref.start_s == pytest.approx(starts[x] / sr)
        for clip in (same, different):
            assert (clip.piece, clip.start_s) == (x, pytest.approx(starts[x] / sr))
            assert clip.meta["reference"] == ref.pk
        assert (same.parts[cond], different.parts[cond]) == (x, y)
        assert {same.parts[c] for c in ("drums", "bass") if c != cond} == {y}
        assert {different.parts[c] for c in ("drums", "bass") if c != cond} == {x}


def test_it_skips_a_track_whose_stem_cannot_be_decoded_and_imports_the_others(
    damaged_dataset, catalogue, made
):
    root = damaged_dataset("Track00005")
    report = import_slakh(
        root, "test", catalogue, seconds=2.0, attention=True, conditions=("drums", "bass")
    )
    names = _names(report)
    assert names["mixes"] == [MIX.format(n) for n in (2, 8, 11)]  # the tracks after it too
    (skipped,) = names["skipped"]
    assert skipped.startswith("Track00005: ") and "cannot decode stem S00 of Track00005" in skipped
    assert names["attention"] == [
        _set(x, y, cond) for x, y in ((2, 8), (8, 11), (11, 2)) for cond in ("drums", "bass")
    ]
    assert catalogue.clips.count() == 3 + 2 * 6


def test_it_skips_the_pairs_of_a_track_that_fails_after_its_mix_was_imported(
    damaged_dataset, tiny_dataset, tmp_path, catalogue, made
):
    root = shutil.copytree(tiny_dataset, tmp_path / "copy")
    import_slakh(root, "test", catalogue, seconds=2.0)  # every mix, from sound stems
    damaged_dataset("Track00005", root)
    report = import_slakh(
        root, "test", catalogue, seconds=2.0, attention=True, conditions=("drums", "bass")
    )
    names = _names(report)
    assert names["existing"] == [f"Track{n:05d}: mix" for n in (2, 5, 8, 11)]
    assert [line.split(": ", 1)[0] for line in names["skipped"]] == [
        "Track00002+Track00005", "Track00005+Track00008"
    ]  # fmt: skip
    assert all("cannot decode stem S00 of Track00005" in line for line in names["skipped"])
    assert names["attention"] == [
        _set(x, y, c) for x, y in ((8, 11), (11, 2)) for c in ("drums", "bass")
    ]


def test_it_skips_an_attention_set_whose_stems_cannot_be_read(
    tiny_dataset, catalogue, made, monkeypatch
):
    read_condition = Track.read_condition

    def unreadable_track8(self, condition, start, num_frames):
        if self.name == "Track00008":
            raise DataError(f"{condition} of {self.name}: cannot read")
        return read_condition(self, condition, start, num_frames)

    monkeypatch.setattr(Track, "read_condition", unreadable_track8)
    report = import_slakh(
        tiny_dataset, "test", catalogue, seconds=2.0, attention=True, conditions=("drums", "bass")
    )
    names = _names(report)
    assert names["mixes"] == [MIX.format(n) for n in (2, 5, 8, 11)]  # mixes read mix files
    assert [line.split(": ", 1)[0] for line in names["skipped"]] == [
        f"{pair} ({cond})"
        for pair in ("Track00005+Track00008", "Track00008+Track00011")
        for cond in ("drums", "bass")
    ]
    assert all(line.endswith("of Track00008: cannot read") for line in names["skipped"])
    assert names["attention"] == [
        _set(x, y, c) for x, y in ((2, 5), (11, 2)) for c in ("drums", "bass")
    ]
