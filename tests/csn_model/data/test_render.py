"""The stem renderer: lending one parsed soundfont to fresh synths changes no sample."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from csn_model.data.compose import compose
from csn_model.data.render import (
    RenderError,
    check_soundfont,
    default_soundfont,
    fluidsynth_module,
    render_notes,
)


def test_it_renders_identically_with_a_shared_or_a_freshly_loaded_soundfont():
    sf = default_soundfont()
    piece = compose(np.random.default_rng(5), 3.0)
    for part in piece.parts:
        args = dict(program=part.program, bank=part.bank, soundfont=sf, sample_rate=22050,
                    num_frames=3 * 22050)  # fmt: skip
        own, name = render_notes(part.notes, share_soundfont=False, **args)
        lent, name2 = render_notes(part.notes, **args)
        again, _ = render_notes(part.notes, **args)
        assert name == name2 and np.abs(own).max() > 1e-3
        np.testing.assert_array_equal(own, lent)
        np.testing.assert_array_equal(lent, again)


def test_it_names_missing_presets_and_bad_soundfont_files(tmp_path):
    with pytest.raises(RenderError, match="no preset at bank 128 program 99"):
        render_notes([], program=99, bank=128, soundfont=default_soundfont(), sample_rate=22050,
                     num_frames=10)  # fmt: skip
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(RenderError, match="expected a .sf2 or .sf3 file"):
        check_soundfont(tmp_path / "x.txt")


def test_it_says_what_to_install_when_libfluidsynth_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # import fails as without the library
    with pytest.raises(RenderError, match="apt-get install fluidsynth"):
        fluidsynth_module()
