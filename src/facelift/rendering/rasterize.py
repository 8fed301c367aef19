"""``rasterize``: one interface, two backends (portable PyTorch reference, gsplat on CUDA)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.gaussians.container import Gaussians
from facelift.rendering import _reference
from facelift.rendering.sh import eval_sh

__all__ = ["RasterSettings", "RenderOutput", "rasterize", "gsplat_available"]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "gsplat"]


@dataclass(frozen=True)
class RasterSettings:
    """Rasteriser settings shared by both backends."""

    eps2d: float = 0.3
    """Low-pass filter added to every projected covariance, in px² (3DGS's 0.3)."""
    near: float = 0.01
    """Gaussians with camera-frame z below this are culled."""
    far: float = 1e10
    """Gaussians with camera-frame z above this are culled."""
    sh_degree: int | None = None
    """SH degree used for colour; None uses all coefficients the Gaussians carry."""


@dataclass
class RenderOutput:
    """Rendered images, channels first.

    Attributes:
        rgb: ``[..., C, 3, H, W]`` colour composited over the background.
        alpha: ``[..., C, 1, H, W]`` accumulated opacity.
        depth: ``[..., C, 1, H, W]`` expected camera-frame depth ``Σ w z / Σ w``, 0 where alpha is 0.
    """

    rgb: Float[Tensor, "*batch C 3 H W"]
    alpha: Float[Tensor, "*batch C 1 H W"]
    depth: Float[Tensor, "*batch C 1 H W"]


def gsplat_available() -> bool:
    """True when gsplat can be imported (it compiles its CUDA kernels on first use)."""
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_backend(backend: Backend, device: torch.device) -> str:
    if backend == "torch":
        return "torch"
    if backend == "gsplat":
        if device.type != "cuda":
            raise ValueError("the gsplat backend needs CUDA tensors; use backend='torch' on CPU")
        if not gsplat_available():
            raise ImportError("the gsplat backend needs gsplat: pip install gsplat==1.5.3")
        return "gsplat"
    if backend != "auto":
        raise ValueError(f"backend must be 'auto', 'torch' or 'gsplat', got {backend!r}")
    return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"


def _colors_per_image(gaussians: Gaussians, cam_pos: Tensor, sh_degree: int) -> Tensor:
    """``[S, C, N, 3]`` view-dependent colours (``[S, 1, N, 3]`` for degree 0), clamped at >= 0."""
    sh = gaussians.sh[..., : (sh_degree + 1) ** 2, :]  # [S, N, K, 3]
    if sh_degree == 0:
        return (0.5 + eval_sh(sh, gaussians.means)[:, None]).clamp_min(0.0)
    dirs = torch.nn.functional.normalize(gaussians.means[:, None] - cam_pos[:, :, None], dim=-1)  # [S, C, N, 3]
    return (0.5 + eval_sh(sh[:, None], dirs)).clamp_min(0.0)


def rasterize(
    gaussians: Gaussians,
    cameras: Cameras,
    width: int | None = None,
    height: int | None = None,
    background: Float[Tensor, "*batch C 3"] | Float[Tensor, "3"] | float | None = 1.0,
    *,
    backend: Backend = "auto",
    settings: RasterSettings = RasterSettings(),
) -> RenderOutput:
    """Render Gaussians from cameras; differentiable with respect to every Gaussian parameter.

    Args:
        gaussians: ``[..., N]`` Gaussians (``...`` = scene batch, may be empty).
        cameras: ``[..., C]`` cameras with the same leading batch shape as the Gaussians
            (cameras ``[C]`` for an unbatched set, ``[B, C]`` for Gaussians ``[B, N]``).
        width, height: output size; ``None`` uses the cameras' size. A different size rescales ``K``.
        background: colour behind the Gaussians, broadcastable to ``[..., C, 3]``; white by default
            (the reference release's background). ``None`` means black.
        backend: ``"torch"`` (portable reference), ``"gsplat"`` (CUDA) or ``"auto"`` (gsplat when the
            tensors are on CUDA and gsplat is installed, else torch).
        settings: :class:`RasterSettings`.

    Returns:
        :class:`RenderOutput` with ``[..., C, ch, H, W]`` images.

    Example:
        >>> from facelift.cameras import orbit_cameras
        >>> g = Gaussians.from_rgb(torch.zeros(1, 3), torch.full((1, 3), 0.1), torch.ones(1), torch.ones(1, 3) * 0.2)
        >>> out = rasterize(g, orbit_cameras(torch.tensor([0.0, 90.0]), torch.zeros(2), width=32))
        >>> out.rgb.shape
        torch.Size([2, 3, 32, 32])
    """
    batch = gaussians.shape[:-1]
    if cameras.batch_shape[:-1] != batch or len(cameras.batch_shape) != len(batch) + 1:
        raise ValueError(
            f"cameras must be [..., C] with the Gaussians' batch shape {tuple(batch)}, "
            f"got cameras {tuple(cameras.batch_shape)} for Gaussians {tuple(gaussians.shape)}"
        )
    if cameras.device != gaussians.device:
        raise ValueError(f"cameras on {cameras.device} but Gaussians on {gaussians.device}")
    width = cameras.width if width is None else int(width)
    height = cameras.height if height is None else int(height)
    if (width, height) != (cameras.width, cameras.height):
        cameras = cameras.resized(width, height)
    degree = gaussians.sh_degree if settings.sh_degree is None else min(settings.sh_degree, gaussians.sh_degree)
    dtype = gaussians.dtype

    num_cams = cameras.batch_shape[-1]
    S = batch.numel()
    if background is None:
        background = 0.0
    bg = torch.as_tensor(background, dtype=dtype, device=gaussians.device)
    bg = bg.expand(*batch, num_cams, 3).reshape(S, num_cams, 3)
    out_shape = (*batch, num_cams)
    if gaussians.num == 0:  # nothing to draw: the background, transparent, at depth 0
        zeros = torch.zeros(*out_shape, 1, height, width, dtype=dtype, device=gaussians.device)
        rgb = bg.reshape(*out_shape, 3, 1, 1).expand(*out_shape, 3, height, width) + 0.0 * gaussians.means.sum()
        return RenderOutput(rgb=rgb, alpha=zeros, depth=zeros.clone())
    g = gaussians.reshape(-1, gaussians.num)  # [S, N]
    cams = cameras.reshape(-1, num_cams).to(dtype=dtype)  # [S, C]

    if _resolve_backend(backend, gaussians.device) == "gsplat":
        from facelift.rendering._gsplat import rasterize_gsplat

        rgb, alpha, depth = rasterize_gsplat(g, cams, width, height, bg, degree, settings)
    else:
        w2c = cams.w2c
        proj = _reference.project_gaussians(
            g.means, g.quats, g.scales, g.opacities, w2c, cams.K, width, height,
            eps2d=settings.eps2d, near=settings.near, far=settings.far,
        )  # fmt: skip
        colors = _colors_per_image(g, cams.positions, degree).expand(S, num_cams, g.num, 3)
        opac = g.opacities[:, None].expand(S, num_cams, g.num)
        rgb, alpha, depth = _reference.composite(
            proj,
            opac.reshape(S * num_cams, -1),
            colors.reshape(S * num_cams, g.num, 3),
            bg.reshape(S * num_cams, 3),
            width,
            height,
        )
    return RenderOutput(
        rgb=rgb.reshape(*out_shape, 3, height, width),
        alpha=alpha.reshape(*out_shape, 1, height, width),
        depth=depth.reshape(*out_shape, 1, height, width),
    )
