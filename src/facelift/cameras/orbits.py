"""Orbit cameras around the subject: the six FaceLift views, the reference 32-view ring, random and
turntable views. Every camera looks at the world origin with world z up (see ``conventions.py``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras, intrinsics_matrix
from facelift.cameras.conventions import azimuth_elevation_to_position, look_at_c2w

__all__ = [
    "REFERENCE_RADIUS",
    "REFERENCE_FOV_DEG",
    "REFERENCE_RESOLUTION",
    "REFERENCE_FOCAL",
    "FACELIFT_VIEW_NAMES",
    "EIGHT_VIEW_NAMES",
    "FOUR_VIEW_NAMES",
    "FACELIFT_VIEW_AZIMUTHS",
    "VIEW_AZIMUTHS",
    "view_azimuths",
    "orbit_cameras",
    "facelift_views",
    "reference_ring_cameras",
    "random_cameras",
    "turntable_cameras",
]

REFERENCE_RADIUS = 2.7
"""Orbit radius of every reference camera (world units)."""

REFERENCE_FOV_DEG = 50.0
"""Horizontal field of view of the reference cameras, in degrees."""

REFERENCE_RESOLUTION = 512
"""Width and height of the reference images, in pixels."""

REFERENCE_FOCAL = 548.9937744140625
"""Reference ``fx = fy`` in pixels at 512 px: ``256 / tan(25 deg)`` rounded to float32, as in their files."""

FACELIFT_VIEW_NAMES = ("front", "front_right", "right", "back", "left", "front_left")
"""The six multi-view diffusion views, in the reference order (view 0 is the input view)."""

FACELIFT_VIEW_AZIMUTHS = (0.0, 45.0, 90.0, 180.0, 270.0, 315.0)
"""Azimuth offsets (degrees, toward the subject's right) of ``FACELIFT_VIEW_NAMES`` from the input view."""

VIEW_AZIMUTHS: dict[str, float] = {
    "front": 0.0, "front_right": 45.0, "right": 90.0, "back_right": 135.0,
    "back": 180.0, "back_left": 225.0, "left": 270.0, "front_left": 315.0,
}  # fmt: skip
"""Every named view around the input view: its azimuth offset in degrees (toward the subject's right)."""

EIGHT_VIEW_NAMES = ("front", "front_right", "right", "back_right", "back", "back_left", "left", "front_left")
"""An eight-view set (every 45 degrees), for the paper's view-count ablation; view 0 is the input view."""

FOUR_VIEW_NAMES = ("front", "right", "back", "left")
"""A four-view set (every 90 degrees), for the paper's view-count ablation; view 0 is the input view."""

_Scalar = Float[Tensor, "*batch"] | float


def _infer_device(device: torch.device | str | None, *values: object) -> torch.device:
    """``device`` if given, else the device of the first tensor among ``values``, else the CPU."""
    if device is not None:
        return torch.device(device)
    for value in values:
        if isinstance(value, Tensor):
            return value.device
    return torch.device("cpu")


def _work_dtype(device: torch.device) -> torch.dtype:
    # Build cameras in float64 and round once at the end, so float32 cameras are correctly rounded
    # (e.g. the 90-degree camera's y is ~1e-16, not ~1e-7). MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {number}")
    return number


def orbit_cameras(
    azimuth_deg: _Scalar,
    elevation_deg: _Scalar,
    radius: _Scalar = REFERENCE_RADIUS,
    fov_deg: _Scalar = REFERENCE_FOV_DEG,
    width: int = REFERENCE_RESOLUTION,
    height: int | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Cameras:
    """Pinhole cameras on a sphere around the origin, looking at it with world z up.

    The angle arguments broadcast against each other; the result's batch shape is their broadcast
    shape. ``K`` comes from the horizontal field of view: ``fx = fy = 0.5 * width / tan(fov / 2)``,
    ``cx = width / 2``, ``cy = height / 2``.

    Args:
        azimuth_deg: ``[...]`` or scalar azimuth in degrees; 0 = front camera at ``(0, -r, 0)``, 90 = the
            subject's right at ``(-r, 0, 0)``.
        elevation_deg: ``[...]`` or scalar elevation in degrees, in (-90, 90); > 0 looks down.
        radius: ``[...]`` or scalar distance from the origin, > 0.
        fov_deg: ``[...]`` or scalar horizontal field of view in degrees, in (0, 180).
        width: image width in pixels.
        height: image height in pixels; ``width`` when ``None``.
        device: device of the result; by default that of the first tensor argument, else the CPU.
        dtype: floating dtype of ``c2w`` and ``K``.

    Returns:
        ``Cameras`` with batch shape ``[...]``.

    Raises:
        ValueError: on an elevation outside (-90, 90), a non-positive radius, a field of view outside
            (0, 180) or a non-positive image size.

    Example:
        >>> cams = orbit_cameras(torch.tensor([0.0, 90.0]), 0.0)
        >>> cams.positions.round(decimals=4).abs()  # front (0, -r, 0) and the subject's right (-r, 0, 0)
        tensor([[0.0000, 2.7000, 0.0000],
                [2.7000, 0.0000, 0.0000]])
    """
    width = _positive_int("width", width)
    height = width if height is None else _positive_int("height", height)
    device = _infer_device(device, azimuth_deg, elevation_deg, radius, fov_deg)
    work = _work_dtype(device)
    az, el, r, fov = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=work, device=device) for v in (azimuth_deg, elevation_deg, radius, fov_deg))
    )
    if not bool(torch.all(torch.isfinite(az))):
        raise ValueError("azimuth_deg must be finite")
    if not bool(torch.all((el > -90.0) & (el < 90.0))):
        raise ValueError(f"elevation_deg must lie in (-90, 90), got values in [{el.min().item()}, {el.max().item()}]")
    if not bool(torch.all((r > 0.0) & torch.isfinite(r))):
        raise ValueError(f"radius must be positive and finite, got min {r.min().item()}")
    if not bool(torch.all((fov > 0.0) & (fov < 180.0))):
        raise ValueError(f"fov_deg must lie in (0, 180), got values in [{fov.min().item()}, {fov.max().item()}]")

    c2w = look_at_c2w(azimuth_elevation_to_position(az, el, r))  # [..., 4, 4]
    focal = 0.5 * width / torch.tan(torch.deg2rad(fov) / 2)  # [...]
    K = intrinsics_matrix(focal, focal, torch.full_like(focal, width / 2), torch.full_like(focal, height / 2))
    return Cameras(c2w.to(dtype), K.to(dtype), width, height)


def view_azimuths(view_names: Sequence[str]) -> tuple[float, ...]:
    """Azimuth offsets (degrees) of named views (keys of :data:`VIEW_AZIMUTHS`) from the input view.

    Raises:
        ValueError: an unknown or repeated name, or an empty list.

    Example:
        >>> view_azimuths(("front", "back_right"))
        (0.0, 135.0)
    """
    names = tuple(view_names)
    unknown = [n for n in names if n not in VIEW_AZIMUTHS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"view names must be distinct names among {', '.join(VIEW_AZIMUTHS)}; got {list(names)}")
    return tuple(VIEW_AZIMUTHS[n] for n in names)


def facelift_views(
    input_azimuth_deg: _Scalar = 0.0,
    *,
    elevation_deg: _Scalar = 0.0,
    radius: _Scalar = REFERENCE_RADIUS,
    fov_deg: _Scalar = REFERENCE_FOV_DEG,
    resolution: int = REFERENCE_RESOLUTION,
    view_names: Sequence[str] = FACELIFT_VIEW_NAMES,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Cameras:
    """The FaceLift views relative to an input view: by default the six, in the reference order.

    View ``i`` sits at azimuth ``input_azimuth_deg + VIEW_AZIMUTHS[view_names[i]]`` (by default front,
    front_right, right, back, left, front_left); with the defaults these are exactly the cameras of the
    reference ``opencv_cameras.json``.

    Args:
        input_azimuth_deg: ``[...]`` or scalar azimuth of the input (front) view in degrees.
        elevation_deg: ``[...]`` or scalar elevation shared by the views.
        radius: ``[...]`` or scalar orbit radius.
        fov_deg: ``[...]`` or scalar horizontal field of view in degrees.
        resolution: square image size in pixels.
        view_names: the ``N`` views, in order (names of :data:`VIEW_AZIMUTHS`, e.g. :data:`EIGHT_VIEW_NAMES`).
        device: device of the result; by default that of the first tensor argument, else the CPU.
        dtype: floating dtype of ``c2w`` and ``K``.

    Returns:
        ``Cameras`` with batch shape ``[..., N]`` (``N = 6`` by default).

    Example:
        >>> facelift_views(torch.tensor([0.0, 30.0])).batch_shape
        torch.Size([2, 6])
        >>> facelift_views(view_names=EIGHT_VIEW_NAMES).batch_shape
        torch.Size([8])
    """
    offsets_deg = view_azimuths(view_names)
    device = _infer_device(device, input_azimuth_deg, elevation_deg, radius, fov_deg)
    work = _work_dtype(device)
    base, el, r, fov = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=work, device=device) for v in (input_azimuth_deg, elevation_deg, radius, fov_deg))
    )
    offsets = torch.tensor(offsets_deg, dtype=work, device=device)  # [N]
    return orbit_cameras(
        base[..., None] + offsets,  # [..., N]
        el[..., None],
        r[..., None],
        fov[..., None],
        resolution,
        device=device,
        dtype=dtype,
    )


def reference_ring_cameras(
    num_views: int = 32,
    elevation_deg: float = 20.0,
    radius: float = REFERENCE_RADIUS,
    resolution: int = REFERENCE_RESOLUTION,
    *,
    fov_deg: float = REFERENCE_FOV_DEG,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Cameras:
    """The reference reconstructor-training ring: ``num_views`` cameras evenly spaced around z.

    In the reference data, ring camera ``i`` sits at ``r * (cos e cos t_i, cos e sin t_i, sin e)`` with
    ``t_i = i * 360 / num_views`` degrees measured from +x toward +y (camera 0 on +x, the subject's left),
    looking at the origin with z up. In our azimuth convention that is azimuth ``270 - i * 360 / num_views``.

    Args:
        num_views: number of cameras on the ring (32 in the reference, a step of 11.25 degrees).
        elevation_deg: elevation of the ring in degrees.
        radius: orbit radius.
        resolution: square image size in pixels.
        fov_deg: horizontal field of view in degrees.
        device: device of the result (CPU by default).
        dtype: floating dtype of ``c2w`` and ``K``.

    Returns:
        ``Cameras`` with batch shape ``[num_views]``.

    Example:
        >>> reference_ring_cameras().positions[8].round(decimals=4).abs()  # t = 90 deg: +y, behind the head
        tensor([0.0000, 2.5372, 0.9235])
    """
    num_views = _positive_int("num_views", num_views)
    device = _infer_device(device)
    step = torch.arange(num_views, dtype=_work_dtype(device), device=device) * (360.0 / num_views)
    return orbit_cameras(270.0 - step, elevation_deg, radius, fov_deg, resolution, device=device, dtype=dtype)


def random_cameras(
    n: int,
    *,
    generator: torch.Generator | None = None,
    elevation_range: tuple[float, float] = (-30.0, 60.0),
    radius_range: tuple[float, float] = (REFERENCE_RADIUS, REFERENCE_RADIUS),
    fov_deg: float = REFERENCE_FOV_DEG,
    resolution: int = REFERENCE_RESOLUTION,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Cameras:
    """Random cameras looking at the origin, uniform in area over a band of the sphere.

    Azimuth is uniform in [0, 360); elevation is uniform in ``sin(elevation)`` within ``elevation_range``
    (i.e. uniform over the spherical band); the radius is uniform within ``radius_range``. Samples are
    drawn as one ``[n, 3]`` block from ``generator`` (on the generator's device), so a seeded generator
    gives the same cameras on every device, and the first ``k`` cameras do not depend on ``n``.

    Args:
        n: number of cameras, >= 0.
        generator: source of randomness; the global RNG when ``None``.
        elevation_range: ``(low, high)`` elevation in degrees, within (-90, 90).
        radius_range: ``(low, high)`` orbit radius, > 0.
        fov_deg: horizontal field of view in degrees.
        resolution: square image size in pixels.
        device: device of the result; the generator's device (or the CPU) by default.
        dtype: floating dtype of ``c2w`` and ``K``.

    Returns:
        ``Cameras`` with batch shape ``[n]``.

    Example:
        >>> cams = random_cameras(4, generator=torch.Generator().manual_seed(0))
        >>> cams.batch_shape, cams.width
        (torch.Size([4]), 512)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    lo_el, hi_el = (float(v) for v in elevation_range)
    if not -90.0 < lo_el <= hi_el < 90.0:
        raise ValueError(f"elevation_range must satisfy -90 < low <= high < 90, got {elevation_range}")
    lo_r, hi_r = (float(v) for v in radius_range)
    if not 0.0 < lo_r <= hi_r < math.inf:
        raise ValueError(f"radius_range must satisfy 0 < low <= high, got {radius_range}")

    sample_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, 3, generator=generator, device=sample_device, dtype=_work_dtype(sample_device))
    azimuth = 360.0 * u[:, 0]
    sin_lo, sin_hi = math.sin(math.radians(lo_el)), math.sin(math.radians(hi_el))
    elevation = torch.rad2deg(torch.asin(sin_lo + u[:, 1] * (sin_hi - sin_lo))).clamp(lo_el, hi_el)
    radius = lo_r + u[:, 2] * (hi_r - lo_r)
    device = sample_device if device is None else torch.device(device)
    return orbit_cameras(
        azimuth.to(device), elevation.to(device), radius.to(device), fov_deg, resolution, device=device, dtype=dtype
    )


def turntable_cameras(
    num_frames: int = 150,
    elevation_deg: float = 0.0,
    radius: float = REFERENCE_RADIUS,
    start_azimuth_deg: float = 0.0,
    *,
    fov_deg: float = REFERENCE_FOV_DEG,
    resolution: int = REFERENCE_RESOLUTION,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Cameras:
    """A full turn around the subject, as for the reference ``turntable.mp4`` (150 frames at 30 fps).

    Frame ``k`` sits at azimuth ``start_azimuth_deg + 360 * k / num_frames``: frame 0 is the front camera
    by default, and the last frame stops one step short of it so that the video loops seamlessly.

    Args:
        num_frames: number of frames.
        elevation_deg: elevation in degrees.
        radius: orbit radius.
        start_azimuth_deg: azimuth of frame 0 in degrees.
        fov_deg: horizontal field of view in degrees.
        resolution: square image size in pixels.
        device: device of the result (CPU by default).
        dtype: floating dtype of ``c2w`` and ``K``.

    Returns:
        ``Cameras`` with batch shape ``[num_frames]``.

    Example:
        >>> turntable_cameras(8).positions[2].round(decimals=4)  # a quarter turn: the subject's right
        tensor([-2.7000, -0.0000,  0.0000])
    """
    num_frames = _positive_int("num_frames", num_frames)
    device = _infer_device(device)
    step = torch.arange(num_frames, dtype=_work_dtype(device), device=device) * (360.0 / num_frames)
    return orbit_cameras(
        start_azimuth_deg + step, elevation_deg, radius, fov_deg, resolution, device=device, dtype=dtype
    )

