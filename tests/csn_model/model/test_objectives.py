"""Per-batch objectives: which terms a step computes from a batch and the run's config."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from csn_model import CONDITIONS
from csn_model import losses as L
from csn_model.model import build_model, model_args_from_config
from csn_model.objectives import csn_losses, pretrain_losses


class OnesTeacher:
    """A frozen teacher whose embedding of every stem is all ones."""

    def __init__(self, dim: int):
        self.dim = dim

    def embed_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        return torch.ones(logmel.shape[0], self.dim)  # (N, D/K)


@pytest.mark.parametrize(("absent_peak", "quiet_is_present"), [(1e-4, True), (1e-2, False)])
def test_it_counts_a_stem_quieter_than_train_absent_peak_as_absent(
    smoke_cfg, absent_peak, quiet_is_present
):
    cfg = replace(smoke_cfg, train=replace(smoke_cfg.train, aux_loss=1.0, absent_peak=absent_peak))
    torch.manual_seed(0)
    model = build_model("csn", model_args_from_config(cfg))
    k, t = len(CONDITIONS), cfg.features.segment_frames
    stems = 0.5 * torch.rand(1, 3, k, t) - 0.25  # (B, 3, K, T), peaks near 0.25
    stems[:, :, 0] *= 1e-3 / stems[:, :, 0].abs().amax()  # drums: peak 1e-3
    batch = {
        "mix": stems.sum(2),  # (B, 3, T)
        "stems": stems,
        "condition": torch.tensor([1]),
        "interchanged": torch.zeros(1, k, dtype=torch.bool),
    }
    teachers = [OnesTeacher(model.sub_dim) for _ in CONDITIONS]
    aux = csn_losses(model, batch, cfg, teachers)["aux"]
    present = torch.ones(3, k, dtype=torch.bool)  # (B*3, K)
    present[:, 0] = quiet_is_present
    with torch.no_grad():
        emb = model(batch["mix"].flatten(0, 1))  # (B*3, D)
    expected = L.aux_loss(emb, torch.ones(3, k, model.sub_dim), present)
    torch.testing.assert_close(aux.detach(), expected)


@pytest.mark.parametrize("zero_others", [True, False])
def test_it_pretrains_with_the_configured_target_for_the_other_subspaces(smoke_cfg, zero_others):
    cfg = replace(smoke_cfg, train=replace(smoke_cfg.train, pretrain_zero_others=zero_others))
    torch.manual_seed(0)
    model = build_model("csn", model_args_from_config(cfg))
    stems = 0.5 * torch.rand(2, 3, cfg.features.segment_frames) - 0.25  # (B, 3, T)
    batch = {"stems": stems, "condition": torch.tensor([0, 3])}
    teachers = [OnesTeacher(model.sub_dim) for _ in CONDITIONS]
    loss = pretrain_losses(model, batch, cfg, teachers)["pretrain"]
    with torch.no_grad():
        emb = model(stems.flatten(0, 1))  # (B*3, D)
    cond = batch["condition"].repeat_interleave(3)  # (B*3,)
    expected = L.pretrain_loss(emb, torch.ones(6, model.sub_dim), cond, zero_others=zero_others)
    torch.testing.assert_close(loss.detach(), expected)
