"""Training the benchmark's systems into the run folder: the five individual networks (also the
CSN's teachers), the proposed CSN, its ablations and the separator, each skipped when the run
folder says it is finished (systems/<name>/done.json, separator/sdr.json), so that an
interrupted `csn bench` resumes where it stopped (csn_model.bench runs it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from csn_model import CONDITIONS
from csn_model.bench_config import ABLATIONS, PROPOSED, BenchConfig, _ablation_runs
from csn_model.config import ExperimentConfig

log = logging.getLogger("csn.bench")


def _model_cfg(cfg: BenchConfig, **train_overrides) -> ExperimentConfig:
    """The plain ExperimentConfig that train_run sees for one system."""
    base = ExperimentConfig(
        name=cfg.name, features=cfg.features, model=cfg.model, train=cfg.train, data=cfg.data
    )
    return replace(base, train=replace(base.train, **train_overrides))


def _train_once(name: str, mcfg, data_root: Path, run_dir: Path, teachers=None) -> Path:
    """train_run into systems/<name>/ unless done.json says it finished (idempotent)."""
    from csn_model.train import train_run

    out_dir = run_dir / "systems" / name
    done = out_dir / "done.json"
    if done.exists():
        checkpoint = _done_checkpoint(done, run_dir, name)
        return _check_done(checkpoint, name, mcfg, data_root, teachers, run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("training %s (%d steps)", name, mcfg.train.steps)
    t0 = time.time()
    checkpoint = Path(train_run(mcfg, data_root, out_dir, teachers=teachers, progress=False))
    # relative to the run folder, so that the run resumes from any working directory
    record = {"checkpoint": checkpoint.relative_to(run_dir).as_posix(), "seconds": time.time() - t0}
    write_json(done, record)
    log.info("trained %s in %.0f s -> %s", name, time.time() - t0, checkpoint)
    return checkpoint


def _done_checkpoint(done: Path, run_dir: Path, name: str) -> Path:
    """The checkpoint that systems/<name>/done.json names, relative to the run folder. Earlier
    versions wrote the run folder as given then (relative to that run's working directory, or
    absolute): such a path ending in systems/<name>/final.pt is this folder's final.pt."""
    try:
        value = json.loads(done.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'{done}: expected {{"checkpoint": PATH, ...}} ({exc!r})') from None
    path = run_dir / value if isinstance(value, str) else None
    if path is not None and path.is_file():
        return path
    own = done.parent / "final.pt"
    if path is not None and path.parts[-3:] == ("systems", name, "final.pt") and own.is_file():
        return own
    raise ValueError(
        f"{done}: field checkpoint is {value!r}, but {path} is not a file; expected this "
        f"system's final.pt relative to the run folder (systems/{name}/final.pt); delete "
        f"{done} to reuse the final.pt of {done.parent} or train {name} again"
    )


def _check_done(
    checkpoint: Path, name: str, mcfg, data_root: Path, teachers, run_dir: Path
) -> Path:
    """The finished checkpoint, if it was trained for this run: this system's config, this
    dataset (by fingerprint) and these teachers, as csn train checks a run it resumes. Else
    ValueError naming the file and what differs: a checkpoint swapped in, or a folder copied from
    another run, would otherwise be scored as this run's system.

    A checkpoint from before dataset records (80d05ba: no dataset, no teachers) is accepted on its
    config when the run folder's dataset.json has this data's fingerprint: bench.py's
    _check_dataset refuses such a folder's old dataset.json and asks the user to write that line
    if the data is unchanged, and its checkpoints are as old; refusing them too would make every
    system train again. The remedy is bench's own (delete systems/<name>), not csn train's."""
    from csn_model.checkpoint import load_checkpoint
    from csn_model.train import run_source
    from csn_model.train_folder import run_difference

    source = run_source(mcfg, data_root, teachers)
    vouched = _recorded_fingerprint(run_dir) == source["dataset"]["fingerprint"]
    payload = load_checkpoint(checkpoint)
    differs = run_difference(payload, mcfg, source, unrecorded_ok=vouched)
    if differs is not None:
        what = {
            "config": "it was trained with another config than this run's config.yaml gives it",
            "unrecorded": differs[1]
            + f" (and {run_dir / 'dataset.json'} does not vouch for this data either)",
        }.get(differs[0], differs[1].replace("this run was", "it was", 1))
        raise ValueError(
            f"{checkpoint}: not the {name} of this run, so it is not scored: {what}; delete "
            f"{checkpoint.parent} to train {name} again"
        )
    if "dataset" not in payload:
        log.info(
            "%s records no dataset (made before dataset fingerprints); scored as %s of this "
            "run: its config matches and %s names this data's fingerprint",
            checkpoint,
            name,
            run_dir / "dataset.json",
        )
    return checkpoint


def _recorded_fingerprint(run_dir: Path) -> str | None:
    """The fingerprint in the run folder's dataset.json (None if it has none)."""
    try:
        return json.loads((run_dir / "dataset.json").read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def write_json(path: Path, obj) -> None:
    """Written to a temporary file and renamed: a crash never leaves half a record."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def train_systems(cfg: BenchConfig, data_root: Path, run_dir: Path, ds) -> dict:
    """Checkpoints of every system: {name: Path or {condition: Path}}; separator path under
    'separator'. Systems that an ablation would leave unchanged (the switch is already off in
    the config) are skipped with a log line."""
    wanted = set(cfg.bench.systems)
    need_teachers = (
        wanted & {"individual_clean", "individual_separated"}
        or any(s.startswith("csn") for s in wanted)
        and (cfg.train.aux_loss > 0 or cfg.train.pretrain > 0)
    )
    out: dict = {}
    teachers = None
    if need_teachers:
        steps = cfg.bench.individual_steps or cfg.train.steps
        teachers = {
            c: _train_once(
                f"individual_{c}",
                # pretrain is CSN-only: zero here so CSN schedules do not change the teachers
                _model_cfg(cfg, system="individual", condition=c, steps=steps, pretrain=0),
                data_root,
                run_dir,
            )
            for c in CONDITIONS
        }
    if "individual_clean" in wanted:
        out["individual_clean"] = teachers
    if "individual_separated" in wanted:
        out["individual_separated"] = teachers
        out["separator"] = _separator(cfg, ds, run_dir)
    if PROPOSED in wanted:
        out[PROPOSED] = _train_once(
            PROPOSED, _model_cfg(cfg, system="csn"), data_root, run_dir, teachers
        )
    for name, switch in ABLATIONS.items():
        if name not in wanted:
            continue
        if not _ablation_runs(_model_cfg(cfg, system="csn"), name):
            log.warning("skipping %s: %s is already off in the config", name, switch)
            continue
        mcfg = _model_cfg(cfg, system="csn", **switch)
        out[name] = _train_once(name, mcfg, data_root, run_dir, teachers)
    return out


def _separator(cfg: BenchConfig, ds, run_dir: Path) -> Path | None:
    from csn_model.separation import load_separator, sdr_table, train_separator, write_sdr

    folder = run_dir / "separator"
    folder.mkdir(parents=True, exist_ok=True)
    path = None
    if cfg.separator.backend == "trained":
        log.info("separator: training or loading %s", folder / "separator.pt")
        path = train_separator(ds, cfg.separator, folder / "separator.pt", log=log.info)
    if not (folder / "sdr.json").exists():
        sep = load_separator(cfg.separator, path, ds.sample_rate)
        table = sdr_table(ds, sep, "test", cfg.bench.sdr_chunk_seconds)
        write_sdr(table, folder / "sdr")
    return path
