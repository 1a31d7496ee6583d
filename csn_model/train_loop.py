"""The step loop of a training run: step-indexed batches, the DataLoader over them, and the
RunContext that runs a phase's steps (optimiser, mixed precision, metrics, checkpoints, timing).

The batch of step s holds items s*B .. s*B+B-1 of an item dataset (StepBatches), so a phase can
start at any step: that is how a run resumes, with any number of DataLoader workers.
"""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from csn_model.checkpoint import make_payload, save_checkpoint
from csn_model.config import ExperimentConfig, to_dict
from csn_model.train_errors import TrainError, TrainInterrupted


class NonFiniteLoss(TrainError):
    """A step's loss is NaN or infinite; run_phase names the step."""


class _Items(Protocol):
    """A map-style dataset of known length (torch's Dataset type declares no __len__)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict: ...


class StepBatches(Dataset):
    """Index s -> the whole batch of step s (items s*B .. s*B+B-1 of an item dataset)."""

    def __init__(self, items: _Items, batch_size: int, offset: int = 0):
        self.items, self.batch_size, self.offset = items, batch_size, offset

    def __len__(self) -> int:
        return len(self.items) // self.batch_size

    def __getitem__(self, step: int) -> dict:
        first = (step - self.offset) * self.batch_size
        rows = [self.items[first + j] for j in range(self.batch_size)]
        return torch.utils.data.default_collate(rows)  # each field gains a leading (B, ...)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers read audio; the training process owns the cores


def make_loader(items: _Items, cfg: ExperimentConfig, start: int, stop: int, offset: int = 0):
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


def _next_batch(batches):
    """next(batches), with an error raised in a loader worker as the worker raised it: torch
    re-raises it as its type with the worker's traceback as its message, which the CLI would
    print whole (the same error is one line with train.num_workers 0)."""
    try:
        return next(batches)
    except Exception as exc:
        original = worker_error(exc)
        if original is None:
            raise
        raise original from exc


_CHAINED = re.compile(
    r"\n\n(?:During handling of the above exception, another exception occurred"
    r"|The above exception was the direct cause of the following exception):\n\n"
)


def worker_error(exc: BaseException) -> BaseException | None:
    """The exception a DataLoader worker raised, rebuilt from torch's re-raised copy of it (its
    message is "Caught T in DataLoader worker process N.", then "Original " and the worker's
    formatted traceback, whose last block ends in "T: the original message"), or None when exc
    is not such a copy, is not of type T (torch re-raises a T it cannot build from one string as
    a RuntimeError), or T cannot be rebuilt from the message."""
    text = str(exc.args[0]) if len(exc.args) == 1 else ""
    head, sep, trace = text.partition("\nOriginal Traceback (most recent call last):\n")
    caught = re.fullmatch(r"Caught (\S+) in DataLoader worker process \d+\.", head)
    kind = type(exc)
    if not (sep and caught and caught.group(1) == kind.__name__):
        return None
    last = _CHAINED.split(trace)[-1].split("\n")  # the worker's own exception, not its causes
    start = 1 if last[0].startswith("Traceback (most recent call last):") else 0
    # Frames are indented; the first line that is not starts "T: message" (then its other lines)
    at = next((i for i in range(start, len(last)) if not last[i].startswith(" ")), None)
    names = (f"{kind.__module__}.{kind.__qualname__}: ", f"{kind.__qualname__}: ")
    name = next((n for n in names if at is not None and last[at].startswith(n)), None)
    if at is None or name is None:
        return None
    message = "\n".join([last[at][len(name) :], *last[at + 1 :]]).rstrip("\n")
    if issubclass(kind, KeyError):
        return _key_error(kind, message)
    try:
        return kind(message)
    except TypeError:  # a type whose constructor takes other arguments
        return None


def _key_error(kind: type[KeyError], message: str) -> KeyError:
    """A KeyError rebuilt from its traceback text: the key's repr on the first line (str of a
    KeyError), then the lines of its notes (Python 3.11 add_note), which go back to being a note
    rather than part of the key. Another type's message can span lines, so there a note cannot
    be told from the message and stays in it, shown as the worker showed it."""
    key, _, notes = message.partition("\n")
    try:
        rebuilt = kind(ast.literal_eval(key))
    except (ValueError, SyntaxError):  # a key whose repr is no literal: the text as it was
        return kind(message)
    if notes:
        rebuilt.add_note(notes)  # several notes come back as one, shown the same
    return rebuilt


def _to(batch: dict, device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


class RunContext:
    """What the phases of one run share: model, optimiser, logging, timing."""

    def __init__(
        self, cfg, model, name, args, opt, scaler, teachers, device, use_amp, log, out_dir, progress
    ):
        self.cfg, self.model, self.name, self.args = cfg, model, name, args
        self.opt, self.scaler, self.teachers = opt, scaler, teachers
        self.device, self.use_amp, self.log, self.out_dir = device, use_amp, log, out_dir
        self.progress = progress
        self.step = 0  # steps done (all phases): where an interrupted run stopped
        self.saved: int | None = None  # step of the last checkpoint.pt written or resumed from
        self.source: dict = {}  # train.run_source: the dataset and teachers, in every checkpoint
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
            **self.source,
        )
        save_checkpoint(path, payload)
        self.saved = step

    def run_phase(self, phase, items, start, stop, offset, loss_fn) -> None:
        bar = tqdm(
            total=stop - offset,
            initial=start - offset,
            desc=phase,
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self.step = start
        try:
            self._run_steps(phase, items, start, stop, offset, loss_fn, bar)
        finally:  # also on Ctrl-C: the interruption's message then starts on a line of its own
            bar.close()

    def _run_steps(self, phase, items, start, stop, offset, loss_fn, bar) -> None:
        t = self.cfg.train
        loader = make_loader(items, self.cfg, start, stop, offset)
        seg_s = self.cfg.features.segment_seconds
        sums: dict[str, float] = {}
        n_win, wait_win, total_win, clips_win = 0, 0.0, 0.0, 0
        self.model.train()
        batches = iter(loader)
        for step in range(start, stop):
            t0 = time.perf_counter()
            batch = _to(_next_batch(batches), self.device)
            t_data = time.perf_counter() - t0
            try:
                terms = self._step(loss_fn, batch)
            except NonFiniteLoss as exc:  # stopped before the step: no checkpoint holds it
                raise TrainError(f"step {step + 1} ({phase}): {exc}") from None
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
            self.step = step + 1
            if (step + 1) % t.checkpoint_every == 0 and step + 1 < stop:
                self.save(self.out_dir / "checkpoint.pt", step + 1)

    def interrupted(self, total: int) -> TrainInterrupted:
        """The error for Ctrl-C during the run, its message logged to train.log: the step
        reached, the last checkpoint and its step, and how to resume."""
        last = self.out_dir / "checkpoint.pt"
        if self.saved is None:
            where = (
                f"no checkpoint saved yet (one every {self.cfg.train.checkpoint_every} steps, "
                "train.checkpoint_every), so the same command starts again at step 0"
            )
        else:
            where = (
                f"last checkpoint {last} at step {self.saved}; the same command (same config, "
                "--set, --data and --out) resumes from it"
            )
        message = f"interrupted after step {self.step} of {total}; {where}"
        self.log.warning(message)
        return TrainInterrupted(message)

    def _step(self, loss_fn, batch: dict) -> dict[str, float]:
        with torch.autocast(self.device.type, enabled=self.use_amp):
            terms = loss_fn(self.model, batch, self.cfg, self.teachers)
            loss = sum(terms.values())
        if not torch.isfinite(loss):
            values = {k: float(v.detach()) for k, v in terms.items()}
            raise NonFiniteLoss(
                f"loss became {loss.item()} ({values}); training stopped, final.pt not written; "
                "lower train.lr"
            )
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
