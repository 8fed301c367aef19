"""Image metrics that need no weights: PSNR and SSIM, per image, optionally inside a mask.

Every metric takes ``[N, 3, H, W]`` images in [0, 1] and returns ``[N]`` values, so callers can average
over views and subjects in whatever order their protocol says (facelift averages per-view values).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from facelift.training.losses import ssim as _ssim

__all__ = ["composite", "psnr", "ssim"]


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"pred and target must be [N, C, H, W] of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def composite(rgba: Float[Tensor, "N 4 H W"], background: float = 1.0) -> Float[Tensor, "N 3 H W"]:
    """Straight-alpha RGBA over a constant background (white by default).

    Example:
        >>> composite(torch.zeros(1, 4, 2, 2))[0, :, 0, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    if rgba.ndim != 4 or rgba.shape[1] != 4:
        raise ValueError(f"rgba must be [N, 4, H, W], got {tuple(rgba.shape)}")
    alpha = rgba[:, 3:]
    return rgba[:, :3] * alpha + background * (1 - alpha)


def psnr(
    pred: Float[Tensor, "N C H W"],
    target: Float[Tensor, "N C H W"],
    *,
    mask: Float[Tensor, "N 1 H W"] | None = None,
    data_range: float = 1.0,
    max_db: float = 100.0,
) -> Float[Tensor, "N"]:
    """Peak signal-to-noise ratio per image, ``10 log10(L^2 / MSE)``, in dB.

    Args:
        pred, target: ``[N, C, H, W]``; ``pred`` is clamped to ``[0, data_range]`` first (a render's
            overshoot is not the metric's business).
        mask: ``[N, 1, H, W]`` weights in [0, 1]: the MSE is averaged over the masked pixels only
            (an empty mask gives NaN).
        data_range: ``L``.
        max_db: value for identical images (instead of infinity).

    Returns:
        ``[N]`` PSNR.

    Example:
        >>> x = torch.full((1, 3, 8, 8), 0.5)
        >>> round(float(psnr(x + 0.1, x)[0]), 4)  # MSE 0.01 -> 20 dB
        20.0
    """
    _check_pair(pred, target)
    err = (pred.float().clamp(0, data_range) - target.float()).square()  # [N, C, H, W]
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        if mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
            raise ValueError(f"mask must be [N, 1, H, W] = {(pred.shape[0], 1, *pred.shape[2:])}, got {tuple(mask.shape)}")
        w = mask.float().expand_as(err)
        mse = (err * w).flatten(1).sum(1) / w.flatten(1).sum(1)
    out = 10 * torch.log10(data_range**2 / mse)
    return torch.where(mse > 0, out, torch.full_like(out, max_db)).clamp(max=max_db)


def ssim(pred: Float[Tensor, "N C H W"], target: Float[Tensor, "N C H W"], *, data_range: float = 1.0) -> Float[Tensor, "N"]:
    """Structural similarity per image: 11 x 11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, averaged over
    channels and valid (unpadded) pixels; equals scikit-image's ``structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, channel_axis=0)``.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ssim(x, x).tolist()
        [1.0, 1.0]
    """
    _check_pair(pred, target)
    return _ssim(pred.float().clamp(0, data_range), target.float(), data_range=data_range, reduction="none")
