"""A training run's folder: claiming it, telling a finished or interrupted run of the same config,
dataset and teachers from another one, and the log files that a resumed run continues (train.log,
metrics.jsonl).

train_run (csn_model.train) writes csn_train.json, config.yaml, train.log, metrics.jsonl,
checkpoint.pt, final.pt and summary.json into it; any other folder that is not empty is refused.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from csn_model.checkpoint import load_checkpoint
from csn_model.config import ConfigError, ExperimentConfig, from_dict, to_dict
from csn_model.train_errors import TrainError

# Fields that do not change what a run computes: a resumed run may differ in these.
RUNTIME_FIELDS = ("num_workers", "checkpoint_every", "log_every", "device", "threads")
RUN_MARKER = "csn_train.json"  # written first into out_dir: the folder is a training run's
OWN_FILES = {RUN_MARKER, "config.yaml", "train.log", "metrics.jsonl", "checkpoint.pt", "final.pt",
             "summary.json"}  # fmt: skip


class OtherConfigError(ConfigError):
    """check_same_run's refusal of a run folder holding a run of another config: `path` the
    checkpoint, `changed` the fields that differ (config_differences), for a caller with its own
    remedy (the demo's model stage)."""

    def __init__(self, path: Path, changed: str) -> None:
        super().__init__(
            f"{path}: this folder holds a run with another config ({changed}); use a new out_dir "
            "or the same config (only train.num_workers, checkpoint_every, log_every, device and "
            "threads may differ)"
        )
        self.path, self.changed = path, changed


def claim_out_dir(out_dir: Path) -> None:
    """Make out_dir a training run's folder, or refuse it (TrainError): a folder that is not empty
    must hold RUN_MARKER, or be a run from before the marker (only the run's own files, and
    train.log or a checkpoint among them)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainError(f"{out_dir}: not a folder; expected a new, empty or training run folder")
    marker = out_dir / RUN_MARKER
    names = {p.name for p in out_dir.iterdir()} if out_dir.is_dir() else set()
    if names and not marker.is_file():
        temporary = {n for n in names if n.startswith((".checkpoint.pt.tmp", ".final.pt.tmp"))}
        foreign = sorted(names - OWN_FILES - temporary)
        if foreign or not names & {"train.log", "checkpoint.pt", "final.pt"}:
            raise TrainError(
                f"{out_dir}: folder is not empty and not a training run (no {RUN_MARKER}; holds "
                f"{', '.join(foreign or sorted(names))}); expected a new or empty folder"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        marker.write_text(json.dumps({"written_by": "csn train"}) + "\n")


def _comparable(cfg_dict: dict, schema: type) -> dict:
    """The config as it computes: fields added to the schema since the run take their defaults
    (new fields must default to the old behaviour), runtime-only fields are dropped."""
    try:
        d = to_dict(from_dict(schema, cfg_dict))
    except ConfigError:  # a field that no longer exists: not the same run
        d = json.loads(json.dumps(cfg_dict))
    for name in RUNTIME_FIELDS:
        d.get("train", {}).pop(name, None)
    return d


def _comparable_pair(payload: dict, cfg: ExperimentConfig) -> tuple[dict, dict]:
    """The checkpoint's config and cfg, each as it computes (_comparable)."""
    return _comparable(payload["config"], type(cfg)), _comparable(to_dict(cfg), type(cfg))


def record_source(out_dir: Path, source: dict) -> None:
    """RUN_MARKER names the dataset (root, fingerprint) and teachers of the run in out_dir."""
    marker = out_dir / RUN_MARKER
    tmp = marker.with_name(f".{marker.name}.tmp")
    tmp.write_text(json.dumps({"written_by": "csn train", **source}, indent=2) + "\n")
    tmp.replace(marker)


def check_same_run(path: Path, cfg: ExperimentConfig, source: dict) -> dict:
    """The checkpoint at path, if it was made by a run of cfg (up to RUNTIME_FIELDS; else
    ConfigError) on the dataset and with the teachers in `source` (csn_model.train.run_source;
    else TrainError). The dataset is compared by its fingerprint: the same data at another path is
    the same run, another dataset or the same path changed since is not. A checkpoint from before
    runs recorded their dataset is refused: nothing tells whether it was trained on this data."""
    payload = load_checkpoint(path)
    differs = run_difference(payload, cfg, source)
    if differs is None:
        return payload
    kind, what = differs
    if kind == "config":
        raise OtherConfigError(path, config_differences(*_comparable_pair(payload, cfg)))
    remedy = {
        "unrecorded": "train into another out_dir, or delete checkpoint.pt and final.pt in "
        f"{path.parent} to train again there",
        "dataset": f"use another out_dir for this data, or delete {path.parent} to train "
        "again on it",
        "teachers": "pass the teachers it was trained with, or use another out_dir",
        "items": f"use another out_dir, or delete {path.parent} to train again with this code",
    }[kind]
    raise TrainError(f"{path}: {what}; {remedy}")


def run_difference(
    payload: dict,
    cfg: ExperimentConfig,
    source: dict,
    *,
    unrecorded_ok: bool = False,
    data_label: str = "--data",
) -> tuple[str, str] | None:
    """How the checkpoint `payload` differs from a run of cfg on `source` (see check_same_run):
    None if it does not, else (kind, what) with kind one of "config", "items" (its training items
    were drawn by other code), "unrecorded" (it records no dataset), "dataset", "teachers" and
    `what` saying so, without a remedy (each caller has its
    own). unrecorded_ok: a checkpoint that records no dataset (nor teachers: both came in 80d05ba)
    passes on its config alone, for a caller that knows otherwise that it is this data's (csn
    bench, whose run folder's dataset.json the user vouched for). data_label: what source's
    dataset is to the user (csn bench --from: the run's dataset, not its --data)."""
    changed = config_differences(*_comparable_pair(payload, cfg))
    if changed:
        return "config", f"this folder holds a run with another config ({changed})"
    if payload.get("items", 1) != source["items"]:  # unrecorded: before items were versioned
        return "items", (
            f"this run was trained on items drawn by older code (items version "
            f"{payload.get('items', 1)}, this code draws version {source['items']}: "
            "csn_model.train.ITEMS_VERSIONS)"
        )
    want, have = source["dataset"], payload.get("dataset")
    now = f"{data_label} {want['root']} (fingerprint {want['fingerprint']})"
    if not isinstance(have, dict) or "fingerprint" not in have:
        if unrecorded_ok and "teachers" not in payload:
            return None
        if not unrecorded_ok:
            return "unrecorded", (
                "this checkpoint predates dataset fingerprints (it records no dataset), so "
                f"nothing tells whether it was trained on {now}"
            )
    elif have["fingerprint"] != want["fingerprint"]:
        return "dataset", (
            f"this run was trained on the dataset {have.get('root')} (fingerprint "
            f"{have['fingerprint']}), not on {now}: another dataset, or that one changed since "
            "(its tracks, metadata.yaml or audio files differ)"
        )
    before, given = payload.get("teachers", {}), source["teachers"]
    if before != given:
        differ = sorted(c for c in {*before, *given} if before.get(c) != given.get(c))
        ids = ", ".join(f"{c} {before.get(c)} -> {given.get(c)}" for c in differ)
        return "teachers", (
            f"this run was trained with other teachers ({ids}: checkpoint file ids, "
            "csn_model.checkpoint.file_id)"
        )
    return None


def config_differences(have: dict, want: dict, prefix: str = "") -> str:
    """The fields in which the config dict `have` (a checkpoint's) differs from `want`, as
    "section.field HAVE (expected WANT)", joined by "; " ("" when none). A field one of them
    lacks differs from any value the other holds, None included ("absent")."""
    out = []
    for key in sorted({*have, *want}):
        if key not in have or key not in want:
            a = repr(have[key]) if key in have else "absent"
            b = repr(want[key]) if key in want else "absent"
            out.append(f"{prefix}{key} {a} (expected {b})")
            continue
        a, b = have[key], want[key]
        if isinstance(a, dict) and isinstance(b, dict):
            inner = config_differences(a, b, f"{prefix}{key}.")
            out += [inner] if inner else []
        elif a != b:
            out.append(f"{prefix}{key} {a!r} (expected {b!r})")
    return "; ".join(out)


def run_logger(out_dir: Path) -> logging.Logger:
    """The run's own logger, writing to out_dir/train.log (appended to when a run resumes)."""
    log = logging.getLogger(f"csn_model.train.{out_dir.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        h = logging.FileHandler(out_dir / "train.log")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
    return log


def trim_metrics(path: Path, step: int) -> None:
    """Keep the rows of steps up to `step` (where the run resumes): the steps after it are run and
    logged again. A row torn by an interruption is dropped. Rewritten atomically."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            keep.append(line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(keep))
    tmp.replace(path)
