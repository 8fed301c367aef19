"""Cameras (OpenCV convention), orbits, the reference FaceLift views, rays and ray encodings."""

from facelift.cameras.cameras import Cameras, intrinsics_matrix
from facelift.cameras.conventions import (
    azimuth_elevation_to_position,
    fov_to_focal,
    invert_rigid,
    look_at_c2w,
    quat_multiply,
    quat_to_rotmat,
    rotmat_to_quat,
)

__all__ = [
    "Cameras",
    "intrinsics_matrix",
    "azimuth_elevation_to_position",
    "fov_to_focal",
    "invert_rigid",
    "look_at_c2w",
    "quat_multiply",
    "quat_to_rotmat",
    "rotmat_to_quat",
]
