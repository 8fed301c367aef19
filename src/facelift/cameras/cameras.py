"""A small, typed, batchable pinhole camera container (OpenCV convention, see ``conventions.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.conventions import invert_rigid

__all__ = ["Cameras", "intrinsics_matrix"]


def intrinsics_matrix(
    fx: Float[Tensor, "*batch"],
    fy: Float[Tensor, "*batch"],
    cx: Float[Tensor, "*batch"],
    cy: Float[Tensor, "*batch"],
) -> Float[Tensor, "*batch 3 3"]:
    """Pinhole ``K`` from focal lengths and principal point, all in pixels.

    Example:
        >>> intrinsics_matrix(*map(torch.tensor, (548.99, 548.99, 256.0, 256.0))).shape
        torch.Size([3, 3])
    """
    fx, fy, cx, cy = torch.broadcast_tensors(fx, fy, cx, cy)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], -1).reshape(*fx.shape, 3, 3)


@dataclass(frozen=True)
class Cameras:
    """Pinhole cameras sharing one image size.

    Attributes:
        c2w: ``[..., 4, 4]`` OpenCV camera-to-world transforms.
        K: ``[..., 3, 3]`` intrinsics in pixels for an image of ``width`` x ``height``.
        width: image width in pixels.
        height: image height in pixels.

    Example:
        >>> cams = Cameras(torch.eye(4).expand(2, 4, 4), torch.eye(3).expand(2, 3, 3), 64, 64)
        >>> cams[0].batch_shape
        torch.Size([])
    """

    c2w: Float[Tensor, "*batch 4 4"]
    K: Float[Tensor, "*batch 3 3"]
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.c2w.shape[-2:] != (4, 4):
            raise ValueError(f"c2w must be [..., 4, 4], got {tuple(self.c2w.shape)}")
        if self.K.shape[-2:] != (3, 3):
            raise ValueError(f"K must be [..., 3, 3], got {tuple(self.K.shape)}")
        if self.c2w.shape[:-2] != self.K.shape[:-2]:
            raise ValueError(
                f"c2w and K batch shapes differ: {tuple(self.c2w.shape[:-2])} vs {tuple(self.K.shape[:-2])}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    # ---- shape ---------------------------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        """Leading batch shape ``[...]``."""
        return self.c2w.shape[:-2]

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("len() of an unbatched Cameras")
        return self.batch_shape[0]

    def __getitem__(self, index) -> "Cameras":
        return Cameras(self.c2w[index], self.K[index], self.width, self.height)

    def reshape(self, *shape: int) -> "Cameras":
        """Cameras with batch shape ``shape``."""
        return Cameras(self.c2w.reshape(*shape, 4, 4), self.K.reshape(*shape, 3, 3), self.width, self.height)

    def flatten(self) -> "Cameras":
        """Cameras with a single batch axis ``[prod(batch)]``."""
        return self.reshape(-1)

    @staticmethod
    def cat(cameras: Sequence["Cameras"], dim: int = 0) -> "Cameras":
        """Concatenate along a batch axis; all inputs must share the image size."""
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"cannot concatenate cameras of different image sizes: {sorted(sizes)}")
        c = cameras[0]
        dim = dim if dim >= 0 else dim - 2
        return Cameras(
            torch.cat([x.c2w for x in cameras], dim),
            torch.cat([x.K for x in cameras], dim),
            c.width,
            c.height,
        )

    @staticmethod
    def stack(cameras: Sequence["Cameras"], dim: int = 0) -> "Cameras":
        """Stack along a new batch axis; all inputs must share the image size and batch shape."""
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"cannot stack cameras of different image sizes: {sorted(sizes)}")
        dim = dim if dim >= 0 else dim - 2
        return Cameras(
            torch.stack([x.c2w for x in cameras], dim),
            torch.stack([x.K for x in cameras], dim),
            cameras[0].width,
            cameras[0].height,
        )

    # ---- device / dtype ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.c2w.device

    @property
    def dtype(self) -> torch.dtype:
        return self.c2w.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Cameras":
        """Move to a device and/or dtype."""
        return Cameras(self.c2w.to(device=device, dtype=dtype), self.K.to(device=device, dtype=dtype), self.width, self.height)

    # ---- derived quantities --------------------------------------------------------------------------
    @property
    def w2c(self) -> Float[Tensor, "*batch 4 4"]:
        """``[..., 4, 4]`` world-to-camera transforms (exact rigid inverse of ``c2w``)."""
        return invert_rigid(self.c2w)

    @property
    def positions(self) -> Float[Tensor, "*batch 3"]:
        """``[..., 3]`` camera centres in the world frame."""
        return self.c2w[..., :3, 3]

    @property
    def fx(self) -> Float[Tensor, "*batch"]:
        return self.K[..., 0, 0]

    @property
    def fy(self) -> Float[Tensor, "*batch"]:
        return self.K[..., 1, 1]

    @property
    def cx(self) -> Float[Tensor, "*batch"]:
        return self.K[..., 0, 2]

    @property
    def cy(self) -> Float[Tensor, "*batch"]:
        return self.K[..., 1, 2]

    def resized(self, width: int, height: int) -> "Cameras":
        """Same cameras for a resized image: ``K`` rows scale by ``width / self.width`` and
        ``height / self.height`` (pixel-centre convention preserved, since cx scales with the edge).
        """
        sx, sy = width / self.width, height / self.height
        scale = self.K.new_tensor([[sx, 0.0, sx], [0.0, sy, sy], [0.0, 0.0, 1.0]])
        return Cameras(self.c2w, self.K * scale, int(width), int(height))

    # ---- projection ----------------------------------------------------------------------------------
    def world_to_camera(self, points_world: Float[Tensor, "*batch N 3"]) -> Float[Tensor, "*batch N 3"]:
        """Points in the camera frame. ``points_world`` is ``[..., N, 3]`` with the cameras' batch shape."""
        w2c = self.w2c
        return points_world @ w2c[..., :3, :3].transpose(-1, -2) + w2c[..., None, :3, 3]

    def project(self, points_world: Float[Tensor, "*batch N 3"]) -> tuple[Float[Tensor, "*batch N 2"], Float[Tensor, "*batch N"]]:
        """Project world points to pixel coordinates (continuous; pixel centres at ``+0.5``).

        Args:
            points_world: ``[..., N, 3]``.

        Returns:
            ``(uv [..., N, 2], depth [..., N])`` where depth is the camera-frame z.
        """
        p = self.world_to_camera(points_world)
        z = p[..., 2]
        uv = (p[..., :2] / z[..., None]) @ self.K[..., :2, :2].transpose(-1, -2) + self.K[..., None, :2, 2]
        return uv, z

    def unproject(self, uv: Float[Tensor, "*batch N 2"], depth: Float[Tensor, "*batch N"]) -> Float[Tensor, "*batch N 3"]:
        """World points at camera-frame depth ``depth`` (z, not ray length) behind pixel coords ``uv``."""
        x = (uv[..., 0] - self.cx[..., None]) / self.fx[..., None]
        y = (uv[..., 1] - self.cy[..., None]) / self.fy[..., None]
        p_cam = torch.stack([x * depth, y * depth, depth], -1)
        return p_cam @ self.c2w[..., :3, :3].transpose(-1, -2) + self.c2w[..., None, :3, 3]
