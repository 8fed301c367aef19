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
from facelift.cameras.io import read_opencv_cameras, write_opencv_cameras
from facelift.cameras.orbits import (
    FACELIFT_VIEW_AZIMUTHS,
    FACELIFT_VIEW_NAMES,
    REFERENCE_FOCAL,
    REFERENCE_FOV_DEG,
    REFERENCE_RADIUS,
    REFERENCE_RESOLUTION,
    facelift_views,
    orbit_cameras,
    random_cameras,
    reference_ring_cameras,
    turntable_cameras,
)
from facelift.cameras.rays import (
    camera_rays,
    gslrm_ray_encoding,
    pixel_grid,
    pixel_rays,
    plucker_rays,
    ray_closest_points,
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
    "read_opencv_cameras",
    "write_opencv_cameras",
    "FACELIFT_VIEW_AZIMUTHS",
    "FACELIFT_VIEW_NAMES",
    "REFERENCE_FOCAL",
    "REFERENCE_FOV_DEG",
    "REFERENCE_RADIUS",
    "REFERENCE_RESOLUTION",
    "facelift_views",
    "orbit_cameras",
    "random_cameras",
    "reference_ring_cameras",
    "turntable_cameras",
    "camera_rays",
    "gslrm_ray_encoding",
    "pixel_grid",
    "pixel_rays",
    "plucker_rays",
    "ray_closest_points",
]
