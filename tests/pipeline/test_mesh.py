"""Mesh export: a solid sphere of Gaussians becomes a closed, outward, coloured sphere mesh."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("mcubes")
trimesh = pytest.importorskip("trimesh")

from facelift.gaussians import Gaussians
from facelift.pipeline.mesh import MeshSettings, gaussians_to_mesh, save_mesh


def _ball(n: int = 4000, radius: float = 0.5, color=(0.9, 0.2, 0.1)) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(n, 3, generator=g)
    r = radius * torch.rand(n, 1, generator=g) ** (1 / 3)
    means = dirs / dirs.norm(dim=1, keepdim=True) * r
    return Gaussians.from_rgb(means, torch.full((n, 3), 0.04), torch.full((n,), 0.9), torch.tensor(color).expand(n, 3))


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_ball_mesh_is_closed_outward_and_coloured(tmp_path, fmt):
    mesh = gaussians_to_mesh(_ball(), MeshSettings(resolution=48))
    path = save_mesh(tmp_path / f"ball.{fmt}", mesh)
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) > 500
    assert loaded.is_watertight
    assert loaded.volume > 0  # outward normals
    radius = np.linalg.norm(loaded.vertices, axis=1)
    assert 0.45 < np.median(radius) < 0.65  # the ball's surface (radius 0.5 plus the Gaussians' spread)
    assert loaded.volume == pytest.approx(4 / 3 * math.pi * np.median(radius) ** 3, rel=0.25)
    colors = np.asarray(loaded.visual.vertex_colors)[:, :3].astype(float)
    assert np.abs(colors.mean(0) - np.array([0.9, 0.2, 0.1]) * 255).max() < 12


def test_nothing_solid_and_bad_format_are_clear_errors(tmp_path):
    faint = _ball(200)
    faint = Gaussians(faint.means, faint.quats, faint.scales * 0.1, torch.full((200,), 0.06), faint.sh)
    with pytest.raises(ValueError, match="nothing solid"):
        gaussians_to_mesh(faint, MeshSettings(resolution=32))
    mesh = gaussians_to_mesh(_ball(), MeshSettings(resolution=32))
    with pytest.raises(ValueError, match="glb, .obj or .ply"):
        save_mesh(tmp_path / "x.stl", mesh)
