"""Input degradation for the reconstructor: clean renders made to look like generated views.

In the pipeline the reconstructor gets the diffusion model's views, which are softer than renders, slightly
off in colour and not perfectly consistent with each other; trained only on clean renders it has never seen
such inputs. :func:`degrade_views` applies, per view and at random strengths, a Gaussian blur, a sub-pixel
shift, a colour gain and offset and pixel noise (the supervision targets stay clean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

__all__ = ["InputDegradation", "degrade_views"]


@dataclass(frozen=True)
class InputDegradation:
    """Upper bounds of the random per-view degradations (each drawn uniformly from 0 to its bound)."""

    blur: float = 1.2
    """Gaussian blur standard deviation, in pixels."""
    shift: float = 0.75
    """Translation along each image axis, in pixels (bilinear, edges clamped)."""
    colour: float = 0.05
    """Per-channel gain ``exp(N(0, colour))`` and offset ``N(0, colour / 3)``."""
    noise: float = 0.015
    """Standard deviation of additive Gaussian pixel noise."""

    def __post_init__(self) -> None:
        if min(self.blur, self.shift, self.colour, self.noise) < 0:
            raise ValueError(f"degradation bounds must be >= 0, got {self}")


def _gaussian_blur(images: Float[Tensor, "V 3 H W"], sigma: Float[Tensor, " V"]) -> Float[Tensor, "V 3 H W"]:
    """Separable blur with a per-view sigma (a 0 sigma leaves the view unchanged)."""
    v, c, h, w = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)  # [V, K]
    kernel = kernel / kernel.sum(-1, keepdim=True)
    weight = kernel.repeat_interleave(c, 0)  # [V C, K]: one kernel per view, shared by its channels
    flat = images.reshape(1, v * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), weight[:, None, None, :], groups=v * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), weight[:, None, :, None], groups=v * c)
    return flat.reshape(v, c, h, w)


def degrade_views(
    images: Float[Tensor, "V 3 H W"], generator: torch.Generator, bounds: InputDegradation = InputDegradation()
) -> Float[Tensor, "V 3 H W"]:
    """Randomly blurred, shifted, colour-shifted and noisy copies of views in [0, 1].

    Strengths are drawn per view (uniform in ``[0, bound]``) from ``generator`` (a CPU generator), so a
    sample's degradation is reproducible.

    Args:
        images: ``[V, 3, H, W]`` views in [0, 1].
        generator: CPU random generator.
        bounds: the largest blur, shift, colour change and noise.

    Returns:
        ``[V, 3, H, W]`` in [0, 1], same dtype and device.

    Example:
        >>> out = degrade_views(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(0))
        >>> out.shape
        torch.Size([2, 3, 16, 16])
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [V, 3, H, W], got {tuple(images.shape)}")
    v, _, h, w = images.shape
    dev, dt = images.device, images.dtype

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator).to(dev, dt)

    def normal(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator).to(dev, dt)

    sigma, shift = uniform(v) * bounds.blur, (uniform(v, 2) * 2 - 1) * bounds.shift
    gain, offset = torch.exp(normal(v, 3, 1, 1) * bounds.colour), normal(v, 3, 1, 1) * (bounds.colour / 3)
    noise_std = uniform(v, 1, 1, 1) * bounds.noise
    noise = normal(v, 3, h, w)
    out = images
    if bounds.blur > 0:
        out = _gaussian_blur(out, sigma)
    if bounds.shift > 0:
        theta = torch.zeros(v, 2, 3, dtype=dt, device=dev)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2], theta[:, 1, 2] = shift[:, 0] * 2 / w, shift[:, 1] * 2 / h  # normalised coordinates
        grid = F.affine_grid(theta, list(out.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out * gain + offset + noise * noise_std
    return out.clamp(0, 1)
