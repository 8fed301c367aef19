"""Networks: the GS-LRM reconstructor (``gslrm``)."""

from facelift.models.gslrm import (
    GSLRM,
    GSLRMConfig,
    decode_gaussians,
    output_pixel_indices,
    reconstruct,
    remap_official_state_dict,
    to_patch_order,
)

__all__ = [
    "GSLRM",
    "GSLRMConfig",
    "decode_gaussians",
    "output_pixel_indices",
    "reconstruct",
    "remap_official_state_dict",
    "to_patch_order",
]
