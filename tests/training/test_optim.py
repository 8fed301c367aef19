"""Optimiser groups, warmup-cosine values and the clip-or-skip guard."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from facelift.models.gslrm import GSLRM, GSLRMConfig
from facelift.training.optim import build_adamw, clip_and_check, warmup_cosine


def test_adamw_decays_only_matrices():
    model = GSLRM(GSLRMConfig.tiny())
    opt = build_adamw(model, lr=1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.95)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert len(no_decay["params"]) > 0  # LayerNorm gains
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in model.parameters()}


def test_adamw_skips_frozen_and_rejects_bad_lr():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    model[0].weight.requires_grad_(False)
    opt = build_adamw(model, lr=1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == 3
    with pytest.raises(ValueError, match="lr"):
        build_adamw(model, lr=0.0)


def test_warmup_cosine_values():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=12, min_lr_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    expected = [2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 4) / 8))) for s in range(4, 13)]
    assert lrs[4:13] == pytest.approx(expected)
    assert lrs[12] == pytest.approx(0.2) and lrs[13] == pytest.approx(0.2)  # stays at the floor


def test_warmup_cosine_without_warmup_starts_at_peak():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=0, total_steps=2)
    assert [sched.lr_lambdas[0](s) for s in range(3)] == pytest.approx([1.0, 0.5, 0.0])
    with pytest.raises(ValueError):
        warmup_cosine(opt, warmup_steps=3, total_steps=2)


def _layer_with_grad(scale: float) -> nn.Linear:
    layer = nn.Linear(4, 4)
    (layer(torch.ones(1, 4)).sum() * scale).backward()
    return layer


def test_clip_and_check_clips_normal_gradients():
    layer = _layer_with_grad(3.0)
    raw = torch.cat([p.grad.flatten() for p in layer.parameters()]).norm()
    grad_norm, skipped = clip_and_check(layer, max_norm=1.0, loss=torch.tensor(0.3))
    assert not skipped and grad_norm == pytest.approx(float(raw))
    clipped = torch.cat([p.grad.flatten() for p in layer.parameters()]).norm()
    assert float(clipped) == pytest.approx(1.0, rel=1e-4)


def test_clip_and_check_skips_nan_loss():
    layer = _layer_with_grad(1.0)
    guard = clip_and_check(layer, loss=torch.tensor(float("nan")))
    assert guard.skipped and all(p.grad is None for p in layer.parameters())


def test_clip_and_check_skips_huge_and_nonfinite_gradients():
    layer = _layer_with_grad(1e4)
    guard = clip_and_check(layer, max_norm=1.0, skip_factor=20.0)
    assert guard.skipped and guard.grad_norm > 20 and all(p.grad is None for p in layer.parameters())
    layer = _layer_with_grad(1.0)
    layer.weight.grad[0, 0] = float("inf")
    guard = clip_and_check(layer)
    assert guard.skipped and not math.isfinite(guard.grad_norm)


def test_skipped_step_leaves_parameters():
    layer = _layer_with_grad(1e4)
    before = [p.detach().clone() for p in layer.parameters()]
    opt = build_adamw(layer, lr=1e-2)
    if not clip_and_check(layer).skipped:
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters()))
