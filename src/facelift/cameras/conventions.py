"""The one place where facelift's coordinate conventions are defined.

World frame (the reference release's): right-handed, **z up**, the subject at the origin facing **-y**.
The subject's right-hand side is therefore -x. Distances are in the reference's units (orbit radius 2.7).

Camera frame: **OpenCV** (x right, y down, z forward, looking along +z). ``c2w`` maps camera-frame
points to the world, ``w2c`` is its inverse; both are ``[..., 4, 4]`` homogeneous matrices.
Intrinsics ``K`` are ``[..., 3, 3]`` in pixels; pixel ``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)``.

Quaternions are **wxyz** (scalar first), not necessarily normalised on input.

Azimuth ``a`` (degrees) turns the camera toward the subject's right: ``a = 0`` is the front camera at
``(0, -r, 0)``, ``a = 90`` the camera at the subject's right ``(-r, 0, 0)``. Elevation ``e`` (degrees) lifts
the camera above the xy-plane (``e > 0`` looks down at the subject).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = [
    "WORLD_UP",
    "azimuth_elevation_to_position",
    "look_at_c2w",
    "opencv_to_opengl_c2w",
    "opengl_to_opencv_c2w",
    "quat_multiply",
    "quat_to_rotmat",
    "rotmat_to_quat",
    "normalize_quat",
    "invert_rigid",
]

WORLD_UP = (0.0, 0.0, 1.0)
"""World up axis of the reference frame (z up)."""

# OpenCV (x right, y down, z forward) <-> OpenGL/Blender (x right, y up, z backward) camera axes.
_CV_GL_FLIP = (1.0, -1.0, -1.0)


def azimuth_elevation_to_position(
    azimuth_deg: Float[Tensor, "*batch"],
    elevation_deg: Float[Tensor, "*batch"],
    radius: Float[Tensor, "*batch"] | float,
) -> Float[Tensor, "*batch 3"]:
    """Camera centre in the world frame for an orbit around the origin.

    Args:
        azimuth_deg: ``[...]`` azimuth in degrees, 0 = front ``(0, -r, 0)``, increasing toward the subject's
            right (-x).
        elevation_deg: ``[...]`` elevation in degrees above the xy-plane.
        radius: ``[...]`` or scalar distance from the origin.

    Returns:
        ``[..., 3]`` positions.

    Example:
        >>> azimuth_elevation_to_position(torch.tensor(90.0), torch.tensor(0.0), 2.7)
        tensor([-2.7000e+00,  1.1802e-07,  0.0000e+00])
    """
    a = torch.deg2rad(azimuth_deg)
    e = torch.deg2rad(elevation_deg)
    x = -torch.sin(a) * torch.cos(e)
    y = -torch.cos(a) * torch.cos(e)
    z = torch.sin(e).expand_as(x)
    return torch.stack([x, y, z], dim=-1) * torch.as_tensor(radius, dtype=x.dtype, device=x.device)[..., None]


def look_at_c2w(
    position: Float[Tensor, "*batch 3"],
    target: Float[Tensor, "*batch 3"] | None = None,
    up: Float[Tensor, "*batch 3"] | None = None,
) -> Float[Tensor, "*batch 4 4"]:
    """OpenCV camera-to-world matrix of a camera at ``position`` looking at ``target``.

    The camera's +z axis points at the target, +x is ``forward x up`` (screen right) and +y completes the
    right-handed frame (screen down). Degenerate when looking straight along ``up``; callers keep
    elevations within (-90, 90).

    Args:
        position: ``[..., 3]`` camera centres in the world frame.
        target: ``[..., 3]`` points to look at; the origin by default.
        up: ``[..., 3]`` world up; ``WORLD_UP`` (z) by default.

    Returns:
        ``[..., 4, 4]`` c2w.

    Example:
        >>> look_at_c2w(torch.tensor([0.0, -2.7, 0.0]))[:3, 2]  # looks along +y
        tensor([0., 1., 0.])
    """
    if position.shape[-1] != 3:
        raise ValueError(f"position must be [..., 3], got {tuple(position.shape)}")
    if target is None:
        target = torch.zeros_like(position)
    if up is None:
        up = position.new_tensor(WORLD_UP).expand_as(position)
    forward = torch.nn.functional.normalize(target - position, dim=-1)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up.expand_as(forward)), dim=-1)
    down = torch.linalg.cross(forward, right)
    c2w = torch.zeros(*position.shape[:-1], 4, 4, dtype=position.dtype, device=position.device)
    c2w[..., :3, 0] = right
    c2w[..., :3, 1] = down
    c2w[..., :3, 2] = forward
    c2w[..., :3, 3] = position
    c2w[..., 3, 3] = 1.0
    return c2w


def invert_rigid(m: Float[Tensor, "*batch 4 4"]) -> Float[Tensor, "*batch 4 4"]:
    """Inverse of a rigid (rotation + translation) 4x4 transform, exact up to rounding.

    Args:
        m: ``[..., 4, 4]`` with an orthonormal upper-left block.

    Returns:
        ``[..., 4, 4]`` inverse, ``R^T`` and ``-R^T t``.
    """
    rot_t = m[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(m)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -(rot_t @ m[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def opencv_to_opengl_c2w(c2w: Float[Tensor, "*batch 4 4"]) -> Float[Tensor, "*batch 4 4"]:
    """Convert an OpenCV c2w (y down, z forward) to OpenGL/Blender (y up, z backward)."""
    flip = c2w.new_tensor(_CV_GL_FLIP + (1.0,))
    return c2w * flip  # scales columns 0..3 of the rotation part


def opengl_to_opencv_c2w(c2w: Float[Tensor, "*batch 4 4"]) -> Float[Tensor, "*batch 4 4"]:
    """Convert an OpenGL/Blender c2w to OpenCV (the flip is its own inverse)."""
    return opencv_to_opengl_c2w(c2w)


def normalize_quat(q: Float[Tensor, "*batch 4"], eps: float = 1e-12) -> Float[Tensor, "*batch 4"]:
    """Unit wxyz quaternion (zero quaternions become identity-free NaN-safe zeros / eps)."""
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


def quat_to_rotmat(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrix of a wxyz quaternion; the quaternion is normalised first.

    Args:
        q: ``[..., 4]`` wxyz.

    Returns:
        ``[..., 3, 3]`` orthonormal matrices with determinant +1.

    Example:
        >>> quat_to_rotmat(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        tensor([[1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 1.]])
    """
    if q.shape[-1] != 4:
        raise ValueError(f"quaternions must be [..., 4] (wxyz), got {tuple(q.shape)}")
    w, x, y, z = normalize_quat(q).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(r: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 4"]:
    """Unit wxyz quaternion with w >= 0 of a rotation matrix (numerically stable branch selection).

    Args:
        r: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 4]`` wxyz, canonicalised to ``w >= 0``.
    """
    if r.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must be [..., 3, 3], got {tuple(r.shape)}")
    m = r
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate quaternions (Shepperd's method); pick the one with the largest denominator.
    cands = torch.stack(
        [
            torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # [..., 4 candidates, 4]
    diag = torch.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1, keepdim=True)[..., None].expand(*diag.shape[:-1], 1, 4)
    q = torch.gather(cands, -2, best)[..., 0, :]
    q = normalize_quat(q)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(q1: Float[Tensor, "*batch 4"], q2: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """Hamilton product ``q1 * q2`` of wxyz quaternions (rotation ``q2`` first, then ``q1``)."""
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        dim=-1,
    )


def fov_to_focal(fov_deg: float, size_px: float) -> float:
    """Focal length in pixels of a pinhole camera with field of view ``fov_deg`` across ``size_px`` pixels."""
    return 0.5 * size_px / math.tan(math.radians(fov_deg) / 2)
