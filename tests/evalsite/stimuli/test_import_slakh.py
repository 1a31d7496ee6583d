"""`manage.py import_slakh` on the tiny generated Slakh-layout dataset."""

from __future__ import annotations

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
def test_it_fails_clearly_on_a_folder_that_is_not_a_dataset(tmp_path, owner):
    with pytest.raises(CommandError, match="no split folder found"):
        call_command("import_slakh", str(tmp_path), "--catalogue", "x", "--owner", "erin")
