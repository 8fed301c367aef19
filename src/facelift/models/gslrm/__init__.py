"""GS-LRM: the feed-forward Gaussian reconstructor (views + cameras -> per-pixel 3D Gaussians)."""

from facelift.models.gslrm.config import GSLRMConfig
from facelift.models.gslrm.inference import reconstruct
from facelift.models.gslrm.layers import Attention, Block, Mlp
from facelift.models.gslrm.model import (
    GSLRM,
    RAW_CHANNELS,
    RAW_LAYOUT,
    decode_gaussians,
    gslrm_pixel_rays,
    output_pixel_indices,
    to_patch_order,
)
from facelift.models.gslrm.weights import check_state_dict, read_official_checkpoint, remap_official_state_dict

__all__ = [
    "GSLRM",
    "GSLRMConfig",
    "RAW_CHANNELS",
    "RAW_LAYOUT",
    "Attention",
    "Block",
    "Mlp",
    "check_state_dict",
    "decode_gaussians",
    "gslrm_pixel_rays",
    "output_pixel_indices",
    "read_official_checkpoint",
    "reconstruct",
    "remap_official_state_dict",
    "to_patch_order",
]
