"""Optimiser, learning-rate schedule and the clip-or-skip step guard shared by the trainers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["StepGuard", "build_adamw", "clip_and_check", "warmup_cosine", "warmup_cosine_factor"]


def build_adamw(
    model: nn.Module,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.95),
    weight_decay: float = 0.05,
    **kwargs,
) -> torch.optim.AdamW:
    """AdamW with weight decay only on parameters with ``ndim >= 2`` (matrices, embeddings).

    Biases, LayerNorm gains and other 1-D parameters go to a second group with ``weight_decay=0``, as in
    GS-LRM. Frozen parameters (``requires_grad=False``) are left out.

    Args:
        model: the module to optimise.
        lr: peak learning rate.
        betas: Adam betas (GS-LRM uses ``(0.9, 0.95)``).
        weight_decay: decoupled weight decay of the ``ndim >= 2`` group.
        **kwargs: passed to :class:`torch.optim.AdamW` (``eps``, ``fused``, ...).

    Returns:
        The optimiser; group 0 decays, group 1 does not.

    Example:
        >>> opt = build_adamw(nn.Linear(4, 2), lr=1e-3)
        >>> [len(g["params"]) for g in opt.param_groups], [g["weight_decay"] for g in opt.param_groups]
        ([1, 1], [0.05, 0.0])
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **kwargs)


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to the peak, then a cosine decay to ``min_lr_ratio`` x peak at ``total_steps``.

    The factor at step ``s`` is ``(s + 1) / warmup_steps`` for ``s < warmup_steps`` (so the first update
    already moves), then ``r + (1 - r) * 0.5 * (1 + cos(pi * t))`` with
    ``t = (s - warmup_steps) / (total_steps - warmup_steps)`` clamped to ``[0, 1]``.

    Example:
        >>> opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = warmup_cosine(opt, warmup_steps=2, total_steps=4)
        >>> [round(sched.lr_lambdas[0](s), 3) for s in range(5)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine_factor(warmup_steps, total_steps, min_lr_ratio))


def warmup_cosine_factor(warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> Callable[[int], float]:
    """The learning-rate factor of :func:`warmup_cosine` as a function of the step (no scheduler attached)."""
    if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps}, {total_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(total_steps - warmup_steps, 1)
        t = min(max((step - warmup_steps) / span, 0.0), 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


@dataclass(frozen=True)
class StepGuard:
    """Result of :func:`clip_and_check`."""

    grad_norm: float
    """Total gradient norm before clipping (``inf``/``nan`` when non-finite)."""
    skipped: bool
    """True when the step must be skipped (the gradients were zeroed)."""

    def __iter__(self):  # allows ``grad_norm, skipped = clip_and_check(...)``
        return iter((self.grad_norm, self.skipped))


def clip_and_check(
    model: nn.Module,
    max_norm: float = 1.0,
    skip_factor: float = 20.0,
    loss: torch.Tensor | float | None = None,
) -> StepGuard:
    """Clip the gradients to ``max_norm``, or flag the step for skipping (GS-LRM's guard).

    A step is skipped when ``loss`` (if given) or the total gradient norm is non-finite, or when the norm
    exceeds ``skip_factor * max_norm``; the gradients are then zeroed (set to ``None``) so the caller must
    not call ``optimizer.step()``. Under DDP the gradients are already all-reduced, so every rank decides
    the same.

    Args:
        model: module whose ``.grad`` are checked.
        max_norm: clip threshold of the total L2 norm.
        skip_factor: skip above ``skip_factor * max_norm``.
        loss: the step's loss (a NaN loss skips even if the gradients look finite).

    Returns:
        :class:`StepGuard` ``(grad_norm, skipped)``.

    Example:
        >>> layer = nn.Linear(2, 1); layer(torch.ones(1, 2)).sum().backward()
        >>> clip_and_check(layer).skipped
        False
    """
    if not max_norm > 0 or not skip_factor >= 1:
        raise ValueError(f"need max_norm > 0 and skip_factor >= 1, got {max_norm!r}, {skip_factor!r}")
    params = [p for p in model.parameters() if p.grad is not None]
    loss_ok = True
    if loss is not None:
        loss_ok = bool(torch.isfinite(torch.as_tensor(loss)).all())
    if params:
        # error_if_nonfinite=False: a non-finite norm is reported and handled below, not raised.
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm, error_if_nonfinite=False))
    else:
        norm = 0.0
    skipped = not loss_ok or not math.isfinite(norm) or norm > skip_factor * max_norm
    if skipped:
        model.zero_grad(set_to_none=True)
    return StepGuard(norm, skipped)
