"""Self-describing checkpoints: {model_name, model_args, state_dict, config, versions, ...}.

Written to a temporary file in the same folder and renamed, so a crash never leaves a truncated
checkpoint; loadable with torch.load(weights_only=True) (only tensors and plain Python values).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import csn_model
from csn_model.config import (
    ConfigError,
    FeatureConfig,
    ModelConfig,
    _feature_rules,  # the YAML configs' range rules, reused for what a checkpoint carries
    _model_rules,
    from_dict,
)
from csn_model.model import MODEL_NAMES, ConditionalSimilarityNet, build_model


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


REQUIRED = ("model_name", "model_args", "state_dict", "config", "versions")


def versions() -> dict[str, str]:
    return {
        "csn_model": csn_model.__version__,
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Atomically write payload (must hold the REQUIRED keys) to path."""
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload misses {', '.join(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def make_payload(
    model_name: str, model_args: dict, model: torch.nn.Module, config: dict, **extra
) -> dict:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "model_name": model_name,
        "model_args": model_args,
        "state_dict": state,
        "config": config,
        "versions": versions(),
        **extra,
    }


def load_file(path: str | Path) -> Any:
    """What torch.load(weights_only=True) reads from path (on the CPU); CheckpointError naming
    the file and, in one line, what it is when it is not a torch.save file that loads: missing,
    empty, truncated or damaged, or another kind of file (text, NumPy, a plain pickle, ...)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
    if not head:
        raise CheckpointError(f"{path}: empty file, not a csn checkpoint")
    if not head.startswith(ZIP_MAGIC):  # torch.save has written zip archives since torch 1.6
        raise CheckpointError(f"{path}: not a csn checkpoint ({_kind_of_file(head)})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's message advises the unsafe weights_only=False
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" such as {found.group(1)}" if found else ""
        raise CheckpointError(
            f"{path}: not a csn checkpoint (a torch file holding Python objects{what}, "
            "where a checkpoint holds only tensors and plain values)"
        ) from None
    except Exception:  # a short read, a bad zip directory or record: torch raises many types
        if _zip_without_torch_data(path):
            raise CheckpointError(
                f"{path}: not a csn checkpoint (a zip archive, not one written by torch.save)"
            ) from None
        raise CheckpointError(
            f"{path}: truncated or damaged (a torch.save archive that cannot be read; copy or "
            "train it again)"
        ) from None


ZIP_MAGIC = b"PK\x03\x04"


def _kind_of_file(head: bytes) -> str:
    """What the first bytes of a file that is not a zip archive say it is."""
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file"
    if head.startswith(b"\x80"):
        return "a plain Python pickle, not a torch.save archive"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the 512th byte
            return "binary data, not a torch.save archive"
    return "a text file"


def _zip_without_torch_data(path: str | Path) -> bool:
    """A readable zip archive (an .npz, say) without the data.pkl every torch.save archive has."""
    try:
        with zipfile.ZipFile(path) as z:
            return not any(n.endswith("data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at path, its fields checked (check_contents); CheckpointError naming the
    file and what is wrong otherwise."""
    path = Path(path)
    payload = load_file(path)
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise CheckpointError(f"{path}: not a csn checkpoint (holds a {kind}, not a dict)")
    if payload and not any(k in payload for k in REQUIRED):
        if all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise CheckpointError(
                f"{path}: a bare state_dict, not a csn checkpoint (save with csn train)"
            )
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint misses field(s) {', '.join(missing)}")
    check_contents(path, payload)
    return payload


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[ConditionalSimilarityNet, dict]:
    """(model in eval mode on device, payload) from a checkpoint file."""
    payload = load_checkpoint(path)
    try:
        model = build_model(payload["model_name"], payload["model_args"])
    except (TypeError, ValueError, RuntimeError) as exc:  # check_contents should leave none
        reason = str(exc).partition("\n")[0]
        raise CheckpointError(f"{path}: its model_args build no model ({reason})") from None
    differences = architecture_differences(model.state_dict(), payload["state_dict"])
    if differences:
        n, total = len(differences), len(model.state_dict())
        raise CheckpointError(
            f"{path}: made for another architecture: {differences[0]} "
            f"({n} of {total} tensors differ)"
        )
    try:
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).partition("\n")[0]
        raise CheckpointError(f"{path}: model does not match its state_dict ({reason})") from None
    return model.to(device).eval(), payload


def architecture_differences(expected: dict, found: dict) -> list[str]:
    """One line per tensor in which the state_dict `found` differs from the model's `expected`
    one: missing, unexpected, or of another shape."""
    out = []
    for name, tensor in expected.items():
        if name not in found:
            out.append(f"{name} is missing from the state_dict")
        elif found[name].shape != tensor.shape:
            out.append(
                f"{name} is {list(found[name].shape)} in the state_dict, "
                f"{list(tensor.shape)} in the model its model_args build"
            )
    out += [
        f"{name} in the state_dict is not in the model its model_args build"
        for name in found
        if name not in expected
    ]
    return out


# What model_args_from_config writes; every csn version so far wrote all of them.
MODEL_ARGS = (
    "conditions",
    "embedding_dim",
    "features",
    "channels",
    "kernels",
    "strides",
    "hidden",
    "learned_masks",
)
FEATURE_ARGS = ("sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "db_ref")
# model_args.features written since a later version, with the value a checkpoint without them
# computes with (csn_model.features.LogMel's default for it): db_ref came in with level-invariant
# input, and every earlier checkpoint referenced its dB to power 1.0.
ADDED_FEATURE_ARGS = {"db_ref": "one"}


def check_contents(path: str | Path, payload: dict) -> None:
    """The fields loading and embedding use, checked by the YAML configs' types and ranges:
    model_name, model_args (constructor arguments, log-mel settings included), state_dict (a
    mapping of tensors) and config.features.segment_seconds (the embedding segment length).
    The rest of config is not checked: checkpoints of older versions lack later fields, and
    `csn bench` adds sections. CheckpointError naming the file and the field otherwise."""
    try:
        _check_contents(str(path), payload)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def _check_contents(source: str, payload: dict) -> None:
    name = payload["model_name"]
    if name not in MODEL_NAMES:
        raise ConfigError(
            f"{source}: field model_name must be one of {', '.join(MODEL_NAMES)}, got {name!r}"
        )
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{source}: field state_dict must be a mapping of tensors")
    args = _section(source, payload, "model_args", MODEL_ARGS)
    features = _section(source, args, "model_args.features", FEATURE_ARGS, ADDED_FEATURE_ARGS)
    rules = _model_args_rules(source, args)
    seconds = _segment_seconds(source, payload["config"])
    feats = from_dict(
        FeatureConfig, {**features, "segment_seconds": seconds}, source, "model_args.features."
    )
    for ok, field, expected, got in rules + _feature_rules(feats):
        if not ok:
            field = field.removeprefix("model.").removeprefix("features.")
            section = (
                "config.features"
                if field == "segment_seconds"
                else ("model_args.features" if field in FEATURE_ARGS else "model_args")
            )
            shown = "" if got is None else f", got {list(got) if isinstance(got, tuple) else got!r}"
            raise ConfigError(f"{source}: field {section}.{field} must be {expected}{shown}")


def _model_args_rules(source: str, args: dict) -> list[tuple[bool, str, str, Any]]:
    """Types of model_args (ConfigError) and the YAML model section's range rules, the
    embedding size counted in this model's conditions (one for an individual network)."""
    conditions = args["conditions"]
    if not (
        isinstance(conditions, list)
        and conditions
        and all(isinstance(c, str) for c in conditions)
        and len(set(conditions)) == len(conditions)
    ):
        raise ConfigError(
            f"{source}: field model_args.conditions must be a list of distinct names, "
            f"got {conditions!r}"
        )
    model = from_dict(ModelConfig, _without(args, "conditions", "features"), source, "model_args.")
    k, dim = len(conditions), model.embedding_dim
    return [
        (dim >= 1 and dim % k == 0, "embedding_dim", f"a positive multiple of {k}", dim),
        *(r for r in _model_rules(model) if r[1] != "model.embedding_dim"),
    ]


def _segment_seconds(source: str, config: Any) -> float:
    """config.features.segment_seconds, typed (its range is a feature rule). Refused when absent
    rather than defaulted: every csn version wrote it, and a guess would embed other lengths."""
    if not isinstance(config, dict) or not isinstance(config.get("features"), dict):
        where = "config" if not isinstance(config, dict) else "config.features"
        got = config if where == "config" else config.get("features")
        raise ConfigError(f"{source}: field {where} must be a mapping of fields, got {got!r}")
    if "segment_seconds" not in config["features"]:
        raise ConfigError(
            f"{source}: field config.features.segment_seconds is missing; every checkpoint csn "
            "train writes records the segment length (seconds) its model embeds"
        )
    seconds = config["features"]["segment_seconds"]
    typed = from_dict(FeatureConfig, {"segment_seconds": seconds}, source, "config.features.")
    return typed.segment_seconds


def _section(
    source: str, data: dict, name: str, fields: tuple[str, ...], added: dict | None = None
) -> dict:
    """data's field `name` (dotted: its last part), a dict holding exactly `fields`, those in
    `added` (later fields) taking the value given there when absent."""
    value = data[name.rpartition(".")[2]]
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: field {name} must be a mapping of fields, got {value!r}")
    value = {**(added or {}), **value}
    missing = [f for f in fields if f not in value]
    unknown = sorted(str(f) for f in value if f not in fields)
    if missing or unknown:
        what = f"misses {', '.join(missing)}" if missing else f"has unknown {name}.{unknown[0]}"
        raise ConfigError(f"{source}: field {name} {what}; expected {', '.join(fields)}")
    return value


def _without(data: dict, *names: str) -> dict:
    return {k: v for k, v in data.items() if k not in names}


def file_id(path: str | Path) -> str:
    """First 16 hex characters of the file's sha256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
