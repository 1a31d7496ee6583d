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
