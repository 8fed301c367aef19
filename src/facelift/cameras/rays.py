"""Per-pixel camera rays and the ray encodings fed to the reconstructor.

Pixel ``(u, v)`` (column, row) has its centre at ``(u + 0.5, v + 0.5)``. A ray's camera-frame direction is
``normalize(((x - cx) / fx, (y - cy) / fy, 1))``; it is rotated by ``c2w`` and normalised again (the
reference does exactly this, so its network sees these bit-for-bit up to rounding).
"""

from __future__ import annotations

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras

__all__ = ["pixel_grid", "pixel_rays", "camera_rays", "ray_closest_points", "gslrm_ray_encoding", "plucker_rays"]


def pixel_grid(
    width: int,
    height: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, "H W 2"]:
    """Pixel-centre coordinates ``(u + 0.5, v + 0.5)`` of an image.

    Args:
        width: image width ``W`` in pixels.
        height: image height ``H`` in pixels.
        device: device of the result (CPU by default).
        dtype: floating dtype of the result.

    Returns:
        ``[H, W, 2]`` with ``[..., 0]`` the x (column) and ``[..., 1]`` the y (row) coordinate.

    Example:
        >>> pixel_grid(3, 2)[1, 2]
        tensor([2.5000, 1.5000])
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    x = torch.arange(width, device=device, dtype=dtype) + 0.5  # [W]
    y = torch.arange(height, device=device, dtype=dtype) + 0.5  # [H]
    grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")  # [H, W] each
    return torch.stack([grid_x, grid_y], dim=-1)


def pixel_rays(
    cameras: Cameras,
    uv: Float[Tensor, "*batch N 2"],
) -> tuple[Float[Tensor, "*batch N 3"], Float[Tensor, "*batch N 3"]]:
    """World-space rays through continuous pixel coordinates.

    Args:
        cameras: ``Cameras`` of batch shape ``[...]``.
        uv: ``[..., N, 2]`` pixel coordinates (pixel centres at ``+0.5``), broadcastable against the
            cameras' batch shape (e.g. ``[N, 2]`` for the same pixels in every camera).

    Returns:
        ``(origins [..., N, 3], directions [..., N, 3])``: camera centres and unit directions.

    Example:
        >>> from facelift.cameras import facelift_views
        >>> cams = facelift_views()
        >>> _, d = pixel_rays(cams, torch.tensor([[256.0, 256.0]]))  # the principal point
        >>> d[0, 0]  # the front camera looks along +y
        tensor([0., 1., 0.])
    """
    if uv.shape[-1] != 2:
        raise ValueError(f"uv must be [..., N, 2], got {tuple(uv.shape)}")
    uv = uv.to(cameras.dtype)
    x = (uv[..., 0] - cameras.cx[..., None]) / cameras.fx[..., None]  # [..., N]
    y = (uv[..., 1] - cameras.cy[..., None]) / cameras.fy[..., None]  # [..., N]
    d_cam = torch.nn.functional.normalize(torch.stack([x, y, torch.ones_like(x)], dim=-1), dim=-1)
    rot = cameras.c2w[..., :3, :3]  # [..., 3, 3]
    # Row vectors: d_world^T = d_cam^T R^T. Normalised again, as the reference does.
    directions = torch.nn.functional.normalize(d_cam @ rot.transpose(-1, -2), dim=-1)  # [..., N, 3]
    origins = cameras.positions[..., None, :].expand_as(directions)  # [..., N, 3]
    return origins, directions


def camera_rays(
    cameras: Cameras,
) -> tuple[Float[Tensor, "*batch H W 3"], Float[Tensor, "*batch H W 3"]]:
    """One world-space ray per pixel centre.

    Args:
        cameras: ``Cameras`` of batch shape ``[...]`` and image size ``W`` x ``H``.

    Returns:
        ``(origins [..., H, W, 3], directions [..., H, W, 3])``: camera centres (broadcast, a view) and
        unit directions through the pixel centres.

    Example:
        >>> from facelift.cameras import facelift_views
        >>> o, d = camera_rays(facelift_views(resolution=64))
        >>> o.shape, d.shape
        (torch.Size([6, 64, 64, 3]), torch.Size([6, 64, 64, 3]))
    """
    w, h = cameras.width, cameras.height
    uv = pixel_grid(w, h, device=cameras.device, dtype=cameras.dtype).reshape(h * w, 2)  # [H*W, 2]
    origins, directions = pixel_rays(cameras, uv)  # [..., H*W, 3] each
    batch = cameras.batch_shape
    return origins.reshape(*batch, h, w, 3), directions.reshape(*batch, h, w, 3)


def ray_closest_points(
    origins: Float[Tensor, "*batch 3"],
    directions: Float[Tensor, "*batch 3"],
) -> Float[Tensor, "*batch 3"]:
    """The point of each ray closest to the world origin, ``o + (-o . d) d``, for unit ``d``.

    Args:
        origins: ``[..., 3]`` ray origins.
        directions: ``[..., 3]`` unit ray directions.

    Returns:
        ``[..., 3]`` points, orthogonal to their ray's direction.

    Example:
        >>> ray_closest_points(torch.tensor([0.0, -2.7, 1.0]), torch.tensor([0.0, 1.0, 0.0]))
        tensor([0., 0., 1.])
    """
    t = -(origins * directions).sum(-1, keepdim=True)  # [..., 1]
    return origins + t * directions


def gslrm_ray_encoding(
    images: Float[Tensor, "*batch 3 H W"],
    cameras: Cameras,
) -> Float[Tensor, "*batch 9 H W"]:
    """The reconstructor's 9-channel input: ``[RGB * 2 - 1 | d | o + (-o . d) d]``.

    Args:
        images: ``[..., 3, H, W]`` RGB in [0, 1]; the batch shape must equal the cameras'.
        cameras: ``Cameras`` of batch shape ``[...]`` and image size ``W`` x ``H``.

    Returns:
        ``[..., 9, H, W]`` in the cameras' dtype: channels 0-2 the image in [-1, 1], 3-5 the unit ray
        direction, 6-8 the point of the ray closest to the world origin.

    Raises:
        ValueError: if ``images`` is not ``[..., 3, H, W]`` matching the cameras.

    Example:
        >>> from facelift.cameras import facelift_views
        >>> gslrm_ray_encoding(torch.rand(6, 3, 32, 32), facelift_views(resolution=32)).shape
        torch.Size([6, 9, 32, 32])
    """
    expected = (*cameras.batch_shape, 3, cameras.height, cameras.width)
    if tuple(images.shape) != expected:
        raise ValueError(f"images must be [..., 3, H, W] = {expected} to match the cameras, got {tuple(images.shape)}")
    origins, directions = camera_rays(cameras)  # [..., H, W, 3] each
    closest = ray_closest_points(origins, directions)  # [..., H, W, 3]
    rays = rearrange(torch.cat([directions, closest], dim=-1), "... h w c -> ... c h w")  # [..., 6, H, W]
    return torch.cat([images.to(rays.dtype) * 2.0 - 1.0, rays], dim=-3)


def plucker_rays(cameras: Cameras) -> Float[Tensor, "*batch 6 H W"]:
    """Plücker coordinates ``(o x d, d)`` of every pixel's ray.

    The moment ``o x d`` is the same for every point ``o`` on the ray, so this is a parametrisation of
    the line itself.

    Args:
        cameras: ``Cameras`` of batch shape ``[...]`` and image size ``W`` x ``H``.

    Returns:
        ``[..., 6, H, W]``: channels 0-2 the moment ``o x d``, 3-5 the unit direction ``d``.

    Example:
        >>> from facelift.cameras import facelift_views
        >>> plucker_rays(facelift_views(resolution=16)).shape
        torch.Size([6, 6, 16, 16])
    """
    origins, directions = camera_rays(cameras)  # [..., H, W, 3] each
    moments = torch.linalg.cross(origins, directions, dim=-1)  # [..., H, W, 3]
    return rearrange(torch.cat([moments, directions], dim=-1), "... h w c -> ... c h w")
