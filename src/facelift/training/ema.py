"""Exponential moving average of a model's trainable parameters (diffusion training keeps one)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["EMA"]


class EMA:
    """Shadow copies of the trainable parameters, updated with a warmed-up decay.

    The decay at update ``n`` is ``min(decay, (1 + n) / (10 + n))`` (the usual warmup, so early averages are
    not dominated by the random initialisation). Shadows are kept in float32 on the model's device.

    Args:
        model: the module whose ``requires_grad`` parameters are averaged.
        decay: the asymptotic decay (e.g. 0.999).

    Example:
        >>> layer = nn.Linear(2, 2); ema = EMA(layer, decay=0.9)
        >>> ema.update(); sorted(ema.state_dict()["shadow"])
        ['bias', 'weight']
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.model, self.decay, self.updates = model, float(decay), 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    def _params(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, p in self.model.named_parameters():
            if name in self.shadow:
                yield name, p

    @torch.no_grad()
    def update(self) -> None:
        """Move the shadows toward the current parameters."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in self._params():
            self.shadow[name].lerp_(p.detach().float(), 1.0 - decay)

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[nn.Module]:
        """Temporarily swap the averaged weights into the model (restored on exit)."""
        saved = {name: p.detach().clone() for name, p in self._params()}
        try:
            for name, p in self._params():
                p.copy_(self.shadow[name].to(p.dtype))
            yield self.model
        finally:
            for name, p in self._params():
                p.copy_(saved[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - set(state["shadow"])), sorted(set(state["shadow"]) - set(self.shadow))
            raise ValueError(f"EMA state does not match the model (missing {missing[:5]}, unexpected {extra[:5]})")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
