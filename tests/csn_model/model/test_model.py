"""Shapes, masks and the FLOP count of the encoder."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from csn_model import CONDITIONS
from csn_model.config import load_config
from csn_model.losses import masked_distance
from csn_model.model import build_model, count_flops, model_args_from_config


def _model(*overrides, system=None, condition=None):
    cfg = load_config(None, list(overrides))
    return build_model(system or cfg.train.system, model_args_from_config(cfg, system, condition))


def test_it_embeds_waveforms_into_d_dims_with_k_disjoint_masks():
    model = _model().eval()
    wave = torch.randn(2, 22050)  # (B, T) one second
    with torch.no_grad():
        emb = model(wave)
    assert emb.shape == (2, 640)
    masks = model.masks()  # (K, D)
    assert masks.shape == (5, 640)
    assert torch.equal(masks.sum(0), torch.ones(640))  # disjoint and covering
    assert torch.equal(masks.sum(1), torch.full((5,), 128.0))
    assert model.subspace(emb, 2).shape == (2, 128)
    assert torch.equal(model.subspaces(emb)[:, 2], model.subspace(emb, 2))


def test_it_ignores_other_subspaces_in_the_masked_distance():
    model = _model()
    x = torch.randn(3, 640)
    y = x.clone()
    y[:, 128:] += 5.0  # change every subspace but drums
    d = masked_distance(x, y, model.masks()[CONDITIONS.index("drums")])
    assert torch.allclose(d, torch.zeros(3), atol=1e-5)


def test_it_builds_an_individual_network_of_one_subspace():
    model = _model(system="individual", condition="guitar").eval()
    assert model.conditions == ("guitar",) and model.embedding_dim == 128
    with torch.no_grad():
        assert model(torch.randn(2, 4096)).shape == (2, 128)
    assert torch.equal(model.masks(), torch.ones(1, 128))


def test_it_learns_non_negative_masks_when_asked():
    model = _model("model.learned_masks=true")
    masks = model.masks()
    assert masks.requires_grad and (masks >= 0).all()
    emb = torch.randn(2, 640)
    assert model.subspace(emb, 0).shape == (2, 640)  # masked full vector


def test_it_counts_flops_per_stage():
    model = _model().eval()
    wave = torch.randn(1, 22050)  # (1, T) one second, as count_flops assumes batch 1
    flops = count_flops(model, wave.shape[1])
    # An independent count: PyTorch's FlopCounterMode over a real forward pass. Both count one
    # multiply-add as 2 FLOPs (count_flops: "Multiply-adds x 2"), so with batch 1 its
    # aten.convolution total is 2 x out_h x out_w x C_out x C_in x k x k summed over the blocks,
    # and its aten.addmm (aten.mm for a bias-free Linear) total is 2 x in x out over the fc layers.
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(wave)
    counts = counter.get_flop_counts()
    conv_ops = counts["Global"]
    fc_ops = counts["ConditionalSimilarityNet.encoder.fc"]
    aten = torch.ops.aten
    assert conv_ops[aten.convolution] > 0
    assert flops["conv"] == conv_ops[aten.convolution]
    assert flops["fc"] == fc_ops.get(aten.addmm, 0) + fc_ops.get(aten.mm, 0) > 0
    # FlopCounterMode does not count FFTs; count_flops states 2.5 N log2 N per real frame of
    # N = n_fft samples. The frames are those the features actually produce (centred frames:
    # 1 + 22050 // 512 = 44), and n_fft = 2048 = 2**11, so log2 N = 11 exactly.
    with torch.no_grad():
        frames = model.frontend(wave).shape[2]  # (1, n_mels, frames)
    assert frames == 44 and model.frontend.n_fft == 2048
    assert flops["fft"] == frames * 2.5 * 2048 * 11  # 2_478_080
    assert 0 < flops["mel"] < 2 * 44 * 1025 * 128  # banded < dense
    assert flops["total"] == flops["fft"] + flops["mel"] + flops["conv"] + flops["fc"]
