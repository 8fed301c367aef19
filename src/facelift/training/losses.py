"""Image losses for the reconstructor: SSIM, MSE + (1 - SSIM), and an optional VGG19 perceptual term.

The official GS-LRM loss is ``1.0 * MSE + 0.5 * VGG19 perceptual``. VGG19 weights cannot be fetched
offline, so the default perceptual term here is the structural one, ``1 - SSIM``; pass a
:class:`VGGPerceptualLoss` built from a local weights file to get the official loss.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from facelift.models.backbones import load_state_dict_file, vgg_features

__all__ = ["ReconstructionLoss", "VGGPerceptualLoss", "reconstruction_loss", "ssim"]


def _gaussian_window(size: int, sigma: float, *, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()  # [size]


def ssim(
    a: Float[Tensor, "*batch C H W"],
    b: Float[Tensor, "*batch C H W"],
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> Tensor:
    """Structural similarity (Wang et al. 2004, eq. 13) with a Gaussian window, averaged over valid pixels.

    Local statistics use an ``window_size`` x ``window_size`` Gaussian (sigma 1.5) without padding, the
    population (not sample) covariance, ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2``; this matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=L)`` per channel. Images smaller than the window use a window as large as the image (odd).

    Args:
        a, b: ``[..., C, H, W]`` images of equal shape.
        window_size: odd window side.
        sigma: Gaussian standard deviation in pixels.
        data_range: dynamic range ``L`` (1 for images in [0, 1]).
        k1, k2: stabilising constants.
        reduction: ``mean`` (a scalar) or ``none`` (one value per image, ``[...]``).

    Returns:
        SSIM in ``[-1, 1]`` (1 for identical images).

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> float(ssim(x, x))
        1.0
    """
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"a and b must be [..., C, H, W] of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd integer, got {window_size}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    *batch, c, h, w = a.shape
    size = min(window_size, h - (h + 1) % 2, w - (w + 1) % 2)
    dtype = torch.promote_types(a.dtype, torch.float32)
    x = a.reshape(-1, c, h, w).to(dtype)
    y = b.reshape(-1, c, h, w).to(dtype)
    g = _gaussian_window(size, sigma, device=a.device, dtype=dtype)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size)  # depthwise [C, 1, k, k]

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    per_image = ssim_map.flatten(1).mean(1).reshape(batch)
    return per_image.mean() if reduction == "mean" else per_image


@dataclass(frozen=True)
class ReconstructionLoss:
    """Terms of :func:`reconstruction_loss` (scalars; ``total`` carries the gradient)."""

    total: Tensor
    """``mse + perceptual_weight * perceptual``."""
    mse: Tensor
    """Mean squared error."""
    perceptual: Tensor
    """``1 - SSIM``, or the perceptual network's distance when one is given."""


def chroma_of(images: Float[Tensor, "*B 3 H W"]) -> Float[Tensor, "*B 3 H W"]:
    """Colour without brightness: each pixel minus the mean of its three channels (zero for grey pixels)."""
    return images - images.mean(dim=-3, keepdim=True)


def reconstruction_loss(
    pred: Float[Tensor, "*batch 3 H W"],
    target: Float[Tensor, "*batch 3 H W"],
    perceptual_weight: float = 0.5,
    *,
    perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> ReconstructionLoss:
    """Rendering loss: ``MSE + perceptual_weight * (1 - SSIM)`` (or a given perceptual distance).

    Args:
        pred, target: ``[..., 3, H, W]`` images in [0, 1].
        perceptual_weight: weight of the second term (0 skips it).
        perceptual: ``f(pred [M, 3, H, W], target [M, 3, H, W]) -> scalar`` used instead of ``1 - SSIM``
            (e.g. :class:`VGGPerceptualLoss` for the official loss).

    Returns:
        :class:`ReconstructionLoss`.

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> float(reconstruction_loss(x, x).total)
        0.0
    """
    if pred.shape != target.shape or pred.ndim < 3 or pred.shape[-3] != 3:
        raise ValueError(f"pred and target must be [..., 3, H, W] of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if perceptual_weight < 0:
        raise ValueError(f"perceptual_weight must be >= 0, got {perceptual_weight!r}")
    pred = pred.float()
    target = target.float()
    mse = F.mse_loss(pred, target)
    if perceptual_weight == 0:
        term = mse.new_zeros(())
    elif perceptual is None:
        term = 1.0 - ssim(pred, target)
    else:
        h, w = pred.shape[-2:]
        term = perceptual(pred.reshape(-1, 3, h, w), target.reshape(-1, 3, h, w))
    return ReconstructionLoss(mse + perceptual_weight * term, mse.detach(), term.detach())


# torchvision's vgg19().features indices of relu1_2, relu2_2, relu3_4, relu4_4, relu5_4.
_VGG_TAPS = (3, 8, 17, 26, 35)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGPerceptualLoss(nn.Module):
    """Frozen VGG19 feature distance: mean L1 over relu1_2 .. relu5_4 features (ImageNet-normalised input).

    Needs a local weights file (a torchvision ``vgg19`` state dict, e.g. ``vgg19-dcbb9e9d.pth``, or just
    its ``features.*`` part); nothing is downloaded and torchvision is not needed.

    Args:
        weights_path: the state-dict file (``features.*`` keys; ``classifier.*`` keys are ignored).
        device: where the network lives.

    Raises:
        FileNotFoundError: no such file.
        ValueError: it is not a VGG19 state dict.

    Example:
        >>> loss = VGGPerceptualLoss("weights/vgg19-dcbb9e9d.pth")  # doctest: +SKIP
    """

    def __init__(self, weights_path: str | os.PathLike, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        features = vgg_features(19)[: _VGG_TAPS[-1] + 1]
        load_state_dict_file(features, weights_path, what="VGG19 (torchvision layout)", prefix="features.")
        self.features = features.to(device).eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        super().train(mode)
        self.features.eval()  # always frozen
        return self

    def forward(self, pred: Float[Tensor, "M 3 H W"], target: Float[Tensor, "M 3 H W"]) -> Tensor:
        """Mean L1 feature distance summed over the five taps (inputs in [0, 1])."""
        x = (torch.cat([pred, target]) - self.mean) / self.std
        total = x.new_zeros(())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG_TAPS:
                fp, ft = x.chunk(2)
                total = total + (fp - ft).abs().mean()
        return total
