"""Pixel grids, camera rays and the GS-LRM / Plücker ray encodings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facelift.cameras import (
    Cameras,
    camera_rays,
    facelift_views,
    gslrm_ray_encoding,
    orbit_cameras,
    pixel_grid,
    pixel_rays,
    plucker_rays,
    random_cameras,
    ray_closest_points,
)

BATCH_DIMS = [(), (2,), (1, 2)]


def _cameras(batch_dims: tuple[int, ...], width: int = 12, height: int = 8, dtype=torch.float64) -> Cameras:
    n = math.prod(batch_dims)
    cams = random_cameras(n, generator=torch.Generator().manual_seed(1), radius_range=(2.0, 3.0), dtype=dtype)
    # Off-centre principal point and non-square pixels so the formula's every term matters.
    K = cams.K.clone()
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2] = 13.0, 11.0, 5.5, 4.25
    return Cameras(cams.c2w, K, width, height).reshape(*batch_dims)


def _camera_rays_ref(c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel by pixel, as the reference describes it: centre +0.5, normalise, rotate, normalise."""
    origins = np.zeros((height, width, 3))
    directions = np.zeros((height, width, 3))
    for v in range(height):
        for u in range(width):
            d = np.array([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], 1.0])
            d = c2w[:3, :3] @ (d / np.linalg.norm(d))
            directions[v, u] = d / np.linalg.norm(d)
            origins[v, u] = c2w[:3, 3]
    return origins, directions


def test_pixel_grid_centres():
    grid = pixel_grid(5, 3, dtype=torch.float64)
    assert grid.shape == (3, 5, 2) and grid.dtype == torch.float64
    torch.testing.assert_close(grid[0, 0], torch.tensor([0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(grid[2, 4], torch.tensor([4.5, 2.5], dtype=torch.float64))
    torch.testing.assert_close(grid[1, 3], torch.tensor([3.5, 1.5], dtype=torch.float64))
    with pytest.raises(ValueError):
        pixel_grid(0, 3)


@pytest.mark.parametrize("batch_dims", BATCH_DIMS)
def test_camera_rays_match_pixelwise_reference(batch_dims):
    cams = _cameras(batch_dims)
    origins, directions = camera_rays(cams)
    assert origins.shape == directions.shape == (*batch_dims, 8, 12, 3)
    flat_o, flat_d = origins.reshape(-1, 8, 12, 3), directions.reshape(-1, 8, 12, 3)
    flat = cams.flatten()
    for i in range(flat.batch_shape[0]):
        o_ref, d_ref = _camera_rays_ref(flat.c2w[i].numpy(), flat.K[i].numpy(), 12, 8)
        torch.testing.assert_close(flat_o[i], torch.from_numpy(o_ref), atol=1e-12, rtol=0)
        torch.testing.assert_close(flat_d[i], torch.from_numpy(d_ref), atol=1e-12, rtol=0)


@pytest.mark.parametrize("batch_dims", BATCH_DIMS)
def test_rays_are_unit_and_start_at_camera_centres(batch_dims):
    cams = _cameras(batch_dims, dtype=torch.float32)
    origins, directions = camera_rays(cams)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(directions.shape[:-1]), atol=1e-6, rtol=0)
    torch.testing.assert_close(origins, cams.positions[..., None, None, :].expand_as(origins))


def test_rays_reproject_to_their_pixels():
    cams = _cameras((3,))
    origins, directions = camera_rays(cams)  # [3, H, W, 3]
    points = (origins + 1.7 * directions).reshape(3, -1, 3)
    uv, depth = cams.project(points)
    grid = pixel_grid(12, 8, dtype=torch.float64).reshape(1, -1, 2).expand(3, -1, -1)
    torch.testing.assert_close(uv, grid, atol=1e-9, rtol=0)
    assert bool((depth > 0).all())


@pytest.mark.parametrize("resolution", [32, 33, 512])
def test_principal_ray_of_orbit_camera_hits_origin(resolution):
    cams = facelift_views(resolution=resolution, dtype=torch.float64)
    towards_origin = -cams.positions / cams.positions.norm(dim=-1, keepdim=True)  # [6, 3]
    principal = torch.stack([cams.cx, cams.cy], -1)[:, None, :]  # [6, 1, 2]
    origins, directions = pixel_rays(cams, principal)
    torch.testing.assert_close(directions[:, 0], towards_origin, atol=1e-12, rtol=0)
    torch.testing.assert_close(origins[:, 0], cams.positions)
    # The pixels around the centre: the mean of the 4 centre rays (even) or the centre ray (odd).
    _, d = camera_rays(cams)
    c = resolution // 2
    centre = d[:, c - 1 : c + 1, c - 1 : c + 1].mean((1, 2)) if resolution % 2 == 0 else d[:, c, c]
    torch.testing.assert_close(torch.nn.functional.normalize(centre, dim=-1), towards_origin, atol=1e-9, rtol=0)


def test_pixel_rays_checks_uv_shape():
    with pytest.raises(ValueError, match="uv"):
        pixel_rays(facelift_views(), torch.zeros(4, 3))


@settings(max_examples=40, deadline=None)
@given(
    azimuth=st.floats(-360.0, 360.0),
    elevation=st.floats(-80.0, 80.0),
    radius=st.floats(0.5, 6.0),
    uv=st.tuples(st.floats(0.0, 16.0), st.floats(0.0, 16.0)),
)
def test_closest_point_is_orthogonal_and_plucker_moment_is_constant(azimuth, elevation, radius, uv):
    cam = orbit_cameras(azimuth, elevation, radius, width=16, dtype=torch.float64)
    o, d = pixel_rays(cam, torch.tensor([uv], dtype=torch.float64))  # [1, 3] each
    p = ray_closest_points(o, d)
    assert abs((p * d).sum().item()) < 1e-12
    assert p.norm().item() <= radius + 1e-12
    moment = torch.linalg.cross(o, d, dim=-1)
    for t in (-3.0, 0.5, 7.0):
        torch.testing.assert_close(torch.linalg.cross(o + t * d, d, dim=-1), moment, atol=1e-12, rtol=0)
    # |o x d| is the ray's distance from the origin, i.e. |closest point|.
    assert moment.norm().item() == pytest.approx(p.norm().item(), abs=1e-12)


@pytest.mark.parametrize("batch_dims", BATCH_DIMS)
def test_gslrm_encoding_channel_layout(batch_dims):
    cams = _cameras(batch_dims)
    images = torch.rand(*batch_dims, 3, 8, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    enc = gslrm_ray_encoding(images, cams)
    assert enc.shape == (*batch_dims, 9, 8, 12) and enc.dtype == torch.float64
    origins, directions = camera_rays(cams)
    torch.testing.assert_close(enc[..., 0:3, :, :], images * 2 - 1)
    torch.testing.assert_close(enc[..., 3:6, :, :], directions.movedim(-1, -3))
    closest = origins - (origins * directions).sum(-1, keepdim=True) * directions
    torch.testing.assert_close(enc[..., 6:9, :, :], closest.movedim(-1, -3))
    # Spot-check one pixel against the definition, channel by channel.
    index = (0,) * len(batch_dims)
    o, d = origins[index][5, 7], directions[index][5, 7]
    expected = torch.cat([images[index][:, 5, 7] * 2 - 1, d, o - torch.dot(o, d) * d])
    torch.testing.assert_close(enc[index][:, 5, 7], expected)


def test_gslrm_encoding_rejects_mismatched_images():
    cams = facelift_views(resolution=16)
    with pytest.raises(ValueError, match="images"):
        gslrm_ray_encoding(torch.rand(6, 4, 16, 16), cams)  # RGBA
    with pytest.raises(ValueError, match="images"):
        gslrm_ray_encoding(torch.rand(6, 3, 16, 8), cams)
    with pytest.raises(ValueError, match="images"):
        gslrm_ray_encoding(torch.rand(5, 3, 16, 16), cams)
    with pytest.raises(ValueError, match="images"):
        gslrm_ray_encoding(torch.rand(6, 16, 16, 3), cams)  # channels last


@pytest.mark.parametrize("batch_dims", BATCH_DIMS)
def test_plucker_rays(batch_dims):
    cams = _cameras(batch_dims)
    pl = plucker_rays(cams)
    assert pl.shape == (*batch_dims, 6, 8, 12)
    origins, directions = camera_rays(cams)
    torch.testing.assert_close(pl[..., 3:6, :, :], directions.movedim(-1, -3))
    torch.testing.assert_close(pl[..., 0:3, :, :], torch.linalg.cross(origins, directions, dim=-1).movedim(-1, -3))
    # Moment and direction of a line are orthogonal.
    assert (pl[..., 0:3, :, :] * pl[..., 3:6, :, :]).sum(-3).abs().max() < 1e-12
