"""`manage.py import_slakh` on the tiny generated Slakh-layout dataset."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from django.core.management import CommandError, call_command

from evalsite.stimuli.models import Catalogue, Clip


@pytest.mark.django_db
def test_it_imports_mix_excerpts_and_attention_sets(tiny_dataset, owner, capsys):
    call_command("import_slakh", str(tiny_dataset), "--split", "test", "--catalogue", "tiny",
                 "--seconds", "2", "--attention", "--conditions", "drums,bass",
                 "--owner", "erin")  # fmt: skip
    cat = Catalogue.objects.get(name="tiny", owner=owner)
    mixes = cat.clips.filter(meta={})
    tracks = sorted(p.name for p in (tiny_dataset / "test").iterdir() if p.is_dir())
    assert sorted(mixes.values_list("piece", flat=True)) == tracks
    clip = mixes.first()
    assert clip.status == Clip.Status.READY and clip.split == "test"
    assert clip.duration_s == pytest.approx(2.0) and sf.info(clip.file.path).subtype == "PCM_16"
    attention = cat.clips.filter(meta__kind="attention")
    assert attention.exists()
    same = attention.filter(meta__role="same").first()
    judged = same.meta["condition"]
    reference = Clip.objects.get(pk=same.meta["reference"])
    assert same.parts[judged] == reference.piece  # the judged stem comes from the reference
    others = {v for c, v in same.parts.items() if c != judged and v}
    assert others and reference.piece not in others
    assert "attention sets" in capsys.readouterr().out


@pytest.mark.django_db
def test_it_makes_no_clip_twice_when_a_split_is_imported_again(tiny_dataset, owner, capsys):
    def run(seconds):
        call_command("import_slakh", str(tiny_dataset), "--split", "test", "--catalogue", "tiny",
                     "--seconds", seconds, "--attention", "--conditions", "drums,bass",
                     "--owner", "erin")  # fmt: skip
        return capsys.readouterr().out

    run("2")
    cat = Catalogue.objects.get(name="tiny", owner=owner)
    first = sorted(cat.clips.values_list("pk", flat=True))
    n_sets = cat.clips.filter(meta__kind="attention").count() // 2  # a same and a different clip
    n_mixes = len(first) - 2 * n_sets
    out = run("2")
    assert sorted(cat.clips.values_list("pk", flat=True)) == first
    assert "0 mix clips, 0 attention sets" in out
    assert f"{n_mixes + n_sets} already imported" in out
    run("1")  # another excerpt length is another import: new clips, the 2 s ones untouched
    assert cat.clips.filter(meta={}, duration_s=1.0).count() == n_mixes
    assert set(first) <= set(cat.clips.values_list("pk", flat=True))


@pytest.mark.django_db
def test_it_fails_clearly_on_a_folder_that_is_not_a_dataset(tmp_path, owner):
    with pytest.raises(CommandError, match="no split folder found"):
        call_command("import_slakh", str(tmp_path), "--catalogue", "x", "--owner", "erin")


@pytest.mark.django_db
def test_it_names_a_track_it_skips_and_imports_the_others(damaged_dataset, owner, capsys):
    root = damaged_dataset("Track00005")
    call_command("import_slakh", str(root), "--split", "test", "--catalogue", "tiny",
                 "--seconds", "2", "--owner", "erin")  # fmt: skip
    out, err = capsys.readouterr()
    assert "3 mix clips" in out and "1 skipped" in out
    assert err.startswith("skipped Track00005: ") and "cannot decode stem S00" in err
    cat = Catalogue.objects.get(name="tiny", owner=owner)
    assert sorted(cat.clips.values_list("piece", flat=True)) == [
        "Track00002", "Track00008", "Track00011"
    ]  # fmt: skip


@pytest.mark.django_db
def test_it_imports_original_slakh_leaving_out_duplicates_when_asked(
    tiny_dataset, tmp_path, owner, capsys
):
    root = shutil.copytree(tiny_dataset, tmp_path / "original")
    kept = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())[0]
    shutil.copytree(root / "train" / kept, root / "test" / "Track09999")  # a second rendering
    args = [
        str(root),
        "--split",
        "test",
        "--catalogue",
        "orig",
        "--seconds",
        "1",
        "--owner",
        "erin",
    ]
    with pytest.raises(CommandError, match="--duplicates omit"):
        call_command("import_slakh", *args)
    shutil.copytree(root / "train" / kept, root / "validation" / "Track09998")  # a third
    call_command("import_slakh", *args, "--duplicates", "omit")
    out = capsys.readouterr().out
    assert (
        "1 track of the test split left out: same source MIDI as a kept track "
        "(1 more in the other splits)"
    ) in out
    assert f"test/Track09999: same source MIDI as a kept track: train/{kept}" in out
    assert "validation/Track09998" not in out
    pieces = Catalogue.objects.get(name="orig").clips.values_list("piece", flat=True)
    assert "Track09999" not in pieces and len(pieces) == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--seconds", "-1", "--seconds -1: expected an excerpt length from 0.5 to 60 s"),
        ("--seconds", "0", "--seconds 0: expected"),
        ("--seconds", "nan", "--seconds nan: expected"),
        ("--seconds", "inf", "--seconds inf: expected"),
        ("--seconds", "61", "--seconds 61: expected"),
        ("--lufs", "nan", "--lufs nan: expected a loudness target from -70 to 0 LUFS"),
        ("--lufs", "-inf", "--lufs -inf: expected"),
        ("--lufs", "1", "--lufs 1: expected"),
        ("--lufs", "-71", "--lufs -71: expected"),
    ],
)
def test_it_refuses_an_excerpt_length_or_loudness_target_the_form_would_refuse(
    tiny_dataset, owner, flag, value, expected
):
    with pytest.raises(CommandError) as err:
        call_command("import_slakh", str(tiny_dataset), "--catalogue", "bad", "--owner", "erin",
                     f"{flag}={value}")  # fmt: skip
    assert expected in str(err.value)
    assert not Catalogue.objects.exists()  # refused before the catalogue is made


@pytest.mark.django_db
def test_it_leaves_no_new_catalogue_when_the_dataset_is_refused(tmp_path, owner):
    kept = Catalogue.objects.create(owner=owner, name="kept")
    for name in ("new", "kept"):
        with pytest.raises(CommandError, match="dataset root is not a directory"):
            call_command("import_slakh", str(tmp_path / "nowhere"), "--catalogue", name,
                         "--owner", "erin")  # fmt: skip
    assert list(Catalogue.objects.all()) == [kept]  # an earlier catalogue stays


def _silence(stem):
    info = sf.info(stem)
    sf.write(stem, np.zeros(info.frames), info.samplerate, subtype=info.subtype)


@pytest.mark.django_db
def test_it_reports_the_imported_splits_skipped_stems(tiny_dataset, tmp_path, owner, capsys):
    root = shutil.copytree(tiny_dataset, tmp_path / "quirks")
    _silence(root / "test" / "Track00002" / "stems" / "S00.flac")
    shutil.copy(root / "test" / "Track00005" / "stems" / "S00.flac",
                root / "test" / "Track00005" / "stems" / "S09.flac")  # fmt: skip
    train = sorted((root / "train").iterdir())[0] / "metadata.yaml"  # another split's skip
    train.write_text(train.read_text().replace("audio_rendered: true", "audio_rendered: false", 1))
    call_command("import_slakh", str(root), "--split", "test", "--catalogue", "quirks",
                 "--seconds", "2", "--owner", "erin")  # fmt: skip
    out = capsys.readouterr().out
    assert (
        "skipped stems of the test split: 1 stems skipped: audio file not listed in "
        "metadata.yaml, 1 stems skipped: silent audio"
    ) in out
    assert "skipped stem Track00002 S00: silent audio" in out
    assert "skipped stem Track00005 S09: audio file not listed in metadata.yaml" in out
    assert "audio_rendered" not in out
