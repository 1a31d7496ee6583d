"""Fixtures and helpers of the benchmark tests: the data layer's hand-written Slakh fixture, the
tiny `csn bench` config and quick CSN-only arguments, and a second dataset to score."""

from __future__ import annotations

import pytest

from tests.csn_model.data.conftest import slakh_mini  # noqa: F401  (a fixture, used by name)

TINY = """
features: {segment_seconds: 1.0, n_mels: 32}
model: {channels: [4, 8], kernels: [3, 3], strides: [2, 2], hidden: [16], embedding_dim: 40}
train: {steps: 2, batch_size: 2, pretrain: 1, num_workers: 0, log_every: 1, threads: 1}
separator: {n_fft: 256, hop: 64, hidden: 16, lstm_layers: 1, steps: 2, batch_size: 2,
            segment_seconds: 1.0}
bench: {per_condition: 2, n_boot: 50, sdr_chunk_seconds: 4.0, analysis: false,
        systems: [individual_clean, individual_separated, csn]}
"""


@pytest.fixture
def one_thread():
    """train.threads sets torch's thread count for the process: restore it for later tests."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# Package-wide, so that the modules using it share one rendering, as the one module did.
@pytest.fixture(scope="package")
def other_dataset(tmp_path_factory):
    """A second dataset: another soundfont (TimGM6mb, inside pretty_midi), test split only."""
    from pathlib import Path

    import pretty_midi

    from csn_model.data.synth import synthesize

    soundfont = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    root = tmp_path_factory.mktemp("other_dataset")
    synthesize(
        root,
        3,
        9,
        soundfont=soundfont,
        seconds=6.0,
        workers=1,
        split_fractions=(0.0, 0.0, 1.0),
        progress=False,
    )
    return root


def _csn_only(tmp_path) -> list[str]:
    """`csn bench` arguments (less --data) of a quick run: the CSN alone, no teachers."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    settings = ["train.aux_loss=0", "train.pretrain=0", "bench.systems=[csn]"]
    return ["bench", "--config", str(config), "--out", str(tmp_path / "run"), "--set", *settings]
