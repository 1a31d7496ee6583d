"""Training of one system: the CSN on mixtures, or one individual network on a clean stem.

    train_run(cfg, data_root, out_dir, teachers={"drums": Path(...), ...}) -> out_dir/final.pt

Phases, in step order: `cfg.train.pretrain` steps of pre-training on isolated stems (CSN only,
needs teachers), then `cfg.train.steps` steps of the system's own objective:
- CSN: masked triplet loss on pseudo-mixed triplets (or, with train.pseudo_mix false, natural
  mixtures: anchor and positive two segments of one piece's mix, the negative another piece's mix;
  this is our reading of "without pseudo-mixing"), plus interchanged triplets, plus lambda x the
  MSE towards the frozen teachers' embeddings of the clean stems;
- individual: plain triplet loss on train.condition's isolated stem.

The batch of step s holds items s*B .. s*B+B-1 of the data layer's datasets, whose items depend
only on (seed, phase, index), pre-training drawing from its own random stream: a run is the same
with any number of DataLoader workers, and a resumed run continues exactly where the last
checkpoint left it. Writes to out_dir: csn_train.json (marks the
folder as a training run's), config.yaml (resolved), train.log, metrics.jsonl, checkpoint.pt
(latest, with optimizer state), final.pt, summary.json. out_dir must be new, empty or a training
run's folder: anything else is refused rather than overwritten.

This module builds a run (datasets, device, teachers, model, optimiser) and runs its phases; the
run folder's rules are in csn_model.train_folder, the step loop in csn_model.train_loop, and
TrainError in csn_model.train_errors.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from csn_model import CONDITIONS
from csn_model.checkpoint import (
    ADDED_FEATURE_ARGS,
    file_id,
    load_model,
    make_payload,
    save_checkpoint,
)
from csn_model.config import ExperimentConfig, save_config, to_dict
from csn_model.model import build_model, model_args_from_config
from csn_model.objectives import csn_losses, individual_losses, pretrain_losses
from csn_model.train_errors import TrainError
from csn_model.train_folder import (
    check_same_run,
    claim_out_dir,
    record_source,
    run_logger,
    trim_metrics,
)
from csn_model.train_loop import RunContext

# What a run's seed draws as training items, per train.system, recorded in checkpoints: bump a
# system's number when its items change. csn 2 (2026-12-06): pre-training draws from its own stream
# and a pseudo negative with D = B is piece B's own mix; individual items did not change. A
# checkpoint without the field has version 1.
ITEMS_VERSIONS = {"csn": 2, "individual": 1}
PRETRAIN_STREAM = 1  # csn_model.data.torch_data's stream of pre-training items (main: 0)


def make_datasets(cfg: ExperimentConfig, data_root: str | Path, log=None) -> dict[str, Dataset]:
    """Item datasets of the run's phases from the data layer (train split); `log` (a logger)
    gets the stems the reader skipped (silent, unrendered, unlisted)."""
    from csn_model.data.slakh import SlakhDataset
    from csn_model.data.torch_data import StemTorchDataset, TripletTorchDataset
    from csn_model.data.triplets import TripletSampler

    t, f = cfg.train, cfg.features
    ds = SlakhDataset(data_root, duplicates=cfg.data.duplicates)
    if ds.sample_rate != f.sample_rate:
        raise TrainError(
            f"{data_root}: dataset sample rate {ds.sample_rate} Hz, but features.sample_rate is "
            f"{f.sample_rate}: set features.sample_rate to the dataset's rate"
        )
    sampler = TripletSampler(ds, "train", f.segment_frames, seed=t.seed)  # analyses every track
    if log is not None:
        log.info("train split: %d tracks; %s", len(sampler.tracks), ds.skip_summary("train"))
        if ds.omitted:
            log.info("%s (data.duplicates: omit)", ds.omit_summary())
    out: dict[str, Dataset] = {}
    if t.system == "individual":
        out["main"] = StemTorchDataset(
            sampler, length=t.steps * t.batch_size, condition=t.condition
        )
        return out
    if t.pretrain:
        # its own random stream: on the main phase's (0) it would replay the first main items
        out["pretrain"] = StemTorchDataset(
            sampler, length=t.pretrain * t.batch_size, stream=PRETRAIN_STREAM
        )
    kind = "pseudo" if t.pseudo_mix else "natural"
    out["main"] = TripletTorchDataset(
        sampler, length=t.steps * t.batch_size, kind=kind, gain_db=t.gain_db
    )
    return out


def resolve_device(cfg: ExperimentConfig) -> torch.device:
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("train.device is 'cuda' but no CUDA device is available")
    if cfg.train.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.train.device)


def needs_teachers(cfg: ExperimentConfig) -> bool:
    t = cfg.train
    return t.system == "csn" and (t.aux_loss != 0 or t.pretrain != 0)


def run_source(cfg: ExperimentConfig, data_root: str | Path, teachers) -> dict:
    """What the run is made from, recorded in its checkpoints and csn_train.json and compared when
    it resumes: {"dataset": {"root", "fingerprint"}, "teachers": {condition: checkpoint file id},
    "items": ITEMS_VERSIONS of the system}
    (teachers only when the run uses them; a missing file is left to load_teachers to name)."""
    from csn_model.data.slakh import SlakhDataset

    # DataError for a root that is not a dataset folder, or duplicates it refuses: before the run
    # folder is claimed
    ds = SlakhDataset(data_root, duplicates=cfg.data.duplicates)
    ds.check_sources()
    dataset = {"root": str(ds.root.resolve()), "fingerprint": ds.fingerprint}
    return recorded_source(cfg, dataset, teachers)


def recorded_source(cfg: ExperimentConfig, dataset: dict, teachers) -> dict:
    """run_source's record for the dataset record {"root", "fingerprint"}: the teachers' file ids
    (those whose files exist; none when cfg uses no teachers) and the items version."""
    ids = {}
    if needs_teachers(cfg):
        ids = {c: file_id(p) for c, p in (teachers or {}).items() if Path(p).is_file()}
    return {
        "dataset": dataset,
        "teachers": dict(sorted(ids.items())),
        "items": ITEMS_VERSIONS[cfg.train.system],
    }


def load_teachers(teachers: dict[str, Path] | None, cfg: ExperimentConfig, device) -> list:
    """Frozen individual networks in CONDITIONS order, or [] when the run needs none."""
    if not needs_teachers(cfg):
        return []
    teachers = teachers or {}
    missing = [c for c in CONDITIONS if c not in teachers]
    if missing:
        raise TrainError(
            f"train.aux_loss / train.pretrain need individual-network teachers; missing "
            f"{', '.join(missing)}: pass one per instrument (--teacher "
            + " ".join(f"{c}=CHECKPOINT" for c in missing)
            + "), or train without them: --set train.aux_loss=0 train.pretrain=0"
        )
    sub = cfg.model.embedding_dim // len(CONDITIONS)
    features = model_args_from_config(cfg)["features"]  # teachers reuse the CSN's log-mel
    out = []
    for c in CONDITIONS:
        model, payload = load_model(teachers[c], device)
        if payload["model_name"] != "individual" or model.conditions != (c,):
            raise TrainError(
                f"{teachers[c]}: teacher for {c} has model_name {payload['model_name']!r} and "
                f"conditions {list(model.conditions)}; expected an individual network trained "
                f"on {c} (train.system=individual, train.condition={c})"
            )
        # a teacher from before a feature field computes with its old value (ADDED_FEATURE_ARGS)
        have = {**ADDED_FEATURE_ARGS, **payload["model_args"]["features"]}
        if model.embedding_dim != sub or have != features:
            raise TrainError(
                f"{teachers[c]}: teacher for {c} embeds {model.embedding_dim} dims from features "
                f"{payload['model_args']['features']}; expected {sub} dims from {features}"
            )
        out.append(model.requires_grad_(False))
    return out


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_run(
    cfg: ExperimentConfig,
    data_root: str | Path,
    out_dir: str | Path,
    teachers: dict[str, Path] | None = None,
    progress: bool = True,
) -> Path:
    """Train one system; returns out_dir/final.pt. Resumes from out_dir/checkpoint.pt; returns at
    once when out_dir already holds the finished run of the same config, dataset and teachers
    (another dataset, or one changed since, is refused: csn_model.train_folder.check_same_run)."""
    out_dir = Path(out_dir)
    source = run_source(cfg, data_root, teachers)
    claim_out_dir(out_dir)
    final, last = out_dir / "final.pt", out_dir / "checkpoint.pt"
    if final.exists():
        check_same_run(final, cfg, source)
        return final
    resume = check_same_run(last, cfg, source) if last.exists() else None
    record_source(out_dir, source)
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train(cfg, data_root, out_dir, teachers, progress, resume, source)
    finally:
        torch.set_num_threads(threads)


def _train(cfg, data_root, out_dir: Path, teachers, progress, resume: dict | None, source) -> Path:
    final, last = out_dir / "final.pt", out_dir / "checkpoint.pt"
    save_config(cfg, out_dir / "config.yaml")
    log = run_logger(out_dir)
    device = resolve_device(cfg)
    _seed_everything(cfg.train.seed)
    name, args = cfg.train.system, model_args_from_config(cfg)
    model = build_model(name, args).to(device)
    teacher_nets = load_teachers(teachers, cfg, device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    use_amp = device.type == "cuda" and cfg.train.amp
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    start = 0
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        opt.load_state_dict(resume["optimizer"])
        if resume["scaler"] and use_amp:  # empty when saved by a CPU run (scaler disabled)
            scaler.load_state_dict(resume["scaler"])
        start = int(resume["step"])
        log.info("resuming %s at step %d", last, start)
    trim_metrics(out_dir / "metrics.jsonl", start)
    data = source["dataset"]
    log.info("dataset %s, fingerprint %s", data["root"], data["fingerprint"])
    datasets = make_datasets(cfg, data_root, log)
    ctx = RunContext(
        cfg, model, name, args, opt, scaler, teacher_nets, device, use_amp, log, out_dir, progress
    )
    ctx.source = source
    log.info(
        "start: %s on %s, %d parameters, steps %d (+%d pre-training)",
        name,
        device,
        sum(p.numel() for p in model.parameters()),
        cfg.train.steps,
        cfg.train.pretrain,
    )
    ctx.step, ctx.saved = start, (start if resume is not None else None)
    pre = cfg.train.pretrain if "pretrain" in datasets else 0
    try:
        _run_phases(ctx, datasets, start, pre)
    except KeyboardInterrupt:
        raise ctx.interrupted(pre + cfg.train.steps) from None
    log.info("finished: %s", final)
    return final


def _run_phases(ctx: RunContext, datasets: dict, start: int, pre: int) -> None:
    """The run's phases from step `start` (pre: pre-training steps), then checkpoint.pt, final.pt
    and summary.json."""
    cfg, total = ctx.cfg, pre + ctx.cfg.train.steps
    if start < pre:
        ctx.run_phase("pretrain", datasets["pretrain"], start, pre, 0, pretrain_losses)
        start = pre
    step_fn = individual_losses if ctx.name == "individual" else csn_losses
    ctx.run_phase("main", datasets["main"], start, total, pre, step_fn)
    ctx.save(ctx.out_dir / "checkpoint.pt", total)
    payload = make_payload(ctx.name, ctx.args, ctx.model, to_dict(cfg), step=total, **ctx.source)
    save_checkpoint(ctx.out_dir / "final.pt", payload)
    ctx.write_summary(total)
