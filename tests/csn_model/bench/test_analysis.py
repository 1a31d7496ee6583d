"""Subspace analysis: the timbre classes that colour the projections and the probes predict."""

from __future__ import annotations

from csn_model.analysis import timbre_label
from csn_model.data.slakh import SlakhDataset


def test_it_labels_slakh_drums_by_their_kit_not_the_program_every_kit_shares(slakh_mini):
    ds = SlakhDataset(slakh_mini)
    sitar, studio = ds.track("Track00001"), ds.track("Track01876")  # both kits: program_num 128
    assert timbre_label(sitar, "drums") == "kit sitar_drums.nkm"
    assert timbre_label(studio, "drums") == "kit studio_drummer.nkm"
    assert timbre_label(sitar, "bass") == "33"  # other instruments: the GM program


def test_it_labels_synthesised_drums_by_the_kit_csn_synth_rendered(tiny_dataset):
    ds = SlakhDataset(tiny_dataset)
    by_kit: dict[str, set[str]] = {}
    for split in ds.splits:
        for track in ds.tracks(split):
            track.analyse()  # drops silent stems, as the labels do
            for stem in track.stems.get("drums", ()):
                kit = track.metadata["stems"][stem.name]["kit"]
                by_kit.setdefault(kit, set()).add(timbre_label(track, "drums"))
    assert len(by_kit) > 1 and all(len(labels) == 1 for labels in by_kit.values())
    assert len(set.union(*by_kit.values())) == len(by_kit)  # one label per kit


def test_it_says_why_the_disentanglement_matrix_is_empty_on_a_small_split(
    tiny_dataset, tmp_path, capsys
):
    import json
    import shutil
    from dataclasses import replace
    from pathlib import Path

    from csn_model.cli import main
    from csn_model.config import load_config
    from csn_model.train import train_run

    smoke = Path(__file__).resolve().parents[3] / "experiments" / "configs" / "smoke.yaml"
    cfg = load_config(smoke)
    cfg = replace(cfg, train=replace(cfg.train, steps=1, threads=1))
    checkpoint = train_run(cfg, tiny_dataset, tmp_path / "csn", progress=False)
    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    for track in sorted((data / "test").iterdir())[1:]:  # one test track: no class in two
        shutil.rmtree(track)
    out = tmp_path / "analysis"
    argv = ["analyze-subspaces", "--checkpoint", str(checkpoint), "--data", str(data)]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not computed" in printed and "at least 2 test tracks" in printed, printed
    assert "1 test track" in printed and "--split" in printed, printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["not_computed"]) == {"drums", "bass", "piano", "guitar", "others"}
    assert "at least 2 test tracks" in summary["not_computed"]["bass"]
