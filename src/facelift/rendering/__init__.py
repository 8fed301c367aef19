"""Differentiable Gaussian rasterisation: ``rasterize()`` over a portable PyTorch reference and gsplat."""

from facelift.rendering.rasterize import RasterSettings, RenderOutput, gsplat_available, rasterize
from facelift.rendering.sh import eval_sh

__all__ = ["RasterSettings", "RenderOutput", "rasterize", "gsplat_available", "eval_sh"]
