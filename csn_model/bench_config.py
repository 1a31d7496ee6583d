"""The benchmark's configuration: its systems, its `bench.*` settings, and the checks of those and
of `separator.*` made when a config is read, before any training (csn_model.bench runs it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from csn_model.config import ConfigError, ExperimentConfig, load_config
from csn_model.separation import SeparatorConfig

PROPOSED = "csn"
ABLATIONS = {  # system name -> the override that switches one component off
    "csn_no_pseudo_mix": {"pseudo_mix": False},
    "csn_no_interchanged": {"interchanged": False},
    "csn_no_aux_loss": {"aux_loss": 0.0},
    "csn_no_pretrain": {"pretrain": 0},
}
ALL_SYSTEMS = ("individual_clean", "individual_separated", PROPOSED, *ABLATIONS)
INPUTS = {"individual_clean": "clean", "individual_separated": "separated"}
DESCRIPTIONS = {
    "individual_clean": "individual networks, clean stems (impractical reference)",
    "individual_separated": "individual networks, stems from our separator",
    PROPOSED: "proposed CSN on mixtures",
    "csn_no_pseudo_mix": "CSN without pseudo-mixed triplets (natural mixtures)",
    "csn_no_interchanged": "CSN without interchanged triplets",
    "csn_no_aux_loss": "CSN without the auxiliary loss",
    "csn_no_pretrain": "CSN without pre-training on isolated stems",
}


@dataclass(frozen=True)
class BenchSettings:
    """`bench.X` in config files."""

    systems: tuple[str, ...] = ALL_SYSTEMS
    kinds: tuple[str, ...] = ("pseudo", "natural")
    per_condition: int = 200  # test triplets per condition and kind
    eval_seed: int = 20240410  # seed of the fixed test triplets
    individual_steps: int = 0  # steps of each individual network; 0: train.steps
    n_boot: int = 2000
    batch_triplets: int = 16  # triplets rendered and embedded together while scoring
    sdr_chunk_seconds: float = 10.0
    analysis: bool = True  # subspace analysis of the proposed CSN at the end


@dataclass(frozen=True)
class BenchConfig(ExperimentConfig):
    bench: BenchSettings = field(default_factory=BenchSettings)
    separator: SeparatorConfig = field(default_factory=SeparatorConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bench(self)


def _ablation_runs(cfg: ExperimentConfig, name: str) -> bool:
    """An ablation is trained only when its switch changes the config (see train_systems)."""
    return name not in ABLATIONS or replace(cfg.train, **ABLATIONS[name]) != cfg.train


def check_bench(cfg: BenchConfig) -> None:
    """The bench.* settings, checked when the config is built: before any training, so that a bad
    value cannot fail a run after hours of it (and leave its folder tied to that config)."""
    b = cfg.bench
    unknown = [s for s in b.systems if s not in ALL_SYSTEMS]
    if unknown:
        raise ConfigError(f"bench.systems: unknown {unknown}; expected some of {ALL_SYSTEMS}")
    # the shortest chunk sdr_table measures: one FFT window of the separator, or of its reference
    window = cfg.separator.n_fft if cfg.separator.backend == "trained" else 1024
    chunk = b.sdr_chunk_seconds * cfg.features.sample_rate
    rules = [
        (b.systems, "bench.systems", f"a non-empty list of some of {', '.join(ALL_SYSTEMS)}"),
        (
            any(_ablation_runs(cfg, s) for s in b.systems),
            "bench.systems",
            "a list with a system to train besides ablations of components the config turns off",
        ),
        (b.kinds and set(b.kinds) <= {"pseudo", "natural"}, "bench.kinds", "pseudo and/or natural"),
        (b.per_condition >= 1, "bench.per_condition", "a positive integer"),
        (b.eval_seed >= 0, "bench.eval_seed", "a non-negative integer"),
        (b.individual_steps >= 0, "bench.individual_steps", "a non-negative integer (0: steps)"),
        (b.n_boot >= 1, "bench.n_boot", "a positive integer (bootstrap resamples)"),
        (b.batch_triplets >= 1, "bench.batch_triplets", "a positive integer"),
        (
            math.isfinite(chunk) and chunk >= window,
            "bench.sdr_chunk_seconds",
            f"at least one separator FFT window ({window} samples at features.sample_rate)",
        ),
    ]
    for ok, name, expected in rules:
        if not ok:
            value = getattr(b, name.split(".")[1])
            raise ConfigError(f"field {name} must be {expected}, got {value!r}")
    if "individual_separated" in b.systems:
        check_separator(cfg.separator)


def check_separator(s) -> None:
    """The separator.* settings, checked before training for the same reason as bench.*: the
    separator is trained after the individual networks."""
    finite = math.isfinite
    rules = [
        (s.backend in ("trained", "demucs"), "separator.backend", "'trained' or 'demucs'"),
        (s.n_fft >= 16, "separator.n_fft", "an integer of at least 16"),
        (1 <= s.hop <= s.n_fft, "separator.hop", f"an integer from 1 to n_fft ({s.n_fft})"),
        (s.hidden >= 1, "separator.hidden", "a positive integer"),
        (s.lstm_layers >= 1, "separator.lstm_layers", "a positive integer"),
        (finite(s.segment_seconds) and s.segment_seconds > 0, "separator.segment_seconds",
         "a positive number of seconds"),
        (s.batch_size >= 1, "separator.batch_size", "a positive integer"),
        (s.steps >= 1, "separator.steps", "a positive integer"),
        (finite(s.lr) and s.lr > 0, "separator.lr", "a positive number"),
        (finite(s.remix) and 0 <= s.remix <= 1, "separator.remix", "a probability from 0 to 1"),
        (s.seed >= 0, "separator.seed", "a non-negative integer"),
        (s.backend != "demucs" or (s.demucs_repo and Path(s.demucs_repo).is_dir()),
         "separator.demucs_repo", "a folder holding the Demucs weights (never downloaded)"),
    ]  # fmt: skip
    for ok, name, expected in rules:
        if not ok:
            value = getattr(s, name.split(".")[1])
            raise ConfigError(f"field {name} must be {expected}, got {value!r}")


def load_bench_config(path, overrides=()) -> BenchConfig:
    return load_config(path, overrides, schema=BenchConfig)
