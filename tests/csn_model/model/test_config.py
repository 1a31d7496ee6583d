"""Experiment configs: defaults, files holding only differences, overrides, named errors."""

from __future__ import annotations

import pytest

from csn_model.config import (
    ConfigError,
    ExperimentConfig,
    FeatureConfig,
    from_dict,
    load_config,
    to_dict,
)


def test_it_defaults_to_the_methods_choices():
    cfg = load_config(None)
    assert (cfg.features.sample_rate, cfg.features.n_fft, cfg.features.hop_length) == (
        22050,
        2048,
        512,
    )
    assert cfg.features.n_mels == 128 and cfg.model.embedding_dim == 640
    assert cfg.train.system == "csn" and not cfg.model.learned_masks
    assert cfg.train.pseudo_mix and cfg.train.interchanged and cfg.train.aux_loss > 0


def test_it_layers_file_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "train:\n  steps: 7\nmodel:\n  channels: [4, 8]\n  kernels: [3, 3]\n  strides: [2, 2]\n"
    )
    cfg = load_config(path, ["train.steps=9", "model.learned_masks=true", "train.aux_loss=0"])
    assert cfg.name == "exp"
    assert cfg.train.steps == 9 and cfg.model.channels == (4, 8)
    assert cfg.model.learned_masks is True and cfg.train.aux_loss == 0.0
    assert cfg.features == FeatureConfig()  # untouched sections keep their defaults


def test_it_round_trips_through_a_plain_dict():
    cfg = load_config(None, ["train.system=individual", "train.condition=bass"])
    assert from_dict(ExperimentConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("text", "overrides", "names"),
    [
        ("train:\n  stepz: 3\n", [], ["exp.yaml", "train.stepz"]),
        ("modle:\n  channels: [1]\n", [], ["exp.yaml", "modle"]),
        ("train:\n  steps: many\n", [], ["exp.yaml", "train.steps", "int"]),
        ("train:\n  pseudo_mix: 1\n", [], ["exp.yaml", "train.pseudo_mix", "bool"]),
        ("", ["train.system=both"], ["exp.yaml", "train.system"]),
        ("", ["model.embedding_dim=642"], ["model.embedding_dim", "multiple"]),
        ("", ["model.channels=[8]"], ["model.kernels/strides"]),
        ("", ["train.steps"], ["--set", "section.field=value"]),
        ("train: [1, 2]\n", [], ["exp.yaml", "train", "mapping"]),
        ("train:\n  steps: [\n", [], ["exp.yaml", "YAML"]),
    ],
)
def test_it_names_the_file_and_field_of_a_bad_config(tmp_path, text, overrides, names):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    for name in names:
        assert name in str(err.value)


@pytest.mark.parametrize("field", ["train.log_every", "train.checkpoint_every"])
@pytest.mark.parametrize("value", [0, -5])
def test_it_refuses_a_logging_or_checkpoint_interval_below_one_step(tmp_path, field, value):
    path = tmp_path / "exp.yaml"
    path.write_text("")
    with pytest.raises(ConfigError) as err:
        load_config(path, [f"{field}={value}"])  # training divides step numbers by it
    assert "exp.yaml" in str(err.value) and field in str(err.value)


def test_it_reports_a_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
