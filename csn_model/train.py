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
only on (seed, index): a run is the same with any number of DataLoader workers, and a resumed run
continues exactly where the last checkpoint left it. Writes to out_dir: csn_train.json (marks the
folder as a training run's), config.yaml (resolved), train.log, metrics.jsonl, checkpoint.pt
(latest, with optimizer state), final.pt, summary.json. out_dir must be new, empty or a training
run's folder: anything else is refused rather than overwritten.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from csn_model import CONDITIONS
from csn_model.checkpoint import load_checkpoint, load_model, make_payload, save_checkpoint
from csn_model.config import ConfigError, ExperimentConfig, from_dict, save_config, to_dict
from csn_model.model import build_model, model_args_from_config
from csn_model.objectives import csn_losses, individual_losses, pretrain_losses

# Fields that do not change what a run computes: a resumed run may differ in these.
RUNTIME_FIELDS = ("num_workers", "checkpoint_every", "log_every", "device", "threads")
RUN_MARKER = "csn_train.json"  # written first into out_dir: the folder is a training run's
OWN_FILES = {RUN_MARKER, "config.yaml", "train.log", "metrics.jsonl", "checkpoint.pt", "final.pt",
             "summary.json"}  # fmt: skip


class TrainError(RuntimeError):
    """A run that cannot start or continue; the message says what is missing or inconsistent."""


class StepBatches(Dataset):
    """Index s -> the whole batch of step s (items s*B .. s*B+B-1 of an item dataset)."""

    def __init__(self, items: Dataset, batch_size: int, offset: int = 0):
        self.items, self.batch_size, self.offset = items, batch_size, offset

    def __len__(self) -> int:
        return len(self.items) // self.batch_size

    def __getitem__(self, step: int) -> dict:
        first = (step - self.offset) * self.batch_size
        rows = [self.items[first + j] for j in range(self.batch_size)]
        return torch.utils.data.default_collate(rows)  # each field gains a leading (B, ...)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers read audio; the training process owns the cores


def make_loader(items: Dataset, cfg: ExperimentConfig, start: int, stop: int, offset: int = 0):
    batches = StepBatches(items, cfg.train.batch_size, offset)
    workers = cfg.train.num_workers
    return DataLoader(
        batches,
        batch_size=None,  # StepBatches already builds batches
        sampler=range(start, stop),
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        pin_memory=torch.cuda.is_available(),
    )


def make_datasets(cfg: ExperimentConfig, data_root: str | Path) -> dict[str, Dataset]:
    """Item datasets of the run's phases from the data layer (train split)."""
    from csn_model.data.slakh import SlakhDataset
    from csn_model.data.torch_data import StemTorchDataset, TripletTorchDataset
    from csn_model.data.triplets import TripletSampler

    t, f = cfg.train, cfg.features
    ds = SlakhDataset(data_root)
    if ds.sample_rate != f.sample_rate:
        raise TrainError(
            f"{data_root}: dataset sample rate {ds.sample_rate} Hz, but features.sample_rate is "
            f"{f.sample_rate}: set features.sample_rate to the dataset's rate"
        )
    sampler = TripletSampler(ds, "train", f.segment_frames, seed=t.seed)
    out: dict[str, Dataset] = {}
    if t.system == "individual":
        out["main"] = StemTorchDataset(
            sampler, length=t.steps * t.batch_size, condition=t.condition
        )
        return out
    if t.pretrain:
        out["pretrain"] = StemTorchDataset(sampler, length=t.pretrain * t.batch_size)
    kind = "pseudo" if t.pseudo_mix else "natural"
    out["main"] = TripletTorchDataset(sampler, length=t.steps * t.batch_size, kind=kind)
    return out


def resolve_device(cfg: ExperimentConfig) -> torch.device:
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("train.device is 'cuda' but no CUDA device is available")
    if cfg.train.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.train.device)


def load_teachers(teachers: dict[str, Path] | None, cfg: ExperimentConfig, device) -> list:
    """Frozen individual networks in CONDITIONS order, or [] when the run needs none."""
    t = cfg.train
    if t.system != "csn" or (t.aux_loss == 0 and t.pretrain == 0):
        return []
    missing = [c for c in CONDITIONS if c not in (teachers or {})]
    if missing:
        raise TrainError(
            f"train.aux_loss / train.pretrain need individual-network teachers; missing "
            f"{', '.join(missing)} (pass teachers={{condition: checkpoint}})"
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
        if model.embedding_dim != sub or payload["model_args"]["features"] != features:
            raise TrainError(
                f"{teachers[c]}: teacher for {c} embeds {model.embedding_dim} dims from features "
                f"{payload['model_args']['features']}; expected {sub} dims from {features}"
            )
        out.append(model.requires_grad_(False))
    return out


def _to(batch: dict, device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _logger(out_dir: Path) -> logging.Logger:
    log = logging.getLogger(f"csn_model.train.{out_dir.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        h = logging.FileHandler(out_dir / "train.log")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
    return log


def _check_same_run(path: Path, cfg: ExperimentConfig) -> dict:
    payload = load_checkpoint(path)
    if _comparable(payload["config"], type(cfg)) != _comparable(to_dict(cfg), type(cfg)):
        raise ConfigError(
            f"{path}: this folder holds a run with another config; use a new out_dir "
            "or the same config (only train.num_workers, checkpoint_every, log_every, device and "
            "threads may differ)"
        )
    return payload


def train_run(
    cfg: ExperimentConfig,
    data_root: str | Path,
    out_dir: str | Path,
    teachers: dict[str, Path] | None = None,
    progress: bool = True,
) -> Path:
    """Train one system; returns out_dir/final.pt. Resumes from out_dir/checkpoint.pt; returns at
    once when out_dir already holds the finished run of the same config."""
    out_dir = Path(out_dir)
    _claim_out_dir(out_dir)
    final, last = out_dir / "final.pt", out_dir / "checkpoint.pt"
    if final.exists():
        _check_same_run(final, cfg)
        return final
    resume = _check_same_run(last, cfg) if last.exists() else None
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train(cfg, data_root, out_dir, teachers, progress, resume)
    finally:
        torch.set_num_threads(threads)


def _claim_out_dir(out_dir: Path) -> None:
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


def _train(cfg, data_root, out_dir: Path, teachers, progress: bool, resume: dict | None) -> Path:
    final, last = out_dir / "final.pt", out_dir / "checkpoint.pt"
    save_config(cfg, out_dir / "config.yaml")
    log = _logger(out_dir)
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
    _trim_metrics(out_dir / "metrics.jsonl", start)
    datasets = make_datasets(cfg, data_root)
    ctx = _RunContext(
        cfg, model, name, args, opt, scaler, teacher_nets, device, use_amp, log, out_dir, progress
    )
    log.info(
        "start: %s on %s, %d parameters, steps %d (+%d pre-training)",
        name,
        device,
        sum(p.numel() for p in model.parameters()),
        cfg.train.steps,
        cfg.train.pretrain,
    )
    pre = cfg.train.pretrain if "pretrain" in datasets else 0
    if start < pre:
        ctx.run_phase("pretrain", datasets["pretrain"], start, pre, 0, pretrain_losses)
        start = pre
    step_fn = individual_losses if name == "individual" else csn_losses
    ctx.run_phase("main", datasets["main"], start, pre + cfg.train.steps, pre, step_fn)
    ctx.save(last, pre + cfg.train.steps)
    payload = make_payload(name, args, model, to_dict(cfg), step=pre + cfg.train.steps)
    save_checkpoint(final, payload)
    ctx.write_summary(pre + cfg.train.steps)
    log.info("finished: %s", final)
    return final


def _trim_metrics(path: Path, step: int) -> None:
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


class _RunContext:
    """What the phases of one run share: model, optimiser, logging, timing."""

    def __init__(
        self, cfg, model, name, args, opt, scaler, teachers, device, use_amp, log, out_dir, progress
    ):
        self.cfg, self.model, self.name, self.args = cfg, model, name, args
        self.opt, self.scaler, self.teachers = opt, scaler, teachers
        self.device, self.use_amp, self.log, self.out_dir = device, use_amp, log, out_dir
        self.progress = progress
        self.wait_s = self.total_s = 0.0
        self.clips = 0
        self.last_loss = float("nan")

    def save(self, path: Path, step: int) -> None:
        payload = make_payload(
            self.name,
            self.args,
            self.model,
            to_dict(self.cfg),
            step=step,
            optimizer=self.opt.state_dict(),
            scaler=self.scaler.state_dict(),
        )
        save_checkpoint(path, payload)

    def run_phase(self, phase, items, start, stop, offset, loss_fn) -> None:
        t = self.cfg.train
        loader = make_loader(items, self.cfg, start, stop, offset)
        bar = tqdm(
            total=stop - offset,
            initial=start - offset,
            desc=phase,
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        seg_s = self.cfg.features.segment_seconds
        sums: dict[str, float] = {}
        n_win, wait_win, total_win, clips_win = 0, 0.0, 0.0, 0
        self.model.train()
        batches = iter(loader)
        for step in range(start, stop):
            t0 = time.perf_counter()
            batch = _to(next(batches), self.device)
            t_data = time.perf_counter() - t0
            terms = self._step(loss_fn, batch)
            dt = time.perf_counter() - t0
            clips = 3 * t.batch_size
            n_win, wait_win, total_win, clips_win = (
                n_win + 1,
                wait_win + t_data,
                total_win + dt,
                clips_win + clips,
            )
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.4f}", xrt=f"{clips * seg_s / dt:.0f}")
            if (step + 1) % t.log_every == 0 or step + 1 == stop:
                row = {
                    "step": step + 1,
                    "phase": phase,
                    **{k: v / n_win for k, v in sums.items()},
                    "clips_per_s": clips_win / total_win,
                    "x_real_time": clips_win * seg_s / total_win,
                    "data_wait_share": wait_win / total_win,
                    "time": time.time(),
                }
                self._record(row)
                self.wait_s, self.total_s = self.wait_s + wait_win, self.total_s + total_win
                self.clips += clips_win
                sums, n_win, wait_win, total_win, clips_win = {}, 0, 0.0, 0.0, 0
            if (step + 1) % t.checkpoint_every == 0 and step + 1 < stop:
                self.save(self.out_dir / "checkpoint.pt", step + 1)
        bar.close()

    def _step(self, loss_fn, batch: dict) -> dict[str, float]:
        with torch.autocast(self.device.type, enabled=self.use_amp):
            terms = loss_fn(self.model, batch, self.cfg, self.teachers)
            loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise TrainError(f"loss became {loss.item()} ({terms}); lower train.lr")
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.last_loss = float(loss.detach())
        return {"loss": self.last_loss, **{k: float(v.detach()) for k, v in terms.items()}}

    def _record(self, row: dict) -> None:
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self.log.info(
            "step %d %s loss %.4f  %.0f clips/s  data wait %.1f%%",
            row["step"],
            row["phase"],
            row["loss"],
            row["clips_per_s"],
            100 * row["data_wait_share"],
        )

    def write_summary(self, steps: int) -> None:
        share = self.wait_s / self.total_s if self.total_s else float("nan")
        summary = {
            "system": self.name,
            "steps": steps,
            "device": str(self.device),
            "final_loss": self.last_loss,
            "train_seconds": self.total_s,
            "clips_per_s": self.clips / self.total_s if self.total_s else float("nan"),
            "data_wait_share": share,
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.log.info("data wait share %.1f%% of step time (target < 10%%)", 100 * share)
