"""3D Gaussians: the container, pruning, rigid transforms and file formats (PLY, .splat)."""

from facelift.gaussians.container import SH_C0, Gaussians, rgb_to_sh_dc, sh_dc_to_rgb

__all__ = ["Gaussians", "SH_C0", "rgb_to_sh_dc", "sh_dc_to_rgb"]
