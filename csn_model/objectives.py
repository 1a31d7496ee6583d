"""Per-batch objectives of each training phase: batch dict in, named loss terms out.

Batches are the data layer's items collated (csn_model.data.torch_data): triplet batches
{"mix": (B, 3, T), "stems": (B, 3, K, T), "condition": (B,), "interchanged": (B, K)} and stem
batches {"stems": (B, 3, T), "condition": (B,)}. The loss functions themselves are in losses.py.
"""

from __future__ import annotations

import torch

from csn_model import losses as L
from csn_model.config import ExperimentConfig


@torch.no_grad()
def teacher_targets(teachers: list, frontend, stems: torch.Tensor) -> torch.Tensor:
    """Clean stems (N, K, T) -> teachers' embeddings (N, K, D/K), log-mel computed once."""
    n, k, t = stems.shape
    logmel = frontend(stems.reshape(n * k, t))  # (N*K, M, F)
    logmel = logmel.view(n, k, *logmel.shape[1:])  # (N, K, M, F)
    return torch.stack([teachers[i].embed_logmel(logmel[:, i]) for i in range(k)], 1)  # (N, K, D/K)


def csn_losses(model, batch: dict, cfg: ExperimentConfig, teachers: list) -> dict:
    """Loss terms of one CSN step on a batch of triplets."""
    t = cfg.train
    mix = batch["mix"]  # (B, 3, T)
    b = mix.shape[0]
    emb = model(mix.flatten(0, 1)).view(b, 3, -1)  # (B*3, T) -> (B, 3, D)
    a, p, n = emb.unbind(1)  # 3 x (B, D)
    masks = model.masks()  # (K, D)
    out = {"triplet": L.masked_triplet_loss(a, p, n, batch["condition"], masks, t.margin)}
    if t.interchanged:
        out["interchanged"] = L.interchanged_loss(a, p, n, batch["interchanged"], masks, t.margin)
    if t.aux_loss > 0:
        stems = batch["stems"].flatten(0, 1)  # (B*3, K, T)
        present = stems.abs().amax(dim=-1) > t.absent_peak  # (B*3, K); absent: zero target
        targets = teacher_targets(teachers, model.frontend, stems)  # (B*3, K, D/K)
        out["aux"] = t.aux_loss * L.aux_loss(emb.flatten(0, 1), targets.float(), present)
    if t.embed_norm > 0:
        out["embed_norm"] = t.embed_norm * L.embedding_norm(emb.flatten(0, 1))
    if model.learned_masks and t.mask_l1 > 0:
        out["mask_l1"] = t.mask_l1 * L.mask_l1(masks)
    return out


def pretrain_losses(model, batch: dict, cfg: ExperimentConfig, teachers: list) -> dict:
    """Isolated stems: own subspace -> the teacher's embedding of the stem, the others -> 0
    (unless train.pretrain_zero_others is false)."""
    x = batch["stems"].flatten(0, 1)  # (B, 3, T) -> (B*3, T)
    cond = batch["condition"].repeat_interleave(3)  # (B*3,)
    with torch.no_grad():
        logmel = model.frontend(x)  # (B*3, M, F)
        target = torch.zeros(x.shape[0], model.sub_dim, device=x.device)  # (B*3, D/K)
        for c in cond.unique().tolist():
            idx = (cond == c).nonzero(as_tuple=True)[0]  # (n_c,)
            target[idx] = teachers[c].embed_logmel(logmel[idx]).float()  # (n_c, D/K)
    emb = model.embed_logmel(logmel)  # (B*3, D)
    return {"pretrain": L.pretrain_loss(emb, target, cond, cfg.train.pretrain_zero_others)}


def individual_losses(model, batch: dict, cfg: ExperimentConfig, teachers: list) -> dict:
    stems = batch["stems"]  # (B, 3, T)
    b = stems.shape[0]
    emb = model(stems.flatten(0, 1)).view(b, 3, -1)  # (B, 3, D/K)
    a, p, n = emb.unbind(1)  # 3 x (B, D/K)
    ones = model.masks()[0]  # (D/K,) all ones: plain Euclidean distance
    out = {"triplet": L.triplet_loss(a, p, n, ones, cfg.train.margin).mean()}
    if cfg.train.embed_norm > 0:
        out["embed_norm"] = cfg.train.embed_norm * L.embedding_norm(emb.flatten(0, 1))
    return out
