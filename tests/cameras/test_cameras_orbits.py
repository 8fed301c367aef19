"""Orbit cameras: the reference six views and 32-view ring, broadcasting, K, random and turntable views."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facelift.cameras import (
    EIGHT_VIEW_NAMES,
    view_azimuths,
    FACELIFT_VIEW_AZIMUTHS,
    FACELIFT_VIEW_NAMES,
    REFERENCE_FOCAL,
    Cameras,
    facelift_views,
    fov_to_focal,
    orbit_cameras,
    random_cameras,
    reference_ring_cameras,
    turntable_cameras,
)

REFERENCE_FILE = Path(__file__).with_name("reference_cameras.json")

azimuths = st.floats(-720.0, 720.0, allow_nan=False)
elevations = st.floats(-85.0, 85.0, allow_nan=False)
radii = st.floats(0.5, 10.0, allow_nan=False)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE_FILE.read_text())


def assert_looks_at_origin(cams: Cameras, atol: float = 1e-5) -> None:
    """The camera's +z axis points from its centre to the world origin, and its x axis is horizontal."""
    forward = cams.c2w[..., :3, 2]
    expected = -cams.positions / cams.positions.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(forward, expected, atol=atol, rtol=0)
    torch.testing.assert_close(cams.c2w[..., 2, 0], torch.zeros_like(cams.c2w[..., 2, 0]), atol=atol, rtol=0)


def test_reference_constants():
    assert fov_to_focal(50.0, 512) == pytest.approx(REFERENCE_FOCAL, abs=1e-5)
    assert REFERENCE_FOCAL == torch.tensor(256 / math.tan(math.radians(25)), dtype=torch.float32).item()
    assert len(FACELIFT_VIEW_NAMES) == len(FACELIFT_VIEW_AZIMUTHS) == 6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_facelift_views_equal_reference_cameras(reference, dtype):
    cams = facelift_views(dtype=dtype)
    frames = reference["frames"]
    assert cams.batch_shape == (6,) and (cams.width, cams.height) == (512, 512)
    assert cams.dtype == dtype
    assert [f["name"] for f in frames] == list(FACELIFT_VIEW_NAMES)
    c2w_ref = torch.tensor([f["c2w"] for f in frames], dtype=dtype)
    K_ref = torch.tensor(
        [[[f["fx"], 0.0, f["cx"]], [0.0, f["fy"], f["cy"]], [0.0, 0.0, 1.0]] for f in frames], dtype=dtype
    )
    torch.testing.assert_close(cams.c2w, c2w_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(cams.K, K_ref, atol=1e-5, rtol=0)
    positions_ref = torch.tensor([f["position"] for f in frames], dtype=dtype)
    torch.testing.assert_close(cams.positions, positions_ref, atol=1e-5, rtol=0)


def test_front_and_front_right_axes():
    cams = facelift_views(dtype=torch.float64)
    front, front_right = cams.c2w[0], cams.c2w[1]
    h = 1 / math.sqrt(2)
    torch.testing.assert_close(front[:3, :3].T, torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64))
    torch.testing.assert_close(front_right[:3, 2], torch.tensor([h, h, 0], dtype=torch.float64))
    torch.testing.assert_close(front_right[:3, 0], torch.tensor([h, -h, 0], dtype=torch.float64))


def test_image_orientation_of_front_camera():
    """z-up world: a point above the head is above the image centre; the subject's right (-x) is on the left."""
    cam = facelift_views()[0]
    uv, depth = cam.project(torch.tensor([[0.0, 0.0, 0.3], [-0.3, 0.0, 0.0]]))
    assert uv[0, 1] < 256 - 10 and abs(uv[0, 0] - 256) < 1e-3
    assert uv[1, 0] < 256 - 10 and abs(uv[1, 1] - 256) < 1e-3
    torch.testing.assert_close(depth, torch.tensor([2.7, 2.7]))


def test_ring_matches_reference_positions():
    cams = reference_ring_cameras()
    assert cams.batch_shape == (32,)
    expected = {0: (2.53717, 0.0, 0.92345), 1: (2.48842, 0.49498, 0.92345), 8: (0.0, 2.53717, 0.92345)}
    for i, position in expected.items():
        torch.testing.assert_close(cams.positions[i], torch.tensor(position), atol=1e-5, rtol=0)
    t = torch.deg2rad(torch.arange(32, dtype=torch.float64) * 11.25)
    e = math.radians(20.0)
    formula = 2.7 * torch.stack([math.cos(e) * t.cos(), math.cos(e) * t.sin(), torch.full_like(t, math.sin(e))], -1)
    torch.testing.assert_close(cams.positions.double(), formula, atol=1e-6, rtol=0)
    assert_looks_at_origin(cams)


def test_ring_is_orbit_at_270_minus_step():
    ring = reference_ring_cameras(dtype=torch.float64)
    orbit = orbit_cameras(270.0 - 11.25 * torch.arange(32.0), 20.0, dtype=torch.float64)
    torch.testing.assert_close(ring.c2w, orbit.c2w)
    torch.testing.assert_close(ring.K, orbit.K)


@settings(max_examples=60, deadline=None)
@given(azimuth=azimuths, elevation=elevations, radius=radii)
def test_orbit_w2c_inverts_c2w(azimuth, elevation, radius):
    cam = orbit_cameras(azimuth, elevation, radius, dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(cam.w2c @ cam.c2w, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(cam.c2w @ cam.w2c, eye, atol=1e-12, rtol=0)
    rot = cam.c2w[:3, :3]
    torch.testing.assert_close(rot.T @ rot, eye[:3, :3], atol=1e-12, rtol=0)
    assert torch.linalg.det(rot).item() == pytest.approx(1.0, abs=1e-12)
    assert cam.positions.norm().item() == pytest.approx(radius, rel=1e-12)
    assert cam.positions[2].item() == pytest.approx(radius * math.sin(math.radians(elevation)), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(azimuth=azimuths, elevation=elevations, radius=radii)
def test_orbit_projects_origin_to_principal_point(azimuth, elevation, radius):
    cam = orbit_cameras(azimuth, elevation, radius, width=96, height=64, dtype=torch.float64)
    uv, depth = cam.project(torch.zeros(1, 3, dtype=torch.float64))
    torch.testing.assert_close(uv[0], torch.tensor([48.0, 32.0], dtype=torch.float64), atol=1e-9, rtol=0)
    assert depth.item() == pytest.approx(radius, rel=1e-12)
    assert_looks_at_origin(cam, atol=1e-12)


def test_orbit_broadcasts_arguments():
    cams = orbit_cameras(torch.tensor([[0.0], [90.0], [180.0]]), torch.tensor([0.0, 10.0, 20.0, 30.0]), 2.0)
    assert cams.batch_shape == (3, 4)
    torch.testing.assert_close(cams.positions.norm(dim=-1), torch.full((3, 4), 2.0))
    single = orbit_cameras(90.0, 20.0, 2.0)
    torch.testing.assert_close(cams.c2w[1, 2], single.c2w)
    assert orbit_cameras(0.0, 0.0).batch_shape == ()


def test_orbit_intrinsics_from_horizontal_fov():
    cam = orbit_cameras(0.0, 0.0, fov_deg=60.0, width=640, height=480, dtype=torch.float64)
    focal = 320 / math.tan(math.radians(30))
    expected = torch.tensor([[focal, 0, 320], [0, focal, 240], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(cam.K, expected)
    assert (cam.width, cam.height) == (640, 480)


def test_intrinsics_scale_with_resolution():
    small = facelift_views(resolution=128)
    torch.testing.assert_close(small.fx, torch.full((6,), REFERENCE_FOCAL / 4))
    torch.testing.assert_close(small.cx, torch.full((6,), 64.0))
    resized = facelift_views().resized(128, 128)
    torch.testing.assert_close(resized.K, small.K)
    torch.testing.assert_close(resized.c2w, small.c2w)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(elevation_deg=90.0), "elevation"),
        (dict(elevation_deg=float("nan")), "elevation"),
        (dict(radius=0.0), "radius"),
        (dict(fov_deg=180.0), "fov"),
        (dict(width=0), "width"),
        (dict(width=64.5), "width"),
        (dict(height=-1), "height"),
        (dict(azimuth_deg=float("inf")), "azimuth"),
    ],
)
def test_orbit_rejects_bad_arguments(kwargs, match):
    args = dict(azimuth_deg=0.0, elevation_deg=0.0) | kwargs
    with pytest.raises(ValueError, match=match):
        orbit_cameras(**args)


def test_facelift_views_follow_input_azimuth():
    views = facelift_views(30.0, dtype=torch.float64)
    orbit = orbit_cameras(30.0 + torch.tensor(FACELIFT_VIEW_AZIMUTHS), 0.0, dtype=torch.float64)
    torch.testing.assert_close(views.c2w, orbit.c2w)
    torch.testing.assert_close(views.K, orbit.K)
    # The first view is the input camera itself, the fourth is opposite it.
    torch.testing.assert_close(views.positions[3], -views.positions[0])


def test_named_view_sets():
    eight = facelift_views(30.0, view_names=EIGHT_VIEW_NAMES, dtype=torch.float64)
    assert eight.batch_shape == (8,)
    six = facelift_views(30.0, dtype=torch.float64)
    shared = [EIGHT_VIEW_NAMES.index(n) for n in FACELIFT_VIEW_NAMES]
    torch.testing.assert_close(eight.c2w[shared], six.c2w)  # the six are among the eight, same cameras
    # Every 45 degrees: back_right halfway between right and back, opposite front_left.
    torch.testing.assert_close(eight.positions[3], -eight.positions[7])
    assert view_azimuths(("back_left", "front")) == (225.0, 0.0)
    for bad in ((), ("front", "front"), ("front", "up")):
        with pytest.raises(ValueError, match="view names"):
            facelift_views(view_names=bad)


def test_facelift_views_batched():
    inputs = torch.tensor([0.0, 30.0, -45.0])
    views = facelift_views(inputs, elevation_deg=torch.tensor([0.0, 10.0, 5.0]))
    assert views.batch_shape == (3, 6)
    for b in range(3):
        single = facelift_views(inputs[b].item(), elevation_deg=[0.0, 10.0, 5.0][b])
        torch.testing.assert_close(views.c2w[b], single.c2w)
    # Views of one subject share an elevation.
    elevation = torch.rad2deg(torch.asin(views.positions[..., 2] / 2.7))
    torch.testing.assert_close(elevation, torch.tensor([0.0, 10.0, 5.0])[:, None].expand(3, 6), atol=1e-4, rtol=0)


def test_random_cameras_deterministic_for_a_seed():
    a = random_cameras(16, generator=torch.Generator().manual_seed(7))
    b = random_cameras(16, generator=torch.Generator().manual_seed(7))
    c = random_cameras(16, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.c2w, b.c2w, atol=0, rtol=0)
    assert not torch.allclose(a.c2w, c.c2w)
    prefix = random_cameras(4, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(prefix.c2w, a.c2w[:4], atol=0, rtol=0)


def test_random_cameras_cover_the_band_and_look_at_origin():
    cams = random_cameras(
        2000,
        generator=torch.Generator().manual_seed(0),
        elevation_range=(-30.0, 60.0),
        radius_range=(2.0, 3.0),
        dtype=torch.float64,
    )
    assert cams.batch_shape == (2000,)
    assert_looks_at_origin(cams, atol=1e-12)
    radius = cams.positions.norm(dim=-1)
    assert radius.min() >= 2.0 and radius.max() <= 3.0
    sin_e = cams.positions[:, 2] / radius
    lo, hi = math.sin(math.radians(-30)), math.sin(math.radians(60))
    assert sin_e.min() >= lo - 1e-12 and sin_e.max() <= hi + 1e-12
    # Uniform in sin(elevation): its mean is the midpoint (std of the mean ~0.008 here).
    assert sin_e.mean().item() == pytest.approx((lo + hi) / 2, abs=0.04)
    azimuth = torch.rad2deg(torch.atan2(-cams.positions[:, 0], -cams.positions[:, 1])) % 360
    counts = torch.histc(azimuth, bins=4, min=0, max=360)
    assert counts.min() > 400  # ~500 per quadrant


def test_random_cameras_validates_ranges():
    with pytest.raises(ValueError, match="elevation_range"):
        random_cameras(2, elevation_range=(10.0, -10.0))
    with pytest.raises(ValueError, match="elevation_range"):
        random_cameras(2, elevation_range=(-90.0, 10.0))
    with pytest.raises(ValueError, match="radius_range"):
        random_cameras(2, radius_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="n must"):
        random_cameras(-1)


def test_turntable_starts_at_front_and_turns_right():
    cams = turntable_cameras(dtype=torch.float64)
    assert cams.batch_shape == (150,)
    torch.testing.assert_close(cams.c2w[0], facelift_views(dtype=torch.float64).c2w[0])
    expected = orbit_cameras(torch.arange(150.0, dtype=torch.float64) * 2.4, 0.0, dtype=torch.float64)
    torch.testing.assert_close(cams.c2w, expected.c2w)
    # A quarter of the way round is the subject's right, (-r, 0, 0); half-way is the back.
    eight = turntable_cameras(8, dtype=torch.float64)
    torch.testing.assert_close(eight.positions[2], torch.tensor([-2.7, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(eight.positions[4], torch.tensor([0.0, 2.7, 0.0], dtype=torch.float64))
    late = turntable_cameras(4, elevation_deg=10.0, start_azimuth_deg=90.0, dtype=torch.float64)
    torch.testing.assert_close(late.c2w[0], orbit_cameras(90.0, 10.0, dtype=torch.float64).c2w)
