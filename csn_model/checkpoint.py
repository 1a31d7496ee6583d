"""Self-describing checkpoints: {model_name, model_args, state_dict, config, versions, ...}.

Written to a temporary file in the same folder and renamed, so a crash never leaves a truncated
checkpoint; loadable with torch.load(weights_only=True) (only tensors and plain Python values).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

import csn_model
from csn_model.model import ConditionalSimilarityNet, build_model


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
    the file when it is missing or cannot be loaded (damaged, truncated, not a torch file)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"{path}: not a loadable checkpoint ({exc})") from None


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    payload = load_file(path)
    missing = [k for k in REQUIRED if k not in payload] if isinstance(payload, dict) else REQUIRED
    if missing:
        raise CheckpointError(f"{path}: checkpoint misses field(s) {', '.join(missing)}")
    return payload


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[ConditionalSimilarityNet, dict]:
    """(model in eval mode on device, payload) from a checkpoint file."""
    payload = load_checkpoint(path)
    try:
        model = build_model(payload["model_name"], payload["model_args"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: model does not match its state_dict ({exc})") from None
    return model.to(device).eval(), payload


def file_id(path: str | Path) -> str:
    """First 16 hex characters of the file's sha256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
