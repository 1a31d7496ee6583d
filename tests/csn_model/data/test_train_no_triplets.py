"""What `csn train` says when its train split can form no triplets: the cause, as `csn triplets`
and `csn bench` name it (csn_model.data.triplets.no_triplets_reason), not only that none formed."""

from __future__ import annotations

import shutil

import pytest

from csn_model.config import ExperimentConfig, FeatureConfig, TrainConfig
from csn_model.data.slakh import DataError
from csn_model.train import make_datasets


def _first_item_error(cfg: ExperimentConfig, root) -> str:
    """The DataError of the first training item, drawn by the sampler `csn train` uses."""
    with pytest.raises(DataError) as caught:
        make_datasets(cfg, root)["main"][0]
    return str(caught.value)


@pytest.mark.parametrize(
    ("train", "head"),
    [
        (TrainConfig(), "no pseudo triplets from the 6 train tracks"),
        (TrainConfig(pseudo_mix=False), "no natural triplets from the 6 train tracks"),
        (TrainConfig(system="individual"), "no stem triplets for drums from the 6 train tracks"),
    ],
)
def test_it_names_segments_longer_than_half_the_tracks_as_the_reason(tiny_dataset, train, head):
    cfg = ExperimentConfig(features=FeatureConfig(segment_seconds=5.0), train=train)
    message = _first_item_error(cfg, tiny_dataset)
    for name in [head, "longest is 8 s", "shorter than two 5-s segments"]:
        assert name in message, message
    assert "features.segment_seconds" in message, message  # the config key to change


def test_it_names_too_few_train_tracks_as_the_reason(tiny_dataset, tmp_path):
    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    for track in sorted((data / "train").iterdir())[2:]:
        shutil.rmtree(track)
    cfg = ExperimentConfig(features=FeatureConfig(segment_seconds=1.0))
    message = _first_item_error(cfg, data)
    for name in ["2 train tracks", "pseudo triplets need at least 3 tracks", "train split"]:
        assert name in message, message
    assert "segments" not in message, message  # the 8-s tracks are long enough
