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
    assert cfg.train.absent_peak == 1e-4  # -80 dBFS, the data layer's silence threshold
    assert cfg.train.pretrain_zero_others  # the journal version's zero target


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


SMALL = ["model.channels=[4, 8]", "model.kernels=[3, 3]", "model.strides=[2, 2]"]


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        (["features.sample_rate=0"], "features.sample_rate", "positive"),
        (["features.n_fft=0"], "features.n_fft", "positive"),
        (["features.hop_length=0"], "features.hop_length", "positive"),
        (["features.hop_length=-5"], "features.hop_length", "positive"),
        (["features.n_mels=0"], "features.n_mels", "positive"),
        (["features.fmin=-1"], "features.fmin", "non-negative"),
        (["features.fmin=100", "features.fmax=5"], "features.fmax", "above features.fmin"),
        (["features.fmax=20000"], "features.fmax", "11025"),
        (["features.fmin=12000"], "features.fmin", "11025"),
        (["features.fmax=.nan"], "features.fmax", "finite"),
        (["features.top_db=-5"], "features.top_db", "positive"),
        (["features.top_db=.inf"], "features.top_db", "finite"),
        # no floor: digital silence sits at the amin floor, which db_ref max shifts by the gain
        (
            ["features.db_ref=max", "features.top_db=null"],
            "features.top_db",
            "features.db_ref is 'max'",
        ),
        # a floor at or below amin's -100 dB for every clip up to full scale: the same (review r4)
        (["features.db_ref=max", "features.top_db=200"], "features.top_db", "under 100"),
        (["features.segment_seconds=.inf"], "features.segment_seconds", "finite"),
        (["features.segment_seconds=.nan"], "features.segment_seconds", "finite"),
        (["features.segment_seconds=-1"], "features.segment_seconds", "positive"),
        (["model.embedding_dim=0"], "model.embedding_dim", "positive"),
        (["model.embedding_dim=-5"], "model.embedding_dim", "positive"),
        ([*SMALL, "model.channels=[0, 8]"], "model.channels", "positive"),
        ([*SMALL, "model.channels=[-4, 8]"], "model.channels", "positive"),
        ([*SMALL, "model.kernels=[0, 3]"], "model.kernels", "positive"),
        ([*SMALL, "model.strides=[0, 2]"], "model.strides", "positive"),
        (["model.hidden=[-3]"], "model.hidden", "positive"),
        (["model.hidden=[0]"], "model.hidden", "positive"),
        (["train.lr=-1"], "train.lr", "positive"),
        (["train.lr=0"], "train.lr", "positive"),
        (["train.lr=.nan"], "train.lr", "finite"),
        (["train.weight_decay=-1"], "train.weight_decay", "non-negative"),
        (["train.margin=.nan"], "train.margin", "finite"),
        (["train.aux_loss=.inf"], "train.aux_loss", "finite"),
        (["train.mask_l1=-1"], "train.mask_l1", "non-negative"),
        (["train.embed_norm=.nan"], "train.embed_norm", "finite"),
        (["train.seed=-1"], "train.seed", "non-negative"),
        (["train.num_workers=-1"], "train.num_workers", "non-negative"),
        (["train.threads=-2"], "train.threads", "non-negative"),
        (["train.absent_peak=0"], "train.absent_peak", "positive"),
        (["train.absent_peak=-1"], "train.absent_peak", "positive"),
        (["train.absent_peak=.nan"], "train.absent_peak", "finite"),
    ],
)
def test_it_refuses_out_of_range_values_naming_the_field(tmp_path, overrides, field, expected):
    path = tmp_path / "exp.yaml"
    path.write_text("")
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    msg = str(err.value)
    assert "exp.yaml" in msg and f"field {field} " in msg and expected in msg, msg


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.hidden=[]"],  # no hidden layer: Mean(t) straight to the embedding
        ["features.fmin=30", "features.fmax=8000.5"],
        ["features.top_db=null"],
        ["train.threads=0", "train.num_workers=0", "train.aux_loss=0", "train.mask_l1=0"],
    ],
)
def test_it_accepts_edge_values_that_mean_something(overrides):
    load_config(None, overrides)


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (b"1: a\nfoo: b\n", ["exp.yaml", "unknown field 1", "expected one of"]),
        (b"name: \xff\xfe\n", ["exp.yaml", "UTF-8"]),
        (b"train:\n  steps: 3\n  steps: 5\n", ["exp.yaml", "duplicate key 'steps'", "line 3"]),
        (b"train: {}\ntrain:\n  steps: 5\n", ["exp.yaml", "duplicate key 'train'", "line 2"]),
    ],
)
def test_it_names_the_file_of_a_malformed_config(tmp_path, content, names):
    path = tmp_path / "exp.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    for name in names:
        assert name in str(err.value), str(err.value)


@pytest.mark.parametrize("overrides", [[], ["train.steps=5"], ["model.hidden=[8]"]])
def test_it_reads_an_empty_section_as_all_defaults(tmp_path, overrides):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\nmodel:\n")
    cfg = load_config(path, overrides)
    assert cfg.train.steps == (5 if "train.steps=5" in overrides else 3000)
    assert cfg.model.hidden == ((8,) if overrides == ["model.hidden=[8]"] else (512,))


def test_it_refuses_a_duplicate_key_in_a_set_value():
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_config(None, ["train.steps={a: 1, a: 2}"])


def test_it_still_reads_yaml_merge_keys(tmp_path):
    # an explicit key overriding a merged one is YAML's merge rule, not a duplicate
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  <<: {steps: 4, batch_size: 2}\n  steps: 6\n")
    cfg = load_config(path)
    assert (cfg.train.steps, cfg.train.batch_size) == (6, 2)
