"""Transformer building blocks of GS-LRM: bias-free pre-LayerNorm self-attention blocks.

Attribute names follow the reference state dict (``attn.to_qkv``, ``attn.fc``, ``mlp.mlp.0``,
``mlp.mlp.2``, ``norm1``, ``norm2``) so that its weights load without renaming.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["Attention", "Mlp", "Block", "bias_free_layer_norm"]


def bias_free_layer_norm(
    width: int,
    eps: float = 1e-5,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.LayerNorm:
    """``nn.LayerNorm`` with a weight and no bias (the reference has no biases anywhere)."""
    return nn.LayerNorm(width, eps=eps, bias=False, device=device, dtype=dtype)


class Attention(nn.Module):
    """Multi-head self-attention without biases.

    ``to_qkv`` stacks the q, k and v projections in that order along its output axis; within each, head
    ``h`` owns channels ``h * head_dim : (h + 1) * head_dim``.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide width ({width})")
        dd = {"device": device, "dtype": dtype}
        self.heads = heads
        self.to_qkv = nn.Linear(width, 3 * width, bias=False, **dd)
        self.fc = nn.Linear(width, width, bias=False, **dd)

    def forward(self, x: Float[Tensor, "B N D"]) -> Float[Tensor, "B N D"]:
        qkv = self.to_qkv(x)  # [B, N, 3 D]
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.heads)  # [B, h, N, d] each
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v, [B, h, N, d]
        return self.fc(rearrange(out, "b h n d -> b n (h d)"))


class Mlp(nn.Module):
    """``Linear -> activation -> Linear``, no biases; ``mlp`` is a Sequential so keys read ``mlp.0``/``mlp.2``."""

    def __init__(
        self,
        width: int,
        hidden: int,
        *,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden, bias=False, **dd),
            act_layer(),
            nn.Linear(hidden, width, bias=False, **dd),
        )

    def forward(self, x: Float[Tensor, "B N D"]) -> Float[Tensor, "B N D"]:
        return self.mlp(x)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Args:
        width: token width ``D``.
        heads: attention heads.
        mlp_hidden: MLP hidden size.
        eps: LayerNorm epsilon.
        norm_layer: ``norm_layer(width, eps, device=, dtype=)`` builds a norm (bias-free LayerNorm).
        act_layer: MLP activation (exact, erf-based GELU).
        device, dtype: factory kwargs of the parameters.

    Example:
        >>> Block(16, 2, 64)(torch.zeros(1, 5, 16)).shape
        torch.Size([1, 5, 16])
    """

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_hidden: int,
        eps: float = 1e-5,
        *,
        norm_layer: Callable[..., nn.Module] = bias_free_layer_norm,
        act_layer: Callable[[], nn.Module] = partial(nn.GELU, approximate="none"),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.norm1 = norm_layer(width, eps, **dd)
        self.attn = Attention(width, heads, **dd)
        self.norm2 = norm_layer(width, eps, **dd)
        self.mlp = Mlp(width, mlp_hidden, act_layer=act_layer, **dd)

    def forward(self, x: Float[Tensor, "B N D"]) -> Float[Tensor, "B N D"]:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
