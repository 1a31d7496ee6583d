"""The model, loaded lazily once per process, and its identity in the database.

Worker processes call `get_embedder()` inside the task, so the model (and CUDA, when the machine
has it) is first touched in the prefork child, never in the parent before fork.
`evalsite.celery` clears the cache when a child starts. The web process loads the model only to
embed an uploaded query clip on the retrieval page.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from evalsite.env import is_device_name
from evalsite.retrieval.models import ModelVersion

if TYPE_CHECKING:
    from csn_model.inference import Embedder


class CheckpointMissing(FileNotFoundError):
    """settings.CSN_CHECKPOINT names no file."""


class ModelUnavailable(RuntimeError):
    """The model cannot be loaded in this process: the checkpoint file is not a loadable
    checkpoint, or CSN_DEVICE names a device this process cannot use. Permanent until the file or
    the setting changes, so never retried; the message names the file or the setting."""


class CheckpointChanged(RuntimeError):
    """No file holds the checkpoint a job was queued with any more (not retried: permanent)."""


_lock = threading.Lock()
_embedders: dict[tuple, Embedder] = {}
_ids: dict[tuple, str] = {}
_sources: dict[str, str] = {}  # checkpoint id -> the file it was loaded from in this process


# How to get a checkpoint, for every message that says there is none (docs/model.md).
HOW_TO_GET_ONE = (
    "`make demo` trains a small one; or train one with `csn train ...` and set CSN_CHECKPOINT "
    "to its final.pt (docs/model.md)"
)


def shown_path(path: str | Path) -> str:
    """A checkpoint's path as researchers see it: under CSN_HOME as `CSN_HOME/runs/...` (a named
    base the failure texts keep, evalsite/jobs/failures.py), anywhere else absolute."""
    p = Path(path).absolute()
    home = Path(settings.CSN_HOME).absolute()
    return f"CSN_HOME/{p.relative_to(home)}" if p.is_relative_to(home) else str(p)


def checkpoint_path(path: str | Path | None = None) -> Path:
    p = Path(path or settings.CSN_CHECKPOINT)
    if not p.is_file():
        raise CheckpointMissing(
            f"CSN_CHECKPOINT={shown_path(p)}: no such checkpoint file; {HOW_TO_GET_ONE}"
        )
    return p


def missing_checkpoint() -> str:
    """Why model work cannot run now ("" when the CSN_CHECKPOINT file exists)."""
    try:
        checkpoint_path()
    except CheckpointMissing as exc:
        return str(exc)
    return ""


def _key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def checkpoint_id(path: str | Path | None = None) -> str:
    """The checkpoint's identity (same rule as Embedder.checkpoint_id), cached per file state."""
    from csn_model.checkpoint import file_id

    p = checkpoint_path(path)
    key = _key(p)
    if key not in _ids:
        _ids[key] = file_id(p)
    return _ids[key]


def check_device(device: str | None) -> None:
    """ModelUnavailable, naming CSN_DEVICE, when it names a device this process cannot use (the
    library's rule: csn_model.inference.check_device). Asked where the model is loaded (a
    worker's child, the web process), never at start-up: asking CUDA in a worker's parent would
    break CUDA in the children it forks. A name start-up would refuse (evalsite.env's rule,
    is_device_name; the setting can be changed after start-up) is "not a device name"."""
    if device is None or device == "cpu":
        return
    why = "" if is_device_name(device) else "not a device name"
    if not why:
        from csn_model.inference import check_device as usable  # torch only where needed

        try:
            usable(device)
        except ValueError as exc:
            why = str(exc).removeprefix(f"device {device!r}: ").split("; expected")[0]
    if why:
        raise ModelUnavailable(
            f"CSN_DEVICE={device}: {why}; expected empty (CUDA when available, else CPU), cpu, "
            "or a GPU this process sees (cuda or cuda:N)"
        )


def _load(p: Path) -> Embedder:
    check_device(settings.CSN_DEVICE)
    # None: CUDA when available, else CPU (csn_model.inference.default_device)
    return _from_checkpoint(p, settings.CSN_DEVICE)


def check_checkpoint(path: str | Path | None = None) -> None:
    """CheckpointMissing, or ModelUnavailable in the words a worker would fail the job with,
    unless the checkpoint loads. Loaded on the CPU and not kept: for a command that queues model
    work (embed_catalogue), which a worker would otherwise take and fail, seen only in the
    admin. Not asked of CSN_DEVICE: the worker's machine decides that."""
    _from_checkpoint(checkpoint_path(path), "cpu")


def _from_checkpoint(p: Path, device: str | None) -> Embedder:
    from csn_model.checkpoint import CheckpointError
    from csn_model.inference import Embedder  # torch is imported only where needed

    try:
        # target_lufs=None: the site levels audio itself, to the catalogue's loudness (catalogue
        # clips are stored levelled; a query is brought to its catalogue's level, query.py).
        return Embedder.from_checkpoint(p, device=device, target_lufs=None)
    except CheckpointError as exc:  # its message starts with the path: name it as shown
        reason = str(exc).removeprefix(f"{p}: ")  # one line: csn_model.checkpoint's rule
        name = "CSN_CHECKPOINT=" if p == Path(settings.CSN_CHECKPOINT) else "checkpoint "
        raise ModelUnavailable(f"{name}{shown_path(p)}: {reason}") from None


def get_embedder(path: str | Path | None = None) -> Embedder:
    """csn_model.inference.Embedder for the checkpoint, loaded on first use in this process.
    ModelUnavailable when the file is not a loadable checkpoint or CSN_DEVICE cannot be used."""
    p = checkpoint_path(path)
    key = _key(p)
    with _lock:
        if key not in _embedders:
            _embedders[key] = _load(p)
        _sources[_embedders[key].checkpoint_id] = str(p)
        return _embedders[key]


def embedder_for(wanted: str, path: str | None = None):
    """The embedder of checkpoint `wanted` (a job's checkpoint_id), from the first file that
    still holds it: `path` (where it was when the job was queued), the file its ModelVersion
    was made from, CSN_CHECKPOINT. CheckpointChanged, naming both ids, when none does."""
    made_from = ModelVersion.objects.filter(checkpoint_id=wanted).values_list("path", flat=True)
    for candidate in dict.fromkeys(
        p for p in (path, made_from.first(), settings.CSN_CHECKPOINT) if p
    ):
        try:
            if checkpoint_id(candidate) == wanted:
                return get_embedder(candidate)
        except CheckpointMissing:
            continue
    try:
        now = f"checkpoint {checkpoint_id()}"
    except CheckpointMissing:
        now = "no file"
    raise CheckpointChanged(
        f"the job was queued with checkpoint {wanted} ({path or 'path not recorded'}); no file "
        f"holds it now and CSN_CHECKPOINT={settings.CSN_CHECKPOINT} is {now}: expected the "
        "job's checkpoint; queue the job again to use the current one"
    )


def reset() -> None:
    """Forget loaded models (a forked child must not reuse its parent's)."""
    with _lock:
        _embedders.clear()


def version_for(embedder, path: str | Path | None = None) -> ModelVersion:
    """The ModelVersion row of a loaded embedder (created on first use)."""
    if embedder.model.learned_masks:
        masks = embedder.model.masks().detach().cpu().numpy()  # (K, D)
        subspaces = {c: {"mask": masks[i].tolist()} for i, c in enumerate(embedder.conditions)}
    else:
        subspaces = {c: {"slice": [s.start, s.stop]} for c, s in embedder.subspace_slices.items()}
    version, _ = ModelVersion.objects.get_or_create(
        checkpoint_id=embedder.checkpoint_id,
        defaults={
            "path": str(path or _sources.get(embedder.checkpoint_id) or settings.CSN_CHECKPOINT),
            "model_name": embedder.model_name,
            "dim": embedder.dim,
            "sample_rate": embedder.sample_rate,
            "conditions": list(embedder.conditions),
            "subspaces": subspaces,
        },
    )
    return version


def current_version(load: bool = False) -> ModelVersion | None:
    """The version of settings.CSN_CHECKPOINT; None when nothing was embedded with it yet
    (unless load=True, which loads the model to register it). CheckpointMissing if no file,
    ModelUnavailable if it has to load a model it cannot."""
    version = ModelVersion.objects.filter(checkpoint_id=checkpoint_id()).first()
    if version is None and load:
        version = version_for(get_embedder())
    return version
