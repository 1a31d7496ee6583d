"""Which code made a benchmark run folder's parts: the code versions recorded in results.json,
and the parts (test triplets, separator, systems) that older code drew or trained.

`csn bench` reuses what a run folder holds. A part made by older code (another triplet sampler,
separator batches or training items: csn_model 0.1.0 recorded none of these) is not this code's
result, yet its data and settings are the same. run_bench checks every part it would reuse up
front and refuses once, listing them all (check_run_folder), so that deleting them and rerunning
with the same --out trains only those; score_run (`csn bench --from`) refuses to score systems or
a separator made by older code (check_scored). The per-part checks where each part is loaded
(bench_score._check_meta, bench_train._check_done, separation.check_batches) stay as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

from csn_model.checkpoint import CheckpointError, load_file


def code_versions() -> dict:
    """This code's csn_model version and the versions of what it draws and trains."""
    import csn_model
    from csn_model.data.triplets import SAMPLER_VERSION
    from csn_model.separation import BATCHES_VERSION
    from csn_model.train import ITEMS_VERSIONS

    return {
        "csn_model": csn_model.__version__,
        "items": dict(ITEMS_VERSIONS),
        "batches": BATCHES_VERSION,
        "sampler": SAMPLER_VERSION,
    }


def old_checkpoint(path: Path) -> str | None:
    """Why a system's checkpoint was trained by older code (its items version), or None."""
    from csn_model.train import ITEMS_VERSIONS

    payload = _load(path, "csn checkpoint")
    system = payload.get("config", {}).get("train", {}).get("system", "csn")
    have, want = payload.get("items", 1), ITEMS_VERSIONS.get(system)  # unrecorded: version 1
    if have == want:
        return None
    return (
        f"{path.name}: trained on items version {have}, this code draws version {want} "
        "(csn_model.train.ITEMS_VERSIONS)"
    )


def old_separator(path: Path) -> str | None:
    """Why a separator checkpoint or partial file was trained by older code, or None."""
    from csn_model.separation import BATCHES_VERSION

    # separator.pt is a checkpoint, separator.partial the state of an interrupted training
    state = _load(
        path, "separator training state" if path.suffix == ".partial" else "separator checkpoint"
    )
    have = state.get("versions", {}).get("batches", 1)  # unrecorded: version 1
    if have == BATCHES_VERSION:
        return None
    return (
        f"{path.name}: trained on batches version {have}, this code draws version "
        f"{BATCHES_VERSION} (csn_model.separation.BATCHES_VERSION)"
    )


def _load(path: Path, expected: str) -> dict:
    """The saved dict at path; CheckpointError (a ValueError: `csn bench` prints it as one line)
    naming the file when it cannot be loaded, in csn_model.checkpoint's words: what the file
    holds and the `expected` kind of file it is not."""
    payload = load_file(path)
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise CheckpointError(f"{path}: not a {expected} (holds a {kind}, not a dict)")
    return payload


def old_triplets(path: Path) -> str | None:
    """Why a saved test triplet file was drawn by older code (its meta.sampler), or None."""
    from csn_model.data.triplets import SAMPLER_VERSION

    try:
        meta = json.loads(path.read_text()).get("meta", {})
    except (OSError, ValueError, AttributeError):
        return None  # unreadable: left to bench_score, which names what is wrong with it
    have = meta.get("sampler") if isinstance(meta, dict) else None
    have = 1 if have is None else have  # unrecorded: version 1
    if have == SAMPLER_VERSION:
        return None
    return (
        f"{path.name}: drawn by triplet sampler version {have}, this code's is {SAMPLER_VERSION} "
        "(csn_model.data.triplets.SAMPLER_VERSION)"
    )


def stale_parts(run_dir: Path) -> dict[Path, list[str]]:
    """{folder to delete: why} for each part of the run folder that older code made."""
    found: dict[Path, list[str]] = {}
    for path in sorted((run_dir / "triplets").glob("test_*.json")):
        _add(found, run_dir / "triplets", old_triplets(path))
    for name in ("separator.pt", "separator.partial"):
        if (run_dir / "separator" / name).is_file():
            _add(found, run_dir / "separator", old_separator(run_dir / "separator" / name))
    for folder in sorted(p for p in (run_dir / "systems").glob("*") if p.is_dir()):
        for name in ("final.pt", "checkpoint.pt"):  # a finished system, or one interrupted
            if (folder / name).is_file():
                _add(found, folder, old_checkpoint(folder / name))
                break
    return found


def _add(found: dict, folder: Path, why: str | None) -> None:
    if why is not None:
        found.setdefault(folder, []).append(why)


def check_run_folder(run_dir: Path) -> None:
    """ValueError listing every part of run_dir made by older code, before anything trains."""
    found = stale_parts(run_dir)
    if not found:
        return
    lines = "\n".join(f"  {folder}/  ({'; '.join(why)})" for folder, why in found.items())
    names = " ".join(str(folder) for folder in found)
    raise ValueError(
        f"{run_dir}: these parts were made by older csn_model code (the same data and "
        f"settings, but code that draws or trains them differently), so they are not reused:\n"
        f"{lines}\n"
        f"Delete them (rm -r {names}) and rerun with the same --out: only they are made again, "
        "and everything else in the folder (such as the individual networks) is still valid and "
        "reused. Nothing was trained."
    )


def check_scored(checkpoints: dict, run_dir: Path) -> None:
    """ValueError listing every checkpoint in checkpoints.json (systems and separator) that older
    code trained: scoring it would report an older method as this code's."""
    found = []
    for name, value in checkpoints.items():
        paths = value.values() if isinstance(value, dict) else [value]
        for p in paths:
            if p is None or not Path(p).is_file():
                continue  # missing: left to loading, which names the file
            why = (old_separator if name == "separator" else old_checkpoint)(Path(p))
            if why is not None:
                found.append(f"  {p}  ({why})")
    if found:
        raise ValueError(
            f"{run_dir}: these checkpoints were trained by older csn_model code, so they are not "
            "scored as this code's systems:\n" + "\n".join(sorted(set(found))) + "\n"
            f"Rerun `csn bench` with this run's config, --data and --out {run_dir} (it lists the "
            "folders to delete and retrains only those), then `csn bench --from` again; to score "
            "them as they are, use the code that trained them."
        )
