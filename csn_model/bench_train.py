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
    another run, would otherwise be scored as this run's system (check_system)."""
    from csn_model.train import run_source

    return check_system(checkpoint, name, mcfg, run_source(mcfg, data_root, teachers), run_dir)


def check_system(checkpoint: Path, name: str, mcfg, source: dict, run_dir: Path) -> Path:
    """checkpoint, if it is the `name` of this run: trained with mcfg on source's dataset (by
    fingerprint) and teachers (csn_model.train.run_source). Else ValueError naming the file and
    what differs.

    A checkpoint from before dataset records (80d05ba: no dataset, no teachers) is accepted on its
    config when the run folder's dataset.json has this data's fingerprint: bench.py's
    _check_dataset refuses such a folder's old dataset.json and asks the user to write that line
    if the data is unchanged, and its checkpoints are as old; refusing them too would make every
    system train again. The remedy is bench's own (delete systems/<name>), not csn train's."""
    from csn_model.checkpoint import load_checkpoint
    from csn_model.train_folder import run_difference

    vouched = _recorded_fingerprint(run_dir) == source["dataset"]["fingerprint"]
    payload = load_checkpoint(checkpoint)
    differs = run_difference(
        payload, mcfg, source, unrecorded_ok=vouched, data_label="this run's dataset"
    )
    if differs is not None:
        what = {
            "config": "it was trained with another config than this run's config.yaml gives it"
            + differs[1].removeprefix("this folder holds a run with another config"),
            "unrecorded": differs[1]
            + f" (and {run_dir / 'dataset.json'} does not vouch for this data either)",
        }.get(differs[0], differs[1].replace("this run was", "it was", 1))
        raise ValueError(
            f"{checkpoint}: not the {name} of this run, so it is not scored: {what}; delete "
            f"{checkpoint.parent} to train {name} again (csn bench with this run's config, "
            f"--data and --out {run_dir})"
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


def check_separator(path: Path, cfg: BenchConfig, dataset: dict, run_dir: Path) -> None:
    """ValueError naming path unless the separator checkpoint there was trained with this run's
    separator.* settings at features.sample_rate on the run's dataset (`dataset`: {"root",
    "fingerprint"}, separation.dataset_record); its folder's sdr.json was measured with it.

    A separator.pt saved before separators recorded their dataset (2026-12-07) is used, with a
    warning, when the run folder's dataset.json has the run's fingerprint, as check_system uses
    a system checkpoint from before dataset records: the user vouched for that folder's data
    (bench.py's _check_dataset refuses a dataset.json without it, and --from a run whose
    dataset.json has none); refusing it would retrain a separator whose settings match."""
    import torch

    from csn_model.separation import check_batches, dataset_difference, unrecorded_note
    from csn_model.separator_settings import settings_differences

    state = torch.load(path, weights_only=True)  # bench_versions has loaded it once already
    if isinstance(state, dict):
        check_batches(state, path)  # trained on older (unaligned) batches: refused, as training
    recorded = state.get("config") if isinstance(state, dict) else None
    differ = settings_differences(recorded, cfg.separator)
    rate = state.get("versions", {}).get("sample_rate") if isinstance(state, dict) else None
    if rate != cfg.features.sample_rate:
        differ.append(f"sample rate {rate} (run: features.sample_rate {cfg.features.sample_rate})")
    data = dataset_difference(state, dataset)
    vouched = dataset["fingerprint"] is not None and (
        _recorded_fingerprint(run_dir) == dataset["fingerprint"]
    )
    if data == "" and not vouched:
        data = unrecorded_note(path, dataset).removeprefix(f"{path}: ") + (
            f" and {run_dir / 'dataset.json'} does not vouch for this data either"
        )
    if differ or data:
        trained = [f"it was trained with {'; '.join(differ)}"] if differ else []
        raise ValueError(
            f"{path}: not the separator of this run, so it is not used: "
            f"{'; '.join([*trained, *([data] if data else [])])}; delete {path.parent} to "
            "train the separator again"
        )
    if data == "":
        log.warning(
            "%s; used as this run's separator: its settings match and %s names this data's "
            "fingerprint",
            unrecorded_note(path, dataset),
            run_dir / "dataset.json",
        )


def system_configs(cfg: BenchConfig) -> dict:
    """{system folder name: the ExperimentConfig train_run gets for it}: individual_<condition>
    (the teachers), the CSN and its ablations, as train_systems trains them."""
    steps = cfg.bench.individual_steps or cfg.train.steps
    out = {
        # pretrain is CSN-only: zero here so CSN schedules do not change the teachers
        f"individual_{c}": _model_cfg(
            cfg, system="individual", condition=c, steps=steps, pretrain=0
        )
        for c in CONDITIONS
    }
    out[PROPOSED] = _model_cfg(cfg, system="csn")
    for name, switch in ABLATIONS.items():
        out[name] = _model_cfg(cfg, system="csn", **switch)
    return out


def check_index(cfg: BenchConfig, run_dir: Path, checkpoints: dict) -> None:
    """Every checkpoint that checkpoints.json names (`csn bench --from`) must be the run's own,
    as a resumed run checks it: each system's config, the dataset fingerprint in the run's
    dataset.json and the teachers (systems/individual_<c>/final.pt); the separator its settings.
    ValueError naming the file and what differs."""
    from csn_model.train import needs_teachers, recorded_source

    fingerprint = _recorded_fingerprint(run_dir)
    record = run_dir / "dataset.json"
    systems = _index_systems(checkpoints)
    if (systems or checkpoints.get("separator") is not None) and fingerprint is None:
        raise ValueError(
            f"{record}: missing, or without a dataset fingerprint, so nothing tells which data "
            f"the systems of {run_dir} were trained on; resume the run with `csn bench` (its "
            "config, --data and --out) to have it checked, then score it with --from"
        )
    root = json.loads(record.read_text()).get("root") if fingerprint is not None else None
    if checkpoints.get("separator") is not None:
        dataset = {"root": root, "fingerprint": fingerprint}
        check_separator(Path(checkpoints["separator"]), cfg, dataset, run_dir)
    cfgs = system_configs(cfg)
    individual = checkpoints.get("individual_clean") or checkpoints.get("individual_separated")
    teachers = {
        c: Path((individual or {}).get(c) or run_dir / "systems" / f"individual_{c}" / "final.pt")
        for c in CONDITIONS
    }
    for system, path in systems.items():
        mcfg = cfgs[system]
        missing = [str(p) for p in teachers.values() if not p.is_file()]
        if needs_teachers(mcfg) and missing:  # absent, not other: the CSN itself may be fine
            raise ValueError(
                f"{path}: {system} was trained with the individual networks as teachers, whose "
                f"files this run folder lacks ({', '.join(missing)}), so nothing tells that it is "
                "this run's; restore them from the original run folder to score it with --from"
            )
        dataset = {"root": root, "fingerprint": fingerprint}
        check_system(path, system, mcfg, recorded_source(mcfg, dataset, teachers), run_dir)


def _index_systems(checkpoints: dict) -> dict[str, Path]:
    """{system folder name: checkpoint} of checkpoints.json's systems (the individual networks
    under individual_<condition>, named by both individual_clean and individual_separated)."""
    out = {}
    for name, value in checkpoints.items():
        if name == "separator":
            continue
        paths = (
            {f"individual_{c}": p for c, p in value.items()}
            if isinstance(value, dict)
            else {name: value}
        )
        out.update({system: Path(p) for system, p in paths.items() if p is not None})
    return out


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
    cfgs = system_configs(cfg)
    if need_teachers:
        teachers = {
            c: _train_once(f"individual_{c}", cfgs[f"individual_{c}"], data_root, run_dir)
            for c in CONDITIONS
        }
    if "individual_clean" in wanted:
        out["individual_clean"] = teachers
    if "individual_separated" in wanted:
        out["individual_separated"] = teachers
        out["separator"] = _separator(cfg, ds, run_dir)
    if PROPOSED in wanted:
        out[PROPOSED] = _train_once(PROPOSED, cfgs[PROPOSED], data_root, run_dir, teachers)
    for name, switch in ABLATIONS.items():
        if name not in wanted:
            continue
        if not _ablation_runs(_model_cfg(cfg, system="csn"), name):
            log.warning("skipping %s: %s is already off in the config", name, switch)
            continue
        out[name] = _train_once(name, cfgs[name], data_root, run_dir, teachers)
    return out


def _separator(cfg: BenchConfig, ds, run_dir: Path) -> Path | None:
    from csn_model.separation import (
        dataset_record,
        load_separator,
        sdr_table,
        train_separator,
        write_sdr,
    )

    folder = run_dir / "separator"
    folder.mkdir(parents=True, exist_ok=True)
    path = None
    if cfg.separator.backend == "trained":
        path = folder / "separator.pt"
        if path.exists():  # one found in the folder must be this run's
            log.info("separator: checking %s", path)
            check_separator(path, cfg, dataset_record(ds), run_dir)
        else:
            log.info("separator: training %s", path)
            # An older .partial, which records no dataset or settings, is continued as this
            # run's when dataset.json names this data (its config.yaml is this config: run_bench
            # refused another), as an old system checkpoint is (check_system).
            vouched = _recorded_fingerprint(run_dir) == ds.fingerprint
            train_separator(
                ds, cfg.separator, path, log=log.info, unrecorded_ok=vouched, warn=log.warning
            )
    if not (folder / "sdr.json").exists():
        sep = load_separator(cfg.separator, path, ds.sample_rate)
        table = sdr_table(ds, sep, "test", cfg.bench.sdr_chunk_seconds)
        write_sdr(table, folder / "sdr")
    return path
