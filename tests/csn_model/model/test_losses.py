"""Losses on hand-made tensors whose values are worked out in the comments."""

from __future__ import annotations

import torch

from csn_model import losses as L

MASKS = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])  # K = 2, D = 4


def test_it_measures_distance_only_inside_the_mask():
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([[3.0, 4.0, 100.0, -7.0]])
    assert torch.allclose(L.masked_distance(x, y, MASKS[0]), torch.tensor([5.0]))  # sqrt(9+16)
    assert torch.allclose(L.masked_distance(x, y, MASKS[1]), torch.tensor([(100**2 + 49) ** 0.5]))


def test_it_computes_the_masked_triplet_loss():
    a = torch.zeros(2, 4)
    p = torch.tensor([[3.0, 4.0, 9.0, 9.0], [0.0, 0.0, 1.0, 0.0]])
    n = torch.tensor([[6.0, 8.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5]])
    cond = torch.tensor([0, 1])
    # row 0, mask 0: d(a,p)=5, d(a,n)=10 -> max(5-10+1, 0) = 0
    # row 1, mask 1: d(a,p)=1, d(a,n)=0.5 -> max(1-0.5+1, 0) = 1.5 ; mean = 0.75
    loss = L.masked_triplet_loss(a, p, n, cond, MASKS, margin=1.0)
    assert torch.allclose(loss, torch.tensor(0.75), atol=1e-6)


def test_it_swaps_positive_and_negative_for_interchanged_conditions():
    a = torch.zeros(2, 4)
    p = torch.tensor([[0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    n = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    inter = torch.tensor([[False, True], [False, False]])  # only row 0 under condition 1
    # (a, n, p) under mask 1: d(a,n)=1, d(a,p)=2 -> max(1-2+0.5, 0) = 0 ; with margin 2: 1
    assert torch.allclose(L.interchanged_loss(a, p, n, inter, MASKS, 0.5), torch.tensor(0.0))
    assert torch.allclose(L.interchanged_loss(a, p, n, inter, MASKS, 2.0), torch.tensor(1.0))
    none = torch.zeros(2, 2, dtype=torch.bool)
    assert L.interchanged_loss(a, p, n, none, MASKS, 2.0).item() == 0.0


def test_it_pulls_subspaces_to_teacher_targets_and_absent_stems_to_zero():
    emb = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # K = 2 subspaces of 2
    targets = torch.tensor([[[1.0, 0.0], [5.0, 5.0]]])  # (1, K, 2)
    # all present: squared errors (0, 4, 4, 1) -> mean 2.25
    assert torch.allclose(L.aux_loss(emb, targets), torch.tensor(2.25))
    # stem 1 absent: target zero there -> (0, 4, 9, 16) -> 7.25
    present = torch.tensor([[True, False]])
    assert torch.allclose(L.aux_loss(emb, targets, present), torch.tensor(7.25))


def test_it_pretrains_own_subspace_to_teacher_and_others_to_zero():
    emb = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[1.0, 1.0], [3.0, 1.0]])  # (B, D/K)
    cond = torch.tensor([0, 1])
    # row 0: target (1,1,0,0) -> errors (0,0,1,1); row 1: (0,0,3,1) -> (1,1,4,0); mean = 8/8
    assert torch.allclose(L.pretrain_loss(emb, target, cond), torch.tensor(1.0))


def test_it_pretrains_only_the_own_subspace_when_the_others_are_not_pulled_to_zero():
    emb = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[1.0, 1.0], [3.0, 1.0]])  # (B, D/K)
    cond = torch.tensor([0, 1])
    # row 0: subspace 0 vs (1,1) -> errors (0,0); row 1: subspace 1 vs (3,1) -> (4,0); mean = 4/4
    loss = L.pretrain_loss(emb, target, cond, zero_others=False)
    assert torch.allclose(loss, torch.tensor(1.0))
    target = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # own subspaces already on target: no loss
    assert L.pretrain_loss(emb, target, cond, zero_others=False).item() == 0.0
    assert L.pretrain_loss(emb, target, cond).item() > 0.0  # the others are still pulled to 0
