"""Shared benchmark helpers: timing, peak memory, a same-process baseline, and benchmark scenes."""

from __future__ import annotations

import math
import resource
import statistics
import time
from typing import Callable

import torch

from facelift.cameras import camera_rays, orbit_cameras
from facelift.gaussians import Gaussians


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline_seconds(device: torch.device, repeats: int = 5) -> float:
    """A fixed memory-bound workload (10 x exp-mul-add over 2^24 floats, plus a 2^22 sort), timed in
    this process so that benchmark figures can be reported as ratios that survive a noisy machine."""
    x = torch.rand(2**24, device=device)
    keys = torch.randint(0, 2**20, (2**22,), device=device, dtype=torch.int32)

    def work():
        y = x
        for _ in range(10):
            y = torch.exp(y) * x + 1.0
        torch.sort(keys, stable=True)
        return y

    return median(timeit(work, device, repeats=repeats))


def pixel_aligned_head_scene(
    num_views: int = 4,
    resolution: int = 128,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    scale_factor: float = 0.7,
) -> Gaussians:
    """Pixel-aligned Gaussians as a reconstructor would emit them: one per input pixel.

    ``num_views`` cameras on the reference orbit look at an ellipsoidal head (radii 0.75, 0.85, 0.95);
    pixels whose ray hits it get a Gaussian on the surface with a scale of ``scale_factor`` times the
    pixel footprint at that depth and an opacity in [0.3, 1]; the other pixels get near-transparent
    (opacity 0.01) Gaussians at the ray's closest point to the origin, like a trained model's background.

    Returns:
        ``[num_views * resolution**2]`` Gaussians.
    """
    gen = torch.Generator().manual_seed(seed)
    az = torch.arange(num_views, dtype=torch.float64) * (360.0 / num_views)
    cams = orbit_cameras(az, 0.0, width=resolution, dtype=torch.float64)
    origins, dirs = camera_rays(cams)  # [V, H, W, 3]
    radii = torch.tensor([0.75, 0.85, 0.95], dtype=torch.float64)
    o, d = origins / radii, dirs / radii
    a = (d * d).sum(-1)
    b = 2 * (o * d).sum(-1)
    c = (o * o).sum(-1) - 1
    disc = b * b - 4 * a * c
    hit = disc > 0
    t = torch.where(hit, (-b - torch.sqrt(disc.clamp_min(0))) / (2 * a), -(origins * dirs).sum(-1))
    means = (origins + t[..., None] * dirs).reshape(-1, 3)
    n = means.shape[0]
    focal = float(cams.fx[0])
    scales = (t / focal * scale_factor).reshape(-1, 1) * (0.7 + 0.6 * torch.rand(n, 3, generator=gen, dtype=torch.float64))
    hit = hit.reshape(-1)
    opacities = torch.where(hit, 0.3 + 0.7 * torch.rand(n, generator=gen, dtype=torch.float64), torch.full((n,), 0.01, dtype=torch.float64))
    rgb = torch.rand(n, 3, generator=gen, dtype=torch.float64)
    quats = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    g = Gaussians.from_rgb(means, scales, opacities, rgb, quats=quats)
    return g.to(device=device, dtype=torch.float32)


def target_cameras(num_views: int = 8, resolution: int = 128, *, device: torch.device | str = "cpu"):
    """``num_views`` cameras evenly around the head at elevation 20 (the reference ring's elevation)."""
    az = torch.arange(num_views, dtype=torch.float32) * (360.0 / num_views) + 10.0
    return orbit_cameras(az, 20.0, width=resolution, device=device)


def fmt_ratio(value: float, base: float) -> str:
    return f"{value:.3f} s ({value / base:.2f}x baseline)" if math.isfinite(value) else "n/a"
