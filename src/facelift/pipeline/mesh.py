"""Triangle mesh from Gaussians: splat an opacity field on a voxel grid, extract an iso-surface, colour it.

The field is ``D(x) = sum_i o_i exp(-0.5 (x - mu_i)^T Sigma_i^-1 (x - mu_i))`` (each Gaussian truncated at 3
standard deviations of its largest axis), the colour field is the ``D``-weighted mean of the Gaussians' RGB,
and the surface is ``D = level`` by marching cubes (PyMCubes), vertex-coloured by trilinear sampling of the
colour field. Exported as binary glTF (``.glb``) or ``.obj`` with vertex colours through trimesh.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from facelift.gaussians.container import Gaussians, sh_dc_to_rgb
from facelift.gaussians.ops import covariance
from facelift.utils.io import atomic_path

__all__ = ["MeshSettings", "TriangleMesh", "gaussians_to_mesh", "opacity_field", "save_mesh"]


@dataclass(frozen=True)
class MeshSettings:
    """How the mesh is extracted."""

    resolution: int = 160
    """Voxels along the longest side of the bounding box."""
    level: float = 0.5
    """Iso-level of the opacity field (about where a ray's accumulated opacity passes one half)."""
    padding: float = 0.05
    """Margin around the Gaussians' bounding box (world units)."""
    max_radius_voxels: int = 6
    """Truncate each Gaussian's footprint at this many voxels (very large ones are rare after pruning)."""
    min_opacity: float = 0.05
    """Ignore fainter Gaussians."""

    def __post_init__(self) -> None:
        if self.resolution < 8 or not self.level > 0 or self.padding < 0 or self.max_radius_voxels < 1:
            raise ValueError("MeshSettings needs resolution >= 8, level > 0, padding >= 0 and max_radius_voxels >= 1")


@dataclass
class TriangleMesh:
    """A vertex-coloured triangle mesh (float32 vertices in world units, uint8 RGB colours)."""

    vertices: np.ndarray
    """``[M, 3]``."""
    faces: np.ndarray
    """``[F, 3]`` vertex indices (counter-clockwise seen from outside)."""
    colors: np.ndarray
    """``[M, 3]`` uint8."""


def _gaussian_colors(g: Gaussians) -> Tensor:
    """View-independent RGB ``[N, 3]`` (the SH DC term)."""
    return sh_dc_to_rgb(g.sh[..., 0, :].float()).clamp(0, 1)


def opacity_field(
    g: Gaussians, origin: Tensor, voxel: float, shape: tuple[int, int, int], max_radius_voxels: int = 6, chunk: int = 1 << 16
) -> tuple[Float[Tensor, "X Y Z"], Float[Tensor, "X Y Z 3"]]:
    """Splat Gaussians ``[N]`` onto a grid: the opacity field and the density-weighted colour sum.

    Voxel ``(i, j, k)`` has its centre at ``origin + voxel * (i, j, k)``.
    """
    device = g.means.device
    means = g.means.float()
    inv = torch.linalg.inv(covariance(g).float() + 1e-10 * torch.eye(3, device=device))
    colors = _gaussian_colors(g)
    opac = g.opacities.float().reshape(-1)
    radius = (3.0 * g.scales.float().amax(-1) / voxel).ceil().clamp(1, max_radius_voxels).long()  # [N]
    nx, ny, nz = shape
    density = torch.zeros(nx * ny * nz, device=device)
    color_sum = torch.zeros(nx * ny * nz, 3, device=device)
    base = ((means - origin) / voxel).round().long()  # nearest voxel [N, 3]
    for r in radius.unique().tolist():
        idx = torch.nonzero(radius == r).squeeze(1)
        span = torch.arange(-r, r + 1, device=device)
        offsets = torch.stack(torch.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 3)  # [O, 3]
        per = max(1, chunk // offsets.shape[0])
        for start in range(0, idx.numel(), per):
            sel = idx[start : start + per]
            cells = base[sel, None, :] + offsets[None]  # [n, O, 3]
            inside = ((cells >= 0) & (cells < torch.tensor(shape, device=device))).all(-1)
            centres = origin + voxel * cells.float()
            d = centres - means[sel, None]
            m = torch.einsum("noi,nij,noj->no", d, inv[sel], d)
            w = opac[sel, None] * torch.exp(-0.5 * m) * inside
            flat = (cells[..., 0].clamp(0, nx - 1) * ny + cells[..., 1].clamp(0, ny - 1)) * nz + cells[..., 2].clamp(0, nz - 1)
            density.index_add_(0, flat.reshape(-1), w.reshape(-1))
            color_sum.index_add_(0, flat.reshape(-1), (w[..., None] * colors[sel, None]).reshape(-1, 3))
    return density.view(nx, ny, nz), color_sum.view(nx, ny, nz, 3)


@torch.no_grad()
def gaussians_to_mesh(g: Gaussians, settings: MeshSettings = MeshSettings()) -> TriangleMesh:
    """Extract a vertex-coloured triangle mesh from an unbatched set of Gaussians ``[N]``.

    Raises:
        ImportError: PyMCubes is not installed.
        ValueError: no Gaussians, or the field never reaches ``level`` (nothing solid to mesh).

    Example:
        >>> mesh = gaussians_to_mesh(load_ply("gaussians.ply"))  # doctest: +SKIP
        >>> save_mesh("mesh.glb", mesh)  # doctest: +SKIP
    """
    try:
        import mcubes
    except ImportError as err:
        raise ImportError("mesh export needs PyMCubes: pip install PyMCubes") from err
    if len(g.shape) != 1:
        raise ValueError(f"gaussians_to_mesh takes one set of Gaussians [N], got {tuple(g.shape)}")
    keep = g.opacities.reshape(-1) >= settings.min_opacity
    g = g[keep]
    if g.num == 0:
        raise ValueError("no Gaussians to mesh (all are fainter than min_opacity)")
    lo = g.means.amin(0) - settings.padding
    hi = g.means.amax(0) + settings.padding
    voxel = float((hi - lo).max()) / (settings.resolution - 1)
    shape = tuple(math.ceil(float(e) / voxel) + 1 for e in (hi - lo))
    density, color_sum = opacity_field(g, lo, voxel, shape, settings.max_radius_voxels)
    field = density.cpu().numpy().astype(np.float64)
    if field.max() < settings.level:
        raise ValueError(f"the opacity field peaks at {field.max():.3f} < level {settings.level}: nothing solid to mesh")
    # Pad with empty voxels so the surface closes at the grid's border.
    verts, faces = mcubes.marching_cubes(np.pad(field, 1), settings.level)
    verts = verts - 1.0
    if len(faces) == 0:
        raise ValueError("marching cubes found no surface")
    # Trilinear colour sampling of the weighted mean colour field.
    mean_color = (color_sum / density.clamp(min=1e-8)[..., None]).permute(3, 0, 1, 2)[None]  # [1, 3, X, Y, Z]
    size = torch.tensor(shape, dtype=torch.float32) - 1
    grid = torch.from_numpy(verts).float() / size * 2 - 1  # [M, 3] in (x, y, z) voxel order
    # grid_sample reads the last grid coordinate as the first (slowest) volume axis.
    sample = F.grid_sample(mean_color.cpu(), grid.flip(-1)[None, None, None], align_corners=True, padding_mode="border")
    colors = (sample[0, :, 0, 0].T.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    vertices = (lo.cpu().numpy() + voxel * verts).astype(np.float32)
    return TriangleMesh(vertices, faces.astype(np.int64), colors)


def save_mesh(path: str | os.PathLike, mesh: TriangleMesh) -> Path:
    """Write ``.glb`` (binary glTF with vertex colours), ``.obj`` or ``.ply`` atomically (format from the suffix)."""
    try:
        import trimesh
    except ImportError as err:
        raise ImportError("mesh export needs trimesh: pip install trimesh") from err
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("glb", "obj", "ply"):
        raise ValueError(f"mesh format must be .glb, .obj or .ply, got {path.suffix!r}")
    rgba = np.concatenate([mesh.colors, np.full((len(mesh.colors), 1), 255, np.uint8)], axis=1)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=rgba, process=False)
    with atomic_path(path) as tmp:
        data = tm.export(file_type=kind)
        Path(tmp).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path
