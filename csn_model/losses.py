"""Losses of the CSN (METHOD.md, Training): masked triplet, interchanged triplets, auxiliary loss
towards frozen individual-network teachers, pre-training on isolated stems.

All take embeddings (B, D) and masks (K, D); they are plain functions, tested on hand-made tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12  # inside the square root: finite gradient when two embeddings coincide


def masked_distance(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """d(x, y; m) = || m * (x - y) ||_2 for (B, D) embeddings and a (D,) or (B, D) mask -> (B,)."""
    diff = mask * (x - y)  # (B, D)
    return torch.sqrt(diff.square().sum(dim=-1) + EPS)  # (B,)


def triplet_loss(
    a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, mask: torch.Tensor, margin: float
) -> torch.Tensor:
    """Per-triplet max(d(a, p; m) - d(a, n; m) + margin, 0) -> (B,)."""
    return F.relu(masked_distance(a, p, mask) - masked_distance(a, n, mask) + margin)  # (B,)


def masked_triplet_loss(
    a: torch.Tensor,
    p: torch.Tensor,
    n: torch.Tensor,
    condition: torch.Tensor,
    masks: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """Mean masked triplet loss; condition (B,) long indexes masks (K, D)."""
    return triplet_loss(a, p, n, masks[condition], margin).mean()  # masks[condition]: (B, D)


def interchanged_loss(
    a: torch.Tensor,
    p: torch.Tensor,
    n: torch.Tensor,
    interchanged: torch.Tensor,
    masks: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """Mean loss of the interchanged triplets (a, n, p) under every condition k where
    interchanged[b, k] is True (a and n share that stem, p does not); 0 when there are none."""
    b_idx, k_idx = interchanged.nonzero(as_tuple=True)  # (M,), (M,)
    if b_idx.numel() == 0:
        return a.sum() * 0.0  # keeps the graph (and AMP's scaler) happy
    return triplet_loss(a[b_idx], n[b_idx], p[b_idx], masks[k_idx], margin).mean()


def aux_loss(
    emb: torch.Tensor, targets: torch.Tensor, present: torch.Tensor | None = None
) -> torch.Tensor:
    """MSE between each subspace of the CSN's embedding and the teacher's embedding of that stem.

    emb (B, D) with fixed blocks, targets (B, K, D/K) from the frozen individual networks on the
    clean stems; present (B, K) bool: where a stem is absent its target is zero (our [choice],
    the journal version's zero target for absent instruments).
    """
    b, k, sub = targets.shape
    pred = emb.view(b, k, sub)  # (B, K, D/K)
    if present is not None:
        targets = targets * present.unsqueeze(-1).to(targets.dtype)  # (B, K, D/K)
    return F.mse_loss(pred, targets)


def pretrain_loss(
    emb: torch.Tensor, target: torch.Tensor, condition: torch.Tensor, zero_others: bool = True
) -> torch.Tensor:
    """Pre-training on an isolated stem of condition c: subspace c -> the teacher's embedding of
    the stem (target (B, D/K)), every other subspace -> zero ([choice]; with zero_others False
    only subspace c is pulled). emb (B, D), condition (B,) long."""
    b, d = emb.shape
    k = d // target.shape[1]
    if not zero_others:
        own = emb.view(b, k, -1)[torch.arange(b, device=emb.device), condition]  # (B, D/K)
        return F.mse_loss(own, target.to(emb.dtype))
    full = torch.zeros(b, k, target.shape[1], dtype=emb.dtype, device=emb.device)  # (B, K, D/K)
    full[torch.arange(b, device=emb.device), condition] = target.to(emb.dtype)
    return F.mse_loss(emb.view(b, k, -1), full)


def mask_l1(masks: torch.Tensor) -> torch.Tensor:
    """Veit et al.'s sparsity penalty on learned masks (K, D): mean absolute value."""
    return masks.abs().mean()


def embedding_norm(*embs: torch.Tensor) -> torch.Tensor:
    """Mean L2 norm of the embeddings (Veit et al.'s embedding penalty: keeps the scale finite)."""
    return torch.cat([e.norm(dim=-1) for e in embs]).mean()
