"""train_folder.config_differences: what resume and `csn bench --from` name when a checkpoint's
config is not the run's."""

from __future__ import annotations

from csn_model.train_folder import config_differences


def test_it_names_each_differing_field_with_its_section():
    have = {"model": {"embedding_dim": 80, "blocks": 3}, "train": {"seed": 0}}
    want = {"model": {"embedding_dim": 40, "blocks": 3}, "train": {"seed": 0}}
    assert config_differences(have, want) == "model.embedding_dim 80 (expected 40)"


def test_a_field_set_to_none_differs_from_a_field_that_is_absent():
    # a checkpoint holding a since-removed field (set to null) is another config, as before
    assert config_differences({"model": {"old": None}}, {"model": {}}) == (
        "model.old None (expected absent)"
    )
    assert config_differences({"train": {}}, {"train": {"new": None}}) == (
        "train.new absent (expected None)"
    )


def test_it_finds_nothing_in_equal_configs():
    config = {"model": {"embedding_dim": 40}, "separator": {"seed": 1}}
    assert config_differences(config, {**config}) == ""
