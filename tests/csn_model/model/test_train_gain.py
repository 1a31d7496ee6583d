"""train.gain_db: each training mixture at its own seeded random gain within the configured range,
the triplets and the clean stems as without it."""

from __future__ import annotations

import numpy as np
import pytest

from csn_model.config import ConfigError, load_config
from csn_model.data.slakh import SlakhDataset
from csn_model.data.torch_data import TripletTorchDataset
from csn_model.data.triplets import TripletSampler


@pytest.fixture(scope="module")
def sampler(tiny_dataset):
    return TripletSampler(SlakhDataset(tiny_dataset), "train", 22050, seed=3)


def _items(sampler, gain_db, n=6):
    ds = TripletTorchDataset(sampler, length=n, gain_db=gain_db)
    return [ds[i] for i in range(n)]


def test_it_scales_each_training_mixture_by_a_gain_within_the_range(sampler):
    plain, gained = _items(sampler, (0.0, 0.0)), _items(sampler, (-12.0, 6.0))
    gains_db = []
    for a, b in zip(plain, gained):
        np.testing.assert_array_equal(b["stems"].numpy(), a["stems"].numpy())  # same triplet
        mix, scaled = a["mix"].numpy(), b["mix"].numpy()  # (3, T)
        np.testing.assert_array_equal(mix, a["stems"].numpy().sum(axis=1))
        ratio = np.abs(scaled).max(axis=1) / np.abs(mix).max(axis=1)  # (3,)
        np.testing.assert_allclose(scaled, mix * ratio[:, None], rtol=1e-5, atol=1e-7)
        gains_db += list(20 * np.log10(ratio))
    assert min(gains_db) >= -12.0 - 1e-4 and max(gains_db) <= 6.0 + 1e-4
    assert np.ptp(gains_db) > 6.0  # drawn per mixture, not one gain for all


def test_it_draws_the_same_gains_for_the_same_seed_epoch_and_index(sampler):
    first, again = _items(sampler, (-12.0, 6.0)), _items(sampler, (-12.0, 6.0))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["mix"].numpy(), b["mix"].numpy())


def test_it_refuses_a_gain_range_whose_low_end_is_above_its_high_end():
    with pytest.raises(ConfigError, match=r"train\.gain_db must be \[low, high\]"):
        load_config(None, ["train.gain_db=[6, -12]"])
