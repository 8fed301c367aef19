"""The ``Cameras`` container: projection round trips, rigid inverses, resizing and batching."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facelift.cameras import Cameras, facelift_views, invert_rigid, orbit_cameras


@settings(max_examples=60, deadline=None)
@given(
    azimuth=st.floats(-360.0, 360.0),
    elevation=st.floats(-80.0, 80.0),
    radius=st.floats(2.0, 6.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_project_unproject_round_trip(azimuth, elevation, radius, seed):
    cam = orbit_cameras(azimuth, elevation, radius, fov_deg=40.0, width=64, height=48, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(10, 3, generator=gen, dtype=torch.float64) - 0.5  # |p| < 0.87 < radius: in front
    uv, depth = cam.project(points)
    assert bool((depth > 0).all())
    torch.testing.assert_close(cam.unproject(uv, depth), points, atol=1e-10, rtol=0)
    uv2, depth2 = cam.project(cam.unproject(uv, depth))
    torch.testing.assert_close(uv2, uv, atol=1e-9, rtol=0)
    torch.testing.assert_close(depth2, depth, atol=1e-10, rtol=0)


def test_world_to_camera_puts_origin_on_the_optical_axis():
    cams = facelift_views(dtype=torch.float64)
    p = cams.world_to_camera(torch.zeros(6, 1, 3, dtype=torch.float64))
    expected = torch.tensor([0.0, 0.0, 2.7], dtype=torch.float64).expand(6, 3)
    torch.testing.assert_close(p[:, 0], expected, atol=1e-12, rtol=0)


def test_invert_rigid_matches_general_inverse():
    cams = facelift_views(torch.tensor([10.0, 200.0]), elevation_deg=15.0, dtype=torch.float64)
    torch.testing.assert_close(invert_rigid(cams.c2w), torch.linalg.inv(cams.c2w), atol=1e-12, rtol=0)


def test_resized_keeps_pixel_centre_convention():
    cam = orbit_cameras(20.0, 10.0, width=64, dtype=torch.float64)
    point = torch.tensor([[0.2, -0.1, 0.3]], dtype=torch.float64)
    uv, _ = cam.project(point)
    uv_half, _ = cam.resized(32, 32).project(point)
    torch.testing.assert_close(uv_half, uv / 2)


def test_indexing_and_stacking():
    views = facelift_views(torch.tensor([0.0, 30.0]))  # [2, 6]
    assert views[1].batch_shape == (6,) and views[:, 2].batch_shape == (2,)
    torch.testing.assert_close(views[1, 0].c2w, facelift_views(30.0).c2w[0])
    stacked = Cameras.stack([views[0], views[1]], dim=-1)
    assert stacked.batch_shape == (6, 2)
    torch.testing.assert_close(stacked.c2w[:, 1], views.c2w[1])
    assert Cameras.cat([views, views]).batch_shape == (4, 6)
    with pytest.raises(ValueError, match="image sizes"):
        Cameras.cat([views, facelift_views(resolution=64)[None].reshape(1, 6)])
    with pytest.raises(ValueError, match="c2w"):
        Cameras(torch.eye(3), torch.eye(3), 8, 8)
