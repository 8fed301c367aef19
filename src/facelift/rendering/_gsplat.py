"""gsplat fast path (CUDA only). Parity with ``_reference`` is checked in ``tests/rendering`` (GPU-marked)
and by ``benchmarks/render_parity.py`` on the device machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.gaussians.container import Gaussians

if TYPE_CHECKING:
    from facelift.rendering.rasterize import RasterSettings


def rasterize_gsplat(
    g: Gaussians,
    cams: Cameras,
    width: int,
    height: int,
    background: Tensor,
    sh_degree: int,
    settings: "RasterSettings",
) -> tuple[Tensor, Tensor, Tensor]:
    """Render ``S`` scenes ``[S, N]`` from cameras ``[S, C]`` with gsplat's CUDA rasteriser.

    Returns:
        ``(rgb [S*C, 3, H, W], alpha [S*C, H, W], depth [S*C, H, W])`` like ``_reference.composite``.
    """
    try:
        from gsplat import rasterization
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the gsplat backend needs gsplat: pip install gsplat==1.5.3") from err
    S, C = cams.batch_shape
    sh = g.sh[..., : (sh_degree + 1) ** 2, :]
    # Classic 3DGS rasterisation with the expected-depth channel; packed=False keeps the batch layout.
    out, alpha, _ = rasterization(
        means=g.means,
        quats=g.quats,
        scales=g.scales,
        opacities=g.opacities,
        colors=sh,
        viewmats=cams.w2c,
        Ks=cams.K,
        width=width,
        height=height,
        near_plane=settings.near,
        far_plane=settings.far,
        eps2d=settings.eps2d,
        sh_degree=sh_degree,
        packed=False,
        backgrounds=background,
        render_mode="RGB+ED",
        rasterize_mode="classic",
    )
    # out: [S, C, H, W, 4] = RGB (over background) + expected depth; alpha: [S, C, H, W, 1].
    rgb = out[..., :3].reshape(S * C, height, width, 3).permute(0, 3, 1, 2)
    alpha = alpha[..., 0].reshape(S * C, height, width)
    depth = out[..., 3].reshape(S * C, height, width)
    depth = depth * (alpha > 0)
    return rgb, alpha, depth
