"""The Slakh reader on the hand-written fixture in the real Slakh metadata schema."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from csn_model.data.conditions import condition_of
from csn_model.data.slakh import DataError, SlakhDataset

from .conftest import SECONDS, SR, stem_signal

Q = 2.0 / 2**16  # PCM_16 quantisation step, twice: a tolerance for comparing tones


def test_it_maps_gm_programs_to_the_five_conditions():
    assert [condition_of(p) for p in (0, 7, 8, 24, 31, 32, 39, 40, 127)] == [
        "piano", "piano", "others", "guitar", "guitar", "bass", "bass", "others", "others",
    ]  # fmt: skip
    assert condition_of(30, is_drum=True) == "drums"
    assert condition_of({"program_num": 33, "is_drum": False}) == "bass"


def test_it_reads_the_real_slakh_layout(slakh_mini):
    ds = SlakhDataset(slakh_mini)
    assert ds.splits == ("train", "validation", "test")  # omitted/ is ignored
    assert ds.sample_rate == SR
    (t,) = ds.tracks("train")
    assert (t.name, t.split, t.num_frames) == ("Track00001", "train", SR * SECONDS)
    assert t.metadata["UUID"] == "1a81ae092884234f3264e2f45927f00a"
    assert t.conditions == ("drums", "bass", "piano", "guitar", "others")
    assert t.programs("piano") == [0, 4] and t.programs("drums") == [128]
    assert t.programs("others") == [48]  # S05 (organ) was not rendered
    assert ds.track("Track01876").split == "test"


def test_it_reads_drum_stems_numbered_128_as_the_release_does_or_0_as_other_renderings(slakh_mini):
    # Slakh2100-redux's metadata gives drum stems program_num 128 ("Drums"); the validation
    # fixture keeps 0 with is_drum true, as other renderings write it.
    ds = SlakhDataset(slakh_mini)
    assert ds.track("Track01876").programs("drums") == [128]
    assert ds.track("Track01501").programs("drums") == [0]


def test_it_sums_the_stems_of_one_condition_and_reads_by_seeking(slakh_mini):
    t = SlakhDataset(slakh_mini).track("Track00001")
    piano = t.read_condition("piano", 1000, 4000)
    expected = stem_signal("Track00001", "S03") + stem_signal("Track00001", "S04")
    np.testing.assert_allclose(piano, expected[1000:5000], atol=Q)
    assert piano.dtype == np.float32 and piano.shape == (4000,)
    mix = t.read_mix(1000, 4000)
    total = sum(t.read_condition(c, 1000, 4000) for c in t.conditions)
    np.testing.assert_allclose(total, mix, atol=8 * Q)


def test_it_counts_unrendered_and_silent_stems_as_documented_skips(slakh_mini):
    ds = SlakhDataset(slakh_mini)
    t = ds.track("Track01876")
    assert t.conditions == ("drums", "bass", "guitar", "others")  # synth lead stays
    assert t.programs("others") == [81] and t.silent_stems == ("S04",)
    ds.track("Track00001").conditions  # noqa: B018 - analyse
    assert ("Track00001", "S05", "audio_rendered: false") in ds.skipped
    assert ("Track01876", "S04", "silent audio") in ds.skipped
    assert ds.skip_summary() == (
        "1 stems skipped: audio_rendered: false, 1 stems skipped: silent audio"
    )


def test_it_summarises_each_splits_own_skipped_stems(slakh_mini):
    sf.write(slakh_mini / "validation/Track01501/stems/S09.flac", np.zeros(SR * SECONDS), SR)
    ds = SlakhDataset(slakh_mini)
    assert ds.sample_rate == SR  # loads every split's headers
    assert ds.skip_summary("test") == "none"  # train's unrendered stem is not the test split's
    for track in ds.tracks("test"):
        track.analyse()
    assert ds.skip_summary("test") == "1 stems skipped: silent audio"
    assert ds.skip_summary("train") == "1 stems skipped: audio_rendered: false"
    assert ds.skip_summary("validation") == (
        "1 stems skipped: audio file not listed in metadata.yaml"
    )
    assert ds.skipped_in("validation") == [
        ("Track01501", "S09", "audio file not listed in metadata.yaml")
    ]


def test_it_counts_audio_files_that_metadata_does_not_list(slakh_mini):
    sf.write(slakh_mini / "train/Track00001/stems/S09.flac", np.zeros(SR * SECONDS), SR)
    ds = SlakhDataset(slakh_mini)
    ds.tracks("train")
    assert ("Track00001", "S09", "audio file not listed in metadata.yaml") in ds.skipped
    assert "S09" not in {s.name for stems in ds.track("Track00001").stems.values() for s in stems}


def test_it_finds_active_segments_by_energy(slakh_mini):
    t = SlakhDataset(slakh_mini).track("Track00001")
    starts = t.active_segments("others", SR // 2, SR // 4)  # strings: second half only
    # Segments wholly in the silent first half are out; from half-covered ones on, all are in.
    assert starts.tolist() == list(range(SR * SECONDS // 2 - SR // 4, SR * 5 // 2 + 1, SR // 4))
    assert len(t.active_segments("bass", SR // 2, SR // 4)) == len(
        range(0, SR * 5 // 2 + 1, SR // 4)
    )
    assert len(t.active_segments("piano", SR * 10, SR)) == 0  # longer than the track


# ---- bad input: every case names the track, the stem and what was expected ---------------------
def _corrupt(root):
    (root / "train/Track00001/stems/S01.flac").write_bytes(b"fLaC not really" * 10)


def _missing(root):
    (root / "train/Track00001/stems/S01.flac").unlink()


def _other_rate(root):
    sf.write(root / "train/Track00001/stems/S01.flac", np.zeros(SR * SECONDS // 2), SR // 2)


def _other_length(root):
    sf.write(root / "train/Track00001/stems/S01.flac", np.zeros(SR), SR)


def _program_128_not_drum(root):
    p = root / "train/Track00001/metadata.yaml"
    p.write_text(p.read_text().replace("    program_num: 33\n", "    program_num: 128\n"))


def _latin1_metadata(root):
    p = root / "train/Track00001/metadata.yaml"
    p.write_bytes(p.read_bytes().replace(b"(finger)", "(finger \u00e9)".encode("latin-1")))


def _program_as_text(root):
    p = root / "train/Track00001/metadata.yaml"
    p.write_text(p.read_text().replace("    program_num: 33\n", "    program_num: '33'\n"))


def _drum_flag_as_number(root):
    p = root / "train/Track00001/metadata.yaml"
    text = p.read_text()
    head, tail = text.split("  S01:\n", 1)
    p.write_text(head + "  S01:\n" + tail.replace("is_drum: false", "is_drum: 0", 1))


def _program_as_bool(root):  # YAML 1.1 reads true/yes/on as a bool, which Python counts as 1
    p = root / "train/Track00001/metadata.yaml"
    p.write_text(p.read_text().replace("    program_num: 33\n", "    program_num: true\n"))


def _rendered_as_text(root):
    p = root / "train/Track00001/metadata.yaml"
    text = p.read_text()
    head, tail = text.split("  S01:\n", 1)
    p.write_text(
        head + "  S01:\n" + tail.replace("audio_rendered: true", "audio_rendered: 'no'", 1)
    )


def _stem_symlink_loop(root):
    stem = root / "train/Track00001/stems/S01.flac"
    stem.unlink()
    stem.symlink_to("S01.flac")


def _no_program(root):
    p = root / "train/Track00001/metadata.yaml"
    p.write_text(p.read_text().replace("    program_num: 33\n", ""))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (_corrupt, "unreadable or corrupt"),
        (_missing, "does not exist"),
        (_other_rate, "expected 8000 Hz"),
        (_other_length, f"expected {SR * SECONDS} like the mix"),
        (_no_program, "stems.S01.program_num missing; expected int"),
        (_program_as_text, "stems.S01.program_num has type str; expected int"),
        (_drum_flag_as_number, "stems.S01.is_drum has type int; expected bool"),
        (_program_128_not_drum, "stems.S01.program_num=128; expected 0-127 (128 only for drums)"),
        (_program_as_bool, "stems.S01.program_num has type bool; expected int"),
        (_rendered_as_text, "stems.S01.audio_rendered has type str; expected bool"),
        (_stem_symlink_loop, "S01.flac: stem S01 of Track00001 is a symlink loop"),
    ],
)
def test_it_names_track_stem_and_expectation_for_bad_stems(slakh_mini, damage, expected):
    damage(slakh_mini)
    with pytest.raises(DataError) as err:
        SlakhDataset(slakh_mini).tracks("train")
    msg = str(err.value)
    assert "Track00001" in msg and "S01" in msg and expected in msg


def test_it_names_a_metadata_file_that_is_not_utf8(slakh_mini):
    _latin1_metadata(slakh_mini)
    with pytest.raises(DataError, match=r"Track00001/metadata.yaml: cannot read as UTF-8"):
        SlakhDataset(slakh_mini).tracks("train")


@pytest.mark.parametrize("value", ["../../../elsewhere", "/srv/other/stems", "stems/../../x"])
def test_it_rejects_an_audio_dir_outside_the_track_folder(slakh_mini, value):
    p = slakh_mini / "train/Track00001/metadata.yaml"
    p.write_text(p.read_text().replace("audio_dir: stems", f"audio_dir: {value}"))
    with pytest.raises(DataError) as err:
        SlakhDataset(slakh_mini).tracks("train")
    assert f"Track00001/metadata.yaml: audio_dir={value!r}" in str(err.value)


def test_it_rejects_a_truncated_stem_when_decoding(slakh_mini):
    path = slakh_mini / "train/Track00001/stems/S01.flac"
    ds = SlakhDataset(slakh_mini)
    ds.tracks("train")  # headers are fine
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="S01 of Track00001"):
        ds.track("Track00001").conditions  # noqa: B018


def test_it_rejects_nan_or_infinite_samples_in_a_float_stem_or_mix(slakh_mini):
    folder = slakh_mini / "train/Track00001"
    bad = stem_signal("Track00001", "S01").astype(np.float32)
    bad[SR : SR + 10] = np.nan
    bad[2 * SR] = np.inf
    (folder / "stems/S01.flac").unlink()
    sf.write(folder / "stems/S01.wav", bad, SR, subtype="FLOAT")
    with pytest.raises(
        DataError, match=rf"S01 of Track00001 has NaN or infinite samples from frame {SR};"
    ):
        SlakhDataset(slakh_mini).track("Track00001").conditions  # noqa: B018
    (folder / "mix.flac").unlink()
    sf.write(folder / "mix.wav", bad, SR, subtype="FLOAT")
    (folder / "stems/S01.wav").unlink()
    sf.write(folder / "stems/S01.flac", np.nan_to_num(bad, posinf=0.0), SR)
    with pytest.raises(DataError, match="mix of Track00001 has NaN or infinite samples"):
        SlakhDataset(slakh_mini).track("Track00001").read_mix(0, 3 * SR)


def test_it_rejects_an_empty_split_a_missing_metadata_file_and_mixed_rates(slakh_mini):
    (slakh_mini / "empty_root" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match="empty split"):
        SlakhDataset(slakh_mini / "empty_root").tracks("test")
    with pytest.raises(DataError, match="no split folder"):
        SlakhDataset(slakh_mini / "train")
    (slakh_mini / "test/Track01876/metadata.yaml").unlink()
    with pytest.raises(DataError, match="Track01876/metadata.yaml: missing"):
        SlakhDataset(slakh_mini).tracks("test")


def test_it_rejects_a_dataset_with_two_sample_rates(slakh_mini):
    folder = slakh_mini / "validation/Track01501"
    for f in [folder / "mix.flac", *sorted((folder / "stems").iterdir())]:
        sf.write(f, np.zeros(SR), SR * 2)
    with pytest.raises(DataError, match="Track01501.*16000 Hz; expected 8000 Hz"):
        SlakhDataset(slakh_mini).sample_rate  # noqa: B018


def test_it_serves_the_same_audio_from_its_opt_in_memory_cache(slakh_mini):
    plain = SlakhDataset(slakh_mini).track("Track00001")
    cached_ds = SlakhDataset(slakh_mini, cache_audio=True)
    cached_ds.preload("train")
    cached = cached_ds.track("Track00001")
    for cond in plain.conditions:
        np.testing.assert_array_equal(cached.read_condition(cond, 500, 3000),
                                      plain.read_condition(cond, 500, 3000))  # fmt: skip
    np.testing.assert_array_equal(cached.read_mix(7, 99), plain.read_mix(7, 99))
    cached.read_condition("bass", 0, 10)[:] = 1.0  # callers get copies
    assert cached.read_condition("bass", 0, 10).max() < 0.1
    with pytest.raises(DataError, match="preload needs"):
        SlakhDataset(slakh_mini).preload("train")


def test_it_reads_audio_files_with_upper_case_suffixes(slakh_mini):
    folder = slakh_mini / "train/Track00001"
    (folder / "stems/S01.flac").rename(folder / "stems/S01.FLAC")
    (folder / "mix.flac").rename(folder / "Mix.flac")  # only the suffix's case is forgiven
    with pytest.raises(DataError, match="mix.flac or mix.wav missing; found Mix.flac, expected"):
        SlakhDataset(slakh_mini).tracks("train")
    (folder / "Mix.flac").rename(folder / "mix.FLAC")
    ds = SlakhDataset(slakh_mini)
    (t,) = ds.tracks("train")
    assert t.mix_path.name == "mix.FLAC"
    assert "S01" in {s.name for stems in t.stems.values() for s in stems}
    assert not [s for s in ds.skipped if s[1] == "S01"]  # read, not counted as unlisted
    assert t.read_condition("bass", 0, 100).shape == (100,)  # (T,)


@pytest.mark.parametrize("cut", ["mix.wav", "stems/S01.wav"])
def test_it_rejects_a_wav_cut_short_naming_both_lengths(slakh_mini, cut):
    """libsndfile reports a cut WAV as a shorter, whole one: the header's length tells."""
    path = slakh_mini / "test/Track01876" / cut
    path.write_bytes(path.read_bytes()[: 44 + SR * SECONDS * 2 // 3])  # a third of its data
    with pytest.raises(DataError) as err:
        SlakhDataset(slakh_mini).tracks("test")
    msg = str(err.value)
    assert str(path) in msg and "Track01876" in msg
    assert f"header declares {SR * SECONDS} frames ({SECONDS:.2f} s)" in msg
    assert f"holds {SR * SECONDS // 3} ({SECONDS / 3:.2f} s)" in msg
