"""Fixtures for the data-layer tests: the hand-written Slakh fixture with audio written here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

FIXTURE = Path(__file__).parent / "fixtures" / "slakh_mini"
SR = 8000
SECONDS = 3
SILENT = {("Track01876", "S04")}  # written as digital silence: a documented, counted skip
SECOND_HALF = {("Track00001", "S06")}  # strings enter half-way: silent first half


def stem_signal(track: str, stem: str) -> np.ndarray:
    """A distinct, deterministic test tone per stem. (T,)"""
    n = SR * SECONDS
    if (track, stem) in SILENT:
        return np.zeros(n, dtype=np.float64)
    freq = 110.0 * (1 + int(stem[1:])) * (1 + int(track[-1]) / 10)
    x = 0.05 * np.sin(2 * np.pi * freq * np.arange(n) / SR)
    if (track, stem) in SECOND_HALF:
        x[: n // 2] = 0.0
    return x


def write_track_audio(folder: Path, fmt: str) -> None:
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    (folder / "stems").mkdir(exist_ok=True)
    mix = np.zeros(SR * SECONDS)
    for name, sm in meta["stems"].items():
        if not sm["audio_rendered"]:
            continue
        x = stem_signal(folder.name, name)
        sf.write(folder / "stems" / f"{name}.{fmt}", x, SR, subtype="PCM_16")
        mix += x
    sf.write(folder / f"mix.{fmt}", mix, SR, subtype="PCM_16")


@pytest.fixture
def slakh_mini(tmp_path) -> Path:
    """The hand-written Slakh-schema fixture, copied to tmp with test tones as its audio."""
    root = tmp_path / "slakh_mini"
    shutil.copytree(FIXTURE, root)
    write_track_audio(root / "train" / "Track00001", "flac")
    write_track_audio(root / "validation" / "Track01501", "flac")
    write_track_audio(root / "test" / "Track01876", "wav")
    return root
