"""Experiment configuration: frozen dataclasses whose field names are the same in code, YAML files
and command-line overrides.

An experiment file under experiments/configs/ holds only what differs from the defaults below
(METHOD.md's choices), e.g.

    train:
      steps: 50
    model:
      channels: [8, 16]

and `--set train.steps=100 model.embedding_dim=320` overrides single fields (values parsed as YAML).
Files are UTF-8 YAML; an empty section (`train:` alone) keeps that section's defaults. Unknown
sections or fields, a key repeated in one mapping, values of the wrong type or out of range raise
ConfigError naming the file, the field and what was expected.

Other parts of the project extend the schema by subclassing ExperimentConfig with more sections
(a frozen dataclass field whose default_factory is a frozen dataclass) and passing
`schema=TheirConfig` to load_config; the machinery below works for any nesting.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from csn_model import CONDITIONS

# features.db_ref: dB re power 1.0 (librosa ref=1.0) | re each clip's maximum (ref=np.max)
DB_REFS = ("one", "max")
AMIN = 1e-10  # librosa.power_to_db's floor on power before the log (features)


class ConfigError(ValueError):
    """A bad experiment config; the message names the file, the field and what was expected."""


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end; defaults are METHOD.md's [choice]s (librosa's conventions)."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    top_db: float | None = 80.0  # librosa.power_to_db's default floor below each clip's maximum
    segment_seconds: float = 3.0  # length of one training / embedding segment
    # dB reference of the log-mel: "one" (power 1.0, librosa ref=1.0: the level a clip arrives at
    # moves the whole input) or "max" (each segment's own maximum: level-invariant input)
    # [choice: the paper does not say; experiments/README.md "Level robustness" measured it]
    db_ref: str = "one"

    @property
    def segment_frames(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))


@dataclass(frozen=True)
class ModelConfig:
    """Encoder: Conv+BN+ReLU blocks, mean over time, fully connected layers, masks.

    Default: small enough to train on CPU in minutes and to embed >1,500x real time on 2 cores.
    """

    embedding_dim: int = 640  # D = K x 128 [choice]
    channels: tuple[int, ...] = (16, 32, 64, 128)  # one Conv+BN+ReLU block per entry
    kernels: tuple[int, ...] = (3, 3, 3, 3)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    hidden: tuple[int, ...] = (512,)  # fully connected layers between Mean(t) and the embedding
    learned_masks: bool = False  # Veit et al. 2017 learned masks instead of fixed disjoint blocks


@dataclass(frozen=True)
class TrainConfig:
    """Training of one system: the CSN on mixtures or one individual network on a clean stem."""

    system: str = "csn"  # "csn" | "individual"
    condition: str = "drums"  # individual networks only: the stem they learn from
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    margin: float = 0.2  # triplet margin delta [choice]
    # Random gain of each training mixture, uniform in dB over [low, high] (CSN only; the clean
    # stems keep their level); (0, 0) is off [choice: experiments/README.md "Level robustness"]
    gain_db: tuple[float, ...] = (0.0, 0.0)
    pseudo_mix: bool = True  # False: natural mixtures (two segments of one piece vs another piece)
    interchanged: bool = True  # reuse each triple under the conditions it is valid for
    aux_loss: float = 1.0  # weight lambda of the MSE towards frozen teachers; 0 switches it off
    absent_peak: float = 1e-4  # a clean stem with a lower peak is absent: zero aux target [choice]
    pretrain: int = 0  # steps of pre-training on isolated stems (needs teachers); 0 = off
    pretrain_zero_others: bool = True  # pre-training pulls the other subspaces to 0 [choice]
    mask_l1: float = 5e-4  # learned masks only: L1 penalty on the masks (Veit et al.)
    embed_norm: float = 1e-3  # weight of the mean embedding norm (Veit et al.): bounds the scale
    seed: int = 0
    num_workers: int = 2  # DataLoader worker processes (0: load in the training process)
    checkpoint_every: int = 500
    log_every: int = 25
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    threads: int = 0  # CPU threads of the training process (0: torch's default, all cores)


DUPLICATES = ("refuse", "omit")  # csn_model.data.slakh.SlakhDataset's `duplicates` modes


@dataclass(frozen=True)
class DataConfig:
    """How the dataset given with --data is read (docs/data.md)."""

    duplicates: str = "refuse"  # tracks of one source MIDI: "refuse" (DataError) | "omit" one each


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "default"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        check(self)


def check(cfg: ExperimentConfig, source: str = "config") -> None:
    """Ranges and cross-field checks that types alone cannot express: the first broken rule raises
    ConfigError naming the field, what was expected and the value found."""
    rules = _feature_rules(cfg.features) + _model_rules(cfg.model) + _train_rules(cfg.train)
    d = cfg.data.duplicates
    rules.append((d in DUPLICATES, "data.duplicates", "'refuse' or 'omit'", d))
    for ok, name, expected, got in rules:
        if not ok:
            shown = "" if got is None else f", got {list(got) if isinstance(got, tuple) else got!r}"
            raise ConfigError(f"{source}: field {name} must be {expected}{shown}")


def _finite(x: Any, low: float = -math.inf) -> bool:
    """x is a finite number >= low (NaN and infinities fail every comparison that matters)."""
    return isinstance(x, int | float) and math.isfinite(x) and x >= low


def _feature_rules(f: FeatureConfig) -> list[tuple[bool, str, str, Any]]:
    nyquist = f.sample_rate / 2
    return [
        (f.sample_rate >= 1, "features.sample_rate", "a positive integer (Hz)", f.sample_rate),
        (f.n_fft >= 1, "features.n_fft", "a positive integer (samples)", f.n_fft),
        (f.hop_length >= 1, "features.hop_length", "a positive integer (samples)", f.hop_length),
        (f.n_mels >= 1, "features.n_mels", "a positive integer (mel bands)", f.n_mels),
        (
            _finite(f.fmin, 0) and f.fmin < nyquist,
            "features.fmin",
            f"a finite, non-negative frequency below sample_rate / 2 = {nyquist:g} Hz",
            f.fmin,
        ),
        (
            f.fmax is None or (_finite(f.fmax) and f.fmin < f.fmax <= nyquist),
            "features.fmax",
            f"null or a finite frequency above features.fmin ({f.fmin:g} Hz) and at most "
            f"sample_rate / 2 = {nyquist:g} Hz",
            f.fmax,
        ),
        (
            f.top_db is None or (_finite(f.top_db) and f.top_db > 0),
            "features.top_db",
            "null or a finite, positive number of dB",
            f.top_db,
        ),
        (f.db_ref in DB_REFS, "features.db_ref", "'one' or 'max'", f.db_ref),
        (
            # Without a floor, bins at the amin floor (digital silence) stay put while "max"
            # subtracts the segment's peak, so they move with the gain (review r2 F3); so with a
            # floor at or below amin's (-100 dB) for every clip up to full scale (review r4).
            f.db_ref != "max" or (f.top_db is not None and f.top_db < -10 * math.log10(AMIN)),
            "features.top_db",
            "a finite, positive number of dB under 100 when features.db_ref is 'max' (null, or "
            "100 or more, leaves digital silence at the amin floor of -100 dB, which the maximum "
            "reference moves with the clip's gain: the input would not be level-invariant)",
            f.top_db,
        ),
        (
            _finite(f.segment_seconds) and f.segment_seconds > 0,
            "features.segment_seconds",
            "a finite, positive number of seconds",
            f.segment_seconds,
        ),
        (
            # rules are built eagerly: an infinite length must not reach segment_frames' int()
            _finite(f.segment_seconds) and f.segment_frames >= f.n_fft,
            "features.segment_seconds",
            f"at least one FFT window long ({f.n_fft} samples)",
            f.segment_seconds,
        ),
    ]


def _model_rules(m: ModelConfig) -> list[tuple[bool, str, str, Any]]:
    k = len(CONDITIONS)

    def positive(values: tuple[int, ...]) -> bool:
        return all(v >= 1 for v in values)

    return [
        (
            m.embedding_dim >= 1 and m.embedding_dim % k == 0,
            "model.embedding_dim",
            f"a positive multiple of K = {k}",
            m.embedding_dim,
        ),
        (len(m.channels) >= 1, "model.channels", "at least one block", m.channels),
        (positive(m.channels), "model.channels", "positive integers", m.channels),
        (positive(m.kernels), "model.kernels", "positive integers", m.kernels),
        (positive(m.strides), "model.strides", "positive integers", m.strides),
        (
            len(m.kernels) == len(m.channels) == len(m.strides),
            "model.kernels/strides",
            f"one entry per channel block ({len(m.channels)})",
            None,
        ),
        (positive(m.hidden), "model.hidden", "positive integers (layer widths) or []", m.hidden),
    ]


def _train_rules(t: TrainConfig) -> list[tuple[bool, str, str, Any]]:
    def weight(name: str) -> tuple[bool, str, str, Any]:
        value = getattr(t, name)
        return (_finite(value, 0), f"train.{name}", "a finite, non-negative number", value)

    return [
        (t.system in ("csn", "individual"), "train.system", "'csn' or 'individual'", t.system),
        (
            t.condition in CONDITIONS,
            "train.condition",
            f"one of {', '.join(CONDITIONS)}",
            t.condition,
        ),
        (t.steps >= 0, "train.steps", "a non-negative integer", t.steps),
        (
            len(t.gain_db) == 2
            and all(_finite(g) for g in t.gain_db)
            and t.gain_db[0] <= t.gain_db[1],
            "train.gain_db",
            "[low, high]: two finite numbers of dB, low <= high",
            t.gain_db,
        ),
        (t.pretrain >= 0, "train.pretrain", "a non-negative integer", t.pretrain),
        (t.batch_size >= 1, "train.batch_size", "a positive integer", t.batch_size),
        (_finite(t.lr) and t.lr > 0, "train.lr", "a finite, positive number", t.lr),
        *(weight(n) for n in ("weight_decay", "margin", "aux_loss", "mask_l1", "embed_norm")),
        (
            _finite(t.absent_peak) and t.absent_peak > 0,
            "train.absent_peak",
            "a finite, positive peak (full scale 1)",
            t.absent_peak,
        ),
        (t.seed >= 0, "train.seed", "a non-negative integer (numpy seeds are)", t.seed),
        (t.num_workers >= 0, "train.num_workers", "a non-negative integer", t.num_workers),
        # training logs and checkpoints at step numbers divisible by these
        (t.log_every >= 1, "train.log_every", "a positive integer (steps)", t.log_every),
        (
            t.checkpoint_every >= 1,
            "train.checkpoint_every",
            "a positive integer (steps)",
            t.checkpoint_every,
        ),
        (t.device in ("auto", "cpu", "cuda"), "train.device", "'auto', 'cpu' or 'cuda'", t.device),
        (t.threads >= 0, "train.threads", "a non-negative integer (0: torch's default)", t.threads),
    ]


def to_dict(cfg: Any) -> dict:
    """Plain, YAML/JSON-able dict (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def from_dict(schema: type, data: dict | None, source: str = "config", prefix: str = "") -> Any:
    """Build `schema` from a (partial) nested dict, checking every name and type."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(f"{source}: {where} must be a mapping of fields, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    unknown = sorted(str(k) for k in data if k not in fields)  # YAML keys may be ints or bools
    if unknown:
        raise ConfigError(
            f"{source}: unknown field {prefix}{unknown[0]}; "
            f"expected one of {', '.join(prefix + n for n in fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, source, f"{prefix}{name}")
    try:
        return schema(**kwargs)
    except ConfigError as exc:  # check() names the field but not the file
        msg = str(exc).removeprefix("config: ")
        raise ConfigError(msg if msg.startswith(source) else f"{source}: {msg}") from None


def _coerce(value: Any, hint: Any, source: str, name: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, source, name)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: field {name} must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], source, f"{name}[{i}]") for i, v in enumerate(value))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:
        raise ConfigError(f"{source}: field {name} has unsupported type {hint}")
    if not ok:
        raise ConfigError(f"{source}: field {name} must be {hint.__name__}, got {value!r}")
    return float(value) if hint is float else value


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key repeated in one mapping (YAML requires unique keys; PyYAML
    would keep the last value silently). Keys brought in by a `<<` merge may still be overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                seen = first_line.get(key)
            except TypeError:  # unhashable key: SafeLoader reports it below
                continue
            if seen is not None:
                raise yaml.YAMLError(f"duplicate key {key!r} on line {line}, first on line {seen}")
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def apply_overrides(data: dict, overrides: list[str], source: str = "--set") -> dict:
    """Merge `section.field=value` strings (values parsed as YAML) into a nested dict."""
    data = _deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: {item!r} must look like section.field=value")
        try:
            value = yaml.load(raw, Loader=_UniqueKeyLoader) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: {key}: value {raw!r} is not valid YAML ({exc})") from None
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if node.get(part) is None:  # absent, or an empty section (`train:` alone) in the file
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: {key}: {part} is not a section")
        node[parts[-1]] = value
    return data


def _deepcopy(d: dict) -> dict:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    schema: type = ExperimentConfig,
) -> Any:
    """Defaults <- experiment YAML (only what differs) <- `section.field=value` overrides."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{source}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                f"{exc.start}); expected a UTF-8 YAML file"
            ) from None
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections, got {data!r}")
        data.setdefault("name", Path(path).stem)
    if overrides:
        data = apply_overrides(data, list(overrides))
        source = f"{source} + --set {' '.join(overrides)}"
    return from_dict(schema, data, source)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
