"""The accuracy benchmark: train (or load) every system, score all on fixed saved test triplets.

Systems (METHOD.md "Baselines" and the ablations):
    individual_clean      five individual networks on the clean stems (also the CSN's teachers)
    individual_separated  the same networks on stems from the separator (csn_model.separation)
    csn                   the proposed CSN on mixtures
    csn_no_<switch>       the CSN with one of pseudo_mix, interchanged, aux_loss, pretrain off

Run folder (everything is reused when present, so an interrupted run resumes where it stopped):
    config.yaml                  the resolved BenchConfig (a rerun must use the same config)
    dataset.json                 {"root": the dataset's absolute path} (a rerun must use it too)
    systems/<name>/              train_run's out_dir; done.json names the finished checkpoint,
                                 relative to the run folder
    separator/separator.pt, sdr.csv, sdr.json
    triplets/test_<kind>.json    the fixed evaluation triplets (data layer's make_eval_set), reused
                                 only for the dataset and settings recorded in their meta
    outcomes.csv                 one row per (system, triplet): correct or not
    results.json, results.csv, comparisons.csv, results.md
    analysis/                    subspace analysis of the proposed CSN (csn_model.analysis)
`score_run(run_dir, other_dataset)` scores the trained systems on another Slakh-layout dataset
(generalisation) without training anything; its triplets live in that output folder.

Nothing is selected on the test split: systems train for a fixed number of steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from csn_model import CONDITIONS

# the benchmark's config API, re-exported: csn_model.bench has long been where it is imported from
from csn_model.bench_config import (  # noqa: F401
    ABLATIONS,
    ALL_SYSTEMS,
    DESCRIPTIONS,
    INPUTS,
    PROPOSED,
    BenchConfig,
    BenchSettings,
    _ablation_runs,
    check_bench,
    check_separator,
    load_bench_config,
)
from csn_model.bench_report import build_results, write_results
from csn_model.config import ExperimentConfig, to_dict
from csn_model.evaluation import accuracy_table, compare_to_reference, triplet_correct
from csn_model.separation import SeparatorConfig

log = logging.getLogger("csn.bench")


# -- training ----------------------------------------------------------------------------------
def _model_cfg(cfg: BenchConfig, **train_overrides) -> ExperimentConfig:
    """The plain ExperimentConfig that train_run sees for one system."""
    base = ExperimentConfig(name=cfg.name, features=cfg.features, model=cfg.model, train=cfg.train)
    return replace(base, train=replace(base.train, **train_overrides))


def _train_once(name: str, mcfg, data_root: Path, run_dir: Path, teachers=None) -> Path:
    """train_run into systems/<name>/ unless done.json says it finished (idempotent)."""
    from csn_model.train import train_run

    out_dir = run_dir / "systems" / name
    done = out_dir / "done.json"
    if done.exists():
        return _done_checkpoint(done, run_dir, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("training %s (%d steps)", name, mcfg.train.steps)
    t0 = time.time()
    checkpoint = Path(train_run(mcfg, data_root, out_dir, teachers=teachers, progress=False))
    # relative to the run folder, so that the run resumes from any working directory
    record = {"checkpoint": checkpoint.relative_to(run_dir).as_posix(), "seconds": time.time() - t0}
    _write_json(done, record)
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


def _write_json(path: Path, obj) -> None:
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


# -- evaluation triplets ---------------------------------------------------------------------
META_SOURCES = {  # field of a triplet file's meta -> where this run's value comes from
    "dataset": "--data",
    "split": "the test split",
    "kind": "bench.kinds",
    "per_condition": "bench.per_condition",
    "seed": "bench.eval_seed",
    "segment_frames": "features.segment_seconds",
    "sample_rate": "the dataset's sample rate",
}


def eval_triplets(ds, folder: Path, cfg: BenchConfig) -> dict:
    """{kind: (triplets, path)}; made once with make_eval_set and saved, then reused as long as
    every field of their meta matches this run's (ValueError otherwise). An empty set would score
    nothing: it is refused (DataError) and never saved."""
    from csn_model.data.slakh import DataError
    from csn_model.data.triplets import load_triplets, make_eval_set, save_triplets

    out = {}
    frames = cfg.features.segment_frames
    for kind in cfg.bench.kinds:
        path = folder / f"test_{kind}.json"
        meta = {
            "dataset": str(Path(ds.root).resolve()),
            "split": "test",
            "kind": kind,
            "per_condition": cfg.bench.per_condition,
            "seed": cfg.bench.eval_seed,
            "segment_frames": frames,
            "sample_rate": ds.sample_rate,
        }
        if not path.exists():
            triplets = make_eval_set(
                ds, "test", kind, cfg.bench.per_condition, cfg.bench.eval_seed, frames
            )
            if not triplets:
                raise DataError(f"{_no_triplets(ds, kind, cfg)}; nothing written")
            save_triplets(path, triplets, meta)
        triplets, saved = load_triplets(path)
        _check_meta(path, saved, meta)
        if not triplets:  # written by earlier versions, which saved empty sets
            raise DataError(f"{path}: holds {_no_triplets(ds, kind, cfg)}; delete it")
        out[kind] = (triplets, path)
    return out


def _no_triplets(ds, kind: str, cfg: BenchConfig) -> str:
    tracks = len(ds.tracks("test"))
    return (
        f"no {kind} triplets from the {tracks} test tracks of {ds.root} with "
        f"{cfg.features.segment_seconds:g}-s segments (features.segment_seconds); expected "
        "tracks at least two segments long in which the instruments are audible"
    )


def _check_meta(path: Path, saved: dict, expected: dict) -> None:
    for name, want in expected.items():
        got = saved.get(name)
        if name == "dataset" and isinstance(got, str):
            got = str(Path(got).resolve())  # older files hold the root as given, maybe relative
        if got != want:
            raise ValueError(
                f"{path}: field meta.{name} is {got!r}, but this run needs {want!r} "
                f"({META_SOURCES[name]}); these triplets were made for other data or settings: "
                "use a new --out"
            )


# -- scoring ----------------------------------------------------------------------------------
class _Net:
    """One loaded network: waveforms -> condition subspace vectors."""

    def __init__(self, path: Path, device: torch.device):
        from csn_model.checkpoint import file_id, load_model

        self.model, _payload = load_model(path, device)
        self.device, self.id = device, file_id(path)

    @torch.no_grad()
    def embed(self, waves: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(waves, dtype=torch.float32, device=self.device)  # (N, T)
        return self.model(x)  # (N, D)

    def subspace(self, emb: torch.Tensor, condition: str) -> np.ndarray:
        k = self.model.conditions.index(condition)
        # detach: learned masks are parameters, so their subspaces require grad
        return self.model.subspace(emb, k).detach().cpu().numpy()  # (N, d)


def _correct(net: _Net, waves: np.ndarray, condition: str) -> np.ndarray:
    """waves (n, 3, T) anchor/positive/negative -> correct (n,)."""
    n = waves.shape[0]
    sub = net.subspace(net.embed(waves.reshape(3 * n, -1)), condition).reshape(n, 3, -1)
    return triplet_correct(sub[:, 0], sub[:, 1], sub[:, 2])


def score(
    ds, triplets_by_kind: dict, systems: dict, frames: int, separator=None, batch: int = 16
) -> pd.DataFrame:
    """Outcomes (system, kind, condition, triplet, piece, correct) of every system on every
    triplet. `systems`: {name: _Net (mixture input) or {condition: _Net} (stem input)}; the stem
    system named individual_separated gets the separator's estimates instead of clean stems.
    `piece` is the track whose condition stem the anchor and positive share."""
    from csn_model.data.triplets import render_stems

    rows = []
    for kind, (triplets, _path) in triplets_by_kind.items():
        t0 = time.time()
        for lo in range(0, len(triplets), batch):
            chunk = triplets[lo : lo + batch]
            cache: dict = {}
            stems = np.stack(
                [
                    np.stack(
                        [
                            render_stems(ds, spec, frames, cache)
                            for spec in (t.anchor, t.positive, t.negative)
                        ]
                    )
                    for t in chunk
                ]
            )  # (n, 3, K, T)
            mixes = stems.sum(axis=2)  # (n, 3, T)
            if "individual_separated" in systems:
                n = len(chunk)
                est = separator.separate(mixes.reshape(3 * n, -1))  # (3n, K, T)
                separated = est.reshape(n, 3, len(CONDITIONS), -1)  # (n, 3, K, T)
            conds = np.array([t.condition for t in chunk])
            for name, net in systems.items():
                correct = np.zeros(len(chunk), dtype=np.int8)
                for cond in dict.fromkeys(conds):
                    idx, k = np.flatnonzero(conds == cond), CONDITIONS.index(cond)
                    if isinstance(net, _Net):
                        correct[idx] = _correct(net, mixes[idx], cond)
                    elif name == "individual_separated":
                        correct[idx] = _correct(net[cond], separated[idx, :, k], cond)
                    else:
                        correct[idx] = _correct(net[cond], stems[idx, :, k], cond)
                for i, t in enumerate(chunk):
                    piece = t.anchor.part(t.condition).track
                    rows.append((name, kind, t.condition, lo + i, piece, int(correct[i])))
        log.info("scored %d %s triplets in %.0f s", len(triplets), kind, time.time() - t0)
    return pd.DataFrame(
        rows, columns=["system", "kind", "condition", "triplet", "piece", "correct"]
    )


def load_systems(checkpoints: dict, device: torch.device) -> dict:
    nets: dict = {}
    loaded: dict[str, _Net] = {}  # teachers serve two systems: load once

    def net(path) -> _Net:
        key = str(path)
        if key not in loaded:
            loaded[key] = _Net(Path(path), device)
        return loaded[key]

    for name, ckpt in checkpoints.items():
        if name == "separator":
            continue
        nets[name] = {c: net(p) for c, p in ckpt.items()} if isinstance(ckpt, dict) else net(ckpt)
    return nets


# -- the two entry points ------------------------------------------------------------------------
def run_bench(cfg: BenchConfig, data_root: Path, run_dir: Path) -> dict:
    """Train (or load) every system, score them on the fixed test triplets, write the results."""
    from csn_model.config import save_config
    from csn_model.data.slakh import SlakhDataset

    ds = SlakhDataset(data_root)  # first: a mistyped --data must not be recorded below
    _check_rate(ds, cfg, data_root)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if saved.exists():
        # Through the schema, so fields added to the code since (with defaults) compare equal.
        before = _runtime_free(to_dict(load_bench_config(saved)))
        if before != _runtime_free(to_dict(cfg)):
            raise ValueError(
                f"{saved}: this run folder was made with another config; "
                "use the same config to resume, or a new --out"
            )
        _check_dataset(run_dir / "dataset.json", Path(data_root))
    else:  # record first: config.yaml without dataset.json then means a folder from before
        root = str(Path(data_root).resolve())
        (run_dir / "dataset.json").write_text(json.dumps({"root": root}) + "\n")
        save_config(cfg, saved)
    if cfg.train.threads:  # the separator and scoring too, not only train_run
        torch.set_num_threads(cfg.train.threads)
    checkpoints = train_systems(cfg, data_root, run_dir, ds)  # raises before a bad index is written
    _write_json(run_dir / "checkpoints.json", _jsonable(checkpoints))
    results = evaluate(cfg, ds, checkpoints, run_dir)
    if cfg.bench.analysis and PROPOSED in checkpoints:
        from csn_model.analysis import analyze_subspaces

        analyze_subspaces(checkpoints[PROPOSED], ds, run_dir / "analysis", split="test")
    return results


def score_run(run_dir: Path, data_root: Path, out_dir: Path | None = None) -> dict:
    """Score an existing run's trained systems on another dataset's test split (no training)."""
    from csn_model.data.slakh import SlakhDataset

    cfg = load_bench_config(run_dir / "config.yaml")
    index = run_dir / "checkpoints.json"
    if not index.exists():
        raise ValueError(f"{index}: missing; run `csn bench` to completion in {run_dir} first")
    checkpoints = json.loads(index.read_text())
    ds = SlakhDataset(data_root)
    _check_rate(ds, cfg, data_root)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    out_dir = out_dir or run_dir / "eval" / Path(data_root).resolve().name
    out_dir.mkdir(parents=True, exist_ok=True)
    return evaluate(cfg, ds, checkpoints, out_dir, trained_on=str(run_dir))


def _check_dataset(record: Path, data_root: Path) -> None:
    """A run folder resumes only on the dataset it was started on: its systems, separator and
    triplets came from that dataset."""
    root = str(data_root.resolve())
    if not record.exists():
        raise ValueError(
            f"{record}: missing; this run folder was made before csn bench recorded its dataset, "
            f"so it cannot tell whether {root} is the data its systems were trained on; use a new "
            f"--out, or if it is that data, write {json.dumps({'root': root})} to {record}"
        )
    try:
        recorded = json.loads(record.read_text())["root"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'{record}: expected {{"root": DATASET_PATH}} ({exc!r})') from None
    if recorded != root:
        raise ValueError(
            f"{record}: this run folder was made from the dataset {recorded}, not {root}; "
            "use the same --data to resume, or a new --out"
        )


def _runtime_free(d: dict) -> dict:
    """A config dict without the fields that do not change results (threads, workers, ...)."""
    from csn_model.train_folder import RUNTIME_FIELDS

    d = json.loads(json.dumps(d))
    for name in RUNTIME_FIELDS:
        d["train"].pop(name, None)
    return d


def _check_rate(ds, cfg: BenchConfig, data_root) -> None:
    if ds.sample_rate != cfg.features.sample_rate:
        raise ValueError(
            f"{data_root}: sample rate {ds.sample_rate} Hz; the config's "
            f"features.sample_rate is {cfg.features.sample_rate}"
        )


def evaluate(cfg: BenchConfig, ds, checkpoints: dict, out_dir: Path, trained_on: str = "") -> dict:
    from csn_model.separation import load_separator

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    triplets = eval_triplets(ds, out_dir / "triplets", cfg)
    nets = load_systems(checkpoints, device)
    separator = None
    if "individual_separated" in nets:
        sep_cfg = cfg.separator if isinstance(cfg.separator, SeparatorConfig) else SeparatorConfig()
        sep_path = checkpoints.get("separator")
        separator = load_separator(sep_cfg, sep_path and Path(sep_path), ds.sample_rate)
    outcomes = score(
        ds, triplets, nets, cfg.features.segment_frames, separator, cfg.bench.batch_triplets
    )
    outcomes.to_csv(out_dir / "outcomes.csv", index=False)
    acc = accuracy_table(outcomes, n_boot=cfg.bench.n_boot, seed=cfg.bench.eval_seed)
    reference = PROPOSED if PROPOSED in nets else next(iter(nets))
    comps = compare_to_reference(outcomes, reference) if len(nets) > 1 else pd.DataFrame()
    sdr = _sdr_summary(checkpoints, out_dir, ds, cfg, separator)
    results = build_results(cfg, ds, triplets, nets, acc, comps, sdr, trained_on)
    write_results(results, acc, comps, out_dir)
    log.info("results written to %s", out_dir / "results.md")
    return results


def _sdr_summary(checkpoints, out_dir: Path, ds, cfg, separator) -> list:
    from csn_model.separation import sdr_table, write_sdr

    if separator is None:
        return []
    existing = out_dir / "separator" / "sdr.json"
    if not existing.exists():  # another dataset (score_run): measure the separator there too
        existing.parent.mkdir(parents=True, exist_ok=True)
        write_sdr(
            sdr_table(ds, separator, "test", cfg.bench.sdr_chunk_seconds), existing.with_suffix("")
        )
    return json.loads(existing.read_text())


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return None if obj is None else str(Path(obj).resolve())  # usable from any directory


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
