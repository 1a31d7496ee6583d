"""PyTorch datasets over triplets: mixtures with their clean stems, and isolated stems.

Random training items are drawn from a TripletSampler with a generator seeded by
(sampler seed, epoch, index), and by the dataset's `stream` too when it is not 0, so an item is
the same whichever DataLoader worker builds it and however many workers there are; call
`set_epoch` to draw fresh items each epoch. Datasets that share a sampler but should not share
draws (a run's pre-training and main phase) take different streams: stream 0 is the seeding from
before streams existed, so its items are unchanged. A fixed list of triplets (an evaluation set)
is served as is.

TripletTorchDataset's `gain_db` (train.gain_db): each of an item's three mixtures times its own
gain, uniform in dB over the range, from a generator seeded by (sampler seed, epoch, index,
stream, GAIN_KEY): the same whichever worker builds the item, and drawn apart from the triplet,
so the triplets are those of a run without it. The clean stems (the teachers' input) keep their
level. A range of (0, 0), the default, draws nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from csn_model import CONDITIONS
from csn_model.data.slakh import SlakhDataset
from csn_model.data.triplets import Triplet, TripletSampler, render_stems

GAIN_KEY = 1_000_003  # last entry of the gains' seed: apart from the triplets' (seed, epoch, ...)


class _TripletSource:
    def __init__(self, source, ds, num_frames, length, kind, condition, stream=0):
        if isinstance(source, TripletSampler):
            self.sampler, self.fixed = source, None
            self.ds = source.ds
            self.num_frames = int(num_frames or source.segment_frames)
            self.length = int(length or 10_000)
        else:
            self.sampler, self.fixed = None, list(source)
            if ds is None or num_frames is None:
                raise ValueError("a fixed triplet list needs ds= and num_frames=")
            self.ds, self.num_frames = ds, int(num_frames)
            self.length = len(self.fixed)
        self.kind, self.condition, self.epoch = kind, condition, 0
        self.stream = int(stream)

    def get(self, index: int) -> Triplet:
        if self.fixed is not None:
            return self.fixed[index]
        key = [self.sampler.seed, self.epoch, index]
        rng = np.random.default_rng(key + [self.stream] if self.stream else key)
        return self.sampler.sample(self.condition, self.kind, rng)

    def gains(self, index: int, gain_db: tuple[float, float]) -> np.ndarray:
        """(3,) linear gains of the item's anchor, positive and negative mixtures."""
        seed = self.sampler.seed if self.sampler is not None else 0
        rng = np.random.default_rng([seed, self.epoch, index, self.stream, GAIN_KEY])
        return 10 ** (rng.uniform(gain_db[0], gain_db[1], size=3) / 20)


class TripletTorchDataset(Dataset):
    """Items: {"mix": (3, T) [anchor, positive, negative], "stems": (3, K, T),
    "condition": int, "interchanged": (K,) bool} as float32/bool tensors."""

    def __init__(
        self,
        source: TripletSampler | list[Triplet],
        ds: SlakhDataset | None = None,
        num_frames: int | None = None,
        length: int | None = None,
        kind: str = "pseudo",
        condition: str | None = None,
        stream: int = 0,
        gain_db: tuple[float, ...] = (0.0, 0.0),  # [low, high] dB (train.gain_db)
    ):
        self.src = _TripletSource(source, ds, num_frames, length, kind, condition, stream)
        self.gain_db = (float(gain_db[0]), float(gain_db[1]))

    def __len__(self) -> int:
        return self.src.length

    def set_epoch(self, epoch: int) -> None:
        self.src.epoch = int(epoch)

    def triplet(self, index: int) -> Triplet:
        return self.src.get(index)

    def __getitem__(self, index: int) -> dict:
        t = self.src.get(index)
        cache: dict = {}  # anchor and negative share parts: read each once
        specs = (t.anchor, t.positive, t.negative)
        stems = np.stack([render_stems(self.src.ds, s, self.src.num_frames, cache) for s in specs])
        inter = np.array([c in t.interchanged for c in CONDITIONS])  # (K,)
        mix = stems.sum(axis=1)  # (3, K, T) -> (3, T)
        if self.gain_db != (0.0, 0.0):
            mix = (mix * self.src.gains(index, self.gain_db)[:, None]).astype(np.float32)
        return {
            "mix": torch.from_numpy(mix),  # (3, T)
            "stems": torch.from_numpy(stems),  # (3, K, T)
            "condition": CONDITIONS.index(t.condition),
            "interchanged": torch.from_numpy(inter),  # (K,)
        }


class StemTorchDataset(Dataset):
    """Isolated-stem triplets of one condition: {"stems": (3, T) [anchor, positive, negative],
    "condition": int}. Anchor and positive are two segments of one piece's stem, the negative
    another piece's stem (the individual networks' training data and CSN pre-training)."""

    def __init__(
        self,
        source: TripletSampler | list[Triplet],
        ds: SlakhDataset | None = None,
        num_frames: int | None = None,
        length: int | None = None,
        condition: str | None = None,
        stream: int = 0,
    ):
        self.src = _TripletSource(source, ds, num_frames, length, "stem", condition, stream)

    def __len__(self) -> int:
        return self.src.length

    def set_epoch(self, epoch: int) -> None:
        self.src.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        t = self.src.get(index)
        k = CONDITIONS.index(t.condition)
        n = self.src.num_frames
        segs = [s.stem(t.condition) for s in (t.anchor, t.positive, t.negative)]
        stems = np.stack(
            [self.src.ds.track(g.track).read_condition(CONDITIONS[k], g.start, n) for g in segs]
        )  # (3, T)
        return {"stems": torch.from_numpy(stems), "condition": k}
