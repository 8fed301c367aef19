"""3D Gaussians: the container, pruning, rigid transforms and file formats (PLY, .splat)."""

from facelift.gaussians.container import SH_C0, Gaussians, rgb_to_sh_dc, sh_dc_to_rgb
from facelift.gaussians.io import load_gaussians, load_ply, load_splat, ply_property_names, save_ply, save_splat
from facelift.gaussians.ops import (
    REFERENCE_CROP_BOX,
    PruneSettings,
    average_corresponding,
    covariance,
    reference_prune,
    reference_prune_mask,
    rotate_sh,
    transform,
)

__all__ = [
    "Gaussians",
    "SH_C0",
    "rgb_to_sh_dc",
    "sh_dc_to_rgb",
    "PruneSettings",
    "REFERENCE_CROP_BOX",
    "average_corresponding",
    "covariance",
    "reference_prune",
    "reference_prune_mask",
    "rotate_sh",
    "transform",
    "load_gaussians",
    "load_ply",
    "load_splat",
    "ply_property_names",
    "save_ply",
    "save_splat",
]
