"""Multi-view self-attention as a diffusers attention processor (no new parameters).

The UNet sees the views of a subject as consecutive rows of its batch (``row = subject * V + view``). Its
self-attention layers (``attn1``) normally attend within one row; this processor regroups the rows so the
tokens of one subject's views attend to each other:

- ``dense``: every view attends to the tokens of all ``V`` views (``[B V, L, C] -> [B, V L, C]``);
- ``sparse`` (the reference default): each view attends to its own tokens plus those of view 0 (the
  input/front view); view 0 attends to itself (its keys appear twice, which leaves softmax attention
  unchanged: each weight is halved and each value counted twice);
- ``off``: per view, the plain single-image attention (the ablation).

Cross-attention (``attn2``, to the per-view text/view embeddings) stays per row. The processor reads the
layer's own projections (``to_q``, ``to_k``, ``to_v``, ``to_out``), so a UNet keeps its exact key names.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ATTENTION_MODES", "AttentionMode", "MultiViewAttnProcessor", "set_multiview_attention"]

AttentionMode = Literal["sparse", "dense", "off"]
ATTENTION_MODES: tuple[str, ...] = ("sparse", "dense", "off")


def _with_front(x: Tensor, views: int) -> Tensor:
    """Append view 0's tokens to every view's: ``[B V, heads, L, d] -> [B V, heads, 2 L, d]``."""
    n, h, length, d = x.shape
    front = x.view(n // views, views, h, length, d)[:, :1].expand(-1, views, -1, -1, -1).reshape(n, h, length, d)
    return torch.cat([x, front], dim=2)


class MultiViewAttnProcessor:
    """Attention processor grouping a subject's views in self-attention (see the module docstring).

    Args:
        mode: ``sparse``, ``dense`` or ``off``. Cross-attention layers should get ``off``.

    The number of views comes with each call, through the UNet's ``cross_attention_kwargs={"num_views": V}``
    (1 or absent: per row). Rows must be grouped subject by subject.

    Example:
        >>> unet.set_attn_processor(MultiViewAttnProcessor("dense"))  # doctest: +SKIP
        >>> unet(x, t, ctx, cross_attention_kwargs={"num_views": 6})  # doctest: +SKIP
    """

    def __init__(self, mode: AttentionMode = "sparse") -> None:
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
        self.mode = mode

    def __call__(
        self,
        attn,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        num_views: int = 1,
        **kwargs,
    ) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        spatial = hidden_states.ndim == 4
        if spatial:
            n, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(n, channels, height * width).transpose(1, 2)
        n, length, _ = hidden_states.shape
        grouped = encoder_hidden_states is None and self.mode != "off" and num_views > 1
        if grouped and n % num_views:
            raise ValueError(f"batch of {n} rows is not a whole number of subjects with {num_views} views each")
        if grouped and attention_mask is not None:
            raise ValueError("multi-view self-attention does not take an attention mask")
        if attention_mask is not None:
            source = length if encoder_hidden_states is None else encoder_hidden_states.shape[1]
            attention_mask = attn.prepare_attention_mask(attention_mask, source, n)
            attention_mask = attention_mask.view(n, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        # [N, L, heads * d] -> [N, heads, L, d]
        query = query.view(n, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(n, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(n, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if grouped and self.mode == "dense":
            b, h = n // num_views, attn.heads

            def join(x: Tensor) -> Tensor:  # [B V, h, L, d] -> [B, h, V L, d]
                return x.view(b, num_views, h, length, head_dim).transpose(1, 2).reshape(b, h, num_views * length, head_dim)

            out = F.scaled_dot_product_attention(join(query), join(key), join(value), dropout_p=0.0, is_causal=False)
            out = out.view(b, h, num_views, length, head_dim).transpose(1, 2).reshape(n, h, length, head_dim)
        else:
            if grouped:  # sparse
                key, value = _with_front(key, num_views), _with_front(value, num_views)
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)

        out = out.transpose(1, 2).reshape(n, -1, attn.heads * head_dim).to(query.dtype)  # [N, L, heads * d]
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)  # dropout
        if spatial:
            out = out.transpose(-1, -2).reshape(n, channels, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def set_multiview_attention(unet, mode: AttentionMode = "sparse") -> None:
    """Install :class:`MultiViewAttnProcessor` in every attention layer of a diffusers UNet.

    Self-attention layers (``...attn1``) get ``mode``; cross-attention layers get ``off``. No parameter is
    added or renamed.

    Args:
        unet: a ``diffusers.UNet2DConditionModel``.
        mode: ``sparse``, ``dense`` or ``off``.
    """
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
    processors = {name: MultiViewAttnProcessor(mode if name.endswith("attn1.processor") else "off") for name in unet.attn_processors}
    unet.set_attn_processor(processors)
