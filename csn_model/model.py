"""The Conditional Similarity Network (CSN) and the individual per-instrument networks.

Both are one class: waveform -> log-mel (csn_model.features.LogMel) -> Conv+BN+ReLU blocks ->
mean over time ("Mean(t)") -> fully connected layers -> a D-dim embedding whose dimensions are
partitioned by one mask per condition. The CSN has K = 5 conditions and D = 5 x 128; an
individual network has one condition, D = 128, and a mask of ones, so its masked distance is the
plain Euclidean distance.

Masks are fixed disjoint blocks of D/K dimensions by default; with learned_masks they are free
parameters passed through a ReLU and initialised from N(0.9, 0.7), as in Veit et al. 2017
("Conditional Similarity Networks", CVPR), where an L1 penalty keeps them sparse (losses.py).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from csn_model import CONDITIONS
from csn_model.features import LogMel

MODEL_NAMES = ("csn", "individual")


class Encoder(nn.Module):
    """Log-mel (B, n_mels, frames) -> embedding (B, out_dim)."""

    def __init__(
        self,
        n_mels: int,
        out_dim: int,
        channels: list[int],
        kernels: list[int],
        strides: list[int],
        hidden: list[int],
    ):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)  # learns the scale of dB values
        blocks: list[nn.Module] = []
        c_in, height = 1, n_mels
        for c_out, k, s in zip(channels, kernels, strides):
            blocks += [
                nn.Conv2d(c_in, c_out, k, stride=s, padding=k // 2, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in, height = c_out, (height + 2 * (k // 2) - k) // s + 1
        self.blocks = nn.Sequential(*blocks)
        layers: list[nn.Module] = []
        width = c_in * height  # channels x remaining mel bands after Mean(t)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.fc = nn.Sequential(*layers)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(logmel.unsqueeze(1))  # (B, 1, n_mels, frames)
        x = self.blocks(x)  # (B, C, n_mels', frames')
        x = x.mean(dim=3)  # (B, C, n_mels')  Mean(t)
        x = x.flatten(1)  # (B, C * n_mels')
        return self.fc(x)  # (B, out_dim)


class ConditionalSimilarityNet(nn.Module):
    """Waveform (B, T) at `features["sample_rate"]` -> embedding (B, D) with K condition masks."""

    fixed_masks: torch.Tensor  # buffer, registered in __init__ unless the masks are learned

    def __init__(
        self,
        conditions: list[str],
        embedding_dim: int,
        features: dict,
        channels: list[int],
        kernels: list[int],
        strides: list[int],
        hidden: list[int],
        learned_masks: bool = False,
    ):
        super().__init__()
        k = len(conditions)
        if embedding_dim % k:
            raise ValueError(f"embedding_dim {embedding_dim} is not a multiple of K = {k}")
        self.conditions = tuple(conditions)
        self.embedding_dim = embedding_dim
        self.sub_dim = embedding_dim // k
        self.learned_masks = learned_masks
        self.frontend = LogMel(**features)
        self.encoder = Encoder(
            features.get("n_mels", 128), embedding_dim, channels, kernels, strides, hidden
        )
        blocks = torch.zeros(k, embedding_dim)  # (K, D)
        for i in range(k):
            blocks[i, i * self.sub_dim : (i + 1) * self.sub_dim] = 1.0
        if learned_masks:
            self.mask_param = nn.Parameter(torch.randn(k, embedding_dim) * 0.7 + 0.9)  # (K, D)
        else:
            self.register_buffer("fixed_masks", blocks)  # (K, D)

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    def masks(self) -> torch.Tensor:
        """(K, D) non-negative masks m_c."""
        return torch.relu(self.mask_param) if self.learned_masks else self.fixed_masks

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.frontend(wave))  # (B, T) -> (B, n_mels, frames) -> (B, D)

    def embed_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.encoder(logmel)  # (B, n_mels, frames) -> (B, D)

    def subspace(self, emb: torch.Tensor, k: int) -> torch.Tensor:
        """Condition k's part of (B, D) embeddings: (B, D/K) block, or (B, D) masked if learned."""
        if self.learned_masks:
            return emb * self.masks()[k]  # (B, D)
        return emb[:, k * self.sub_dim : (k + 1) * self.sub_dim]  # (B, D/K)

    def for_inference(self) -> ConditionalSimilarityNet:
        """An eval-mode copy with each BatchNorm folded into its convolution and channels-last
        weights: same outputs up to float rounding, ~1.5x faster on CPU."""
        fast = copy.deepcopy(self).eval()
        mods, blocks = list(fast.encoder.blocks), []
        for i, m in enumerate(mods):
            if isinstance(m, nn.BatchNorm2d):
                continue  # folded into the convolution before it
            if isinstance(m, nn.Conv2d):
                bn = mods[i + 1]
                if not isinstance(bn, nn.BatchNorm2d):
                    raise TypeError(f"encoder block {i + 1}: expected BatchNorm2d after a Conv2d")
                m = fuse_conv_bn_eval(m, bn)
            blocks.append(m)
        fast.encoder.blocks = nn.Sequential(*blocks)
        # Module.to takes memory_format at run time; the stubs' overloads leave it out.
        return fast.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def subspaces(self, emb: torch.Tensor) -> torch.Tensor:
        """Fixed masks only: (B, D) -> (B, K, D/K)."""
        return emb.view(emb.shape[0], len(self.conditions), self.sub_dim)  # (B, K, D/K)


def model_args_from_config(cfg, system: str | None = None, condition: str | None = None) -> dict:
    """JSON-able constructor arguments for one system of an ExperimentConfig."""
    system = system or cfg.train.system
    condition = condition or cfg.train.condition
    m, f = cfg.model, cfg.features
    individual = system == "individual"
    return {
        "conditions": [condition] if individual else list(CONDITIONS),
        "embedding_dim": m.embedding_dim // len(CONDITIONS) if individual else m.embedding_dim,
        "features": {
            "sample_rate": f.sample_rate,
            "n_fft": f.n_fft,
            "hop_length": f.hop_length,
            "n_mels": f.n_mels,
            "fmin": f.fmin,
            "fmax": f.fmax,
            "top_db": f.top_db,
            "db_ref": f.db_ref,
        },
        "channels": list(m.channels),
        "kernels": list(m.kernels),
        "strides": list(m.strides),
        "hidden": list(m.hidden),
        "learned_masks": bool(m.learned_masks) and not individual,
    }


def build_model(model_name: str, model_args: dict) -> ConditionalSimilarityNet:
    if model_name not in MODEL_NAMES:
        raise ValueError(f"unknown model_name {model_name!r}; expected one of {MODEL_NAMES}")
    return ConditionalSimilarityNet(**model_args)


def count_flops(model: ConditionalSimilarityNet, num_samples: int) -> dict[str, float]:
    """Multiply-adds x 2 of one forward pass on a (1, num_samples) waveform, by stage.

    Counts the matmul-like work (FFT as 2.5 N log2 N per real frame, mel filterbank, convolutions,
    linear layers); element-wise operations are left out.
    """
    fe = model.frontend
    frames = fe.num_frames(num_samples)
    n_freq = fe.n_fft // 2 + 1
    out = {
        "fft": frames * 2.5 * fe.n_fft * math.log2(fe.n_fft),
        "mel": 2.0 * frames * n_freq * fe.n_mels,
    }
    if fe.bands is not None:  # banded product: only the bins each group of bands covers
        out["mel"] = 2.0 * frames * sum((hi - lo) * (m1 - m0) for m0, m1, lo, hi in fe.bands)
    conv = 0.0
    h, w = fe.n_mels, frames
    for layer in model.encoder.blocks:
        if isinstance(layer, nn.Conv2d):
            (k, _), (s, _) = layer.kernel_size, layer.stride
            h, w = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
            conv += 2.0 * h * w * layer.out_channels * layer.in_channels * k * k
    out["conv"] = conv
    out["fc"] = sum(
        2.0 * x.in_features * x.out_features
        for x in model.encoder.fc.modules()
        if isinstance(x, nn.Linear)
    )
    out["total"] = sum(out.values())
    return out
