"""Tiny, seeded Gaussian fixtures shared by the gaussians tests."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from facelift.gaussians import Gaussians


def random_gaussians(
    n: int = 16,
    degree: int = 0,
    batch: tuple[int, ...] = (),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Gaussians:
    """A reproducible set of ``[*batch, n]`` Gaussians with non-normalised quaternions and SH degree ``degree``."""
    gen = torch.Generator().manual_seed(seed)
    shape = (*batch, n)
    k = (degree + 1) ** 2
    return Gaussians(
        means=torch.rand(*shape, 3, generator=gen, dtype=dtype) * 2 - 1,
        quats=torch.randn(*shape, 4, generator=gen, dtype=dtype) * 2,
        scales=torch.rand(*shape, 3, generator=gen, dtype=dtype) * 0.2 + 1e-3,
        opacities=torch.rand(*shape, generator=gen, dtype=dtype) * 0.98 + 0.01,
        sh=torch.randn(*shape, k, 3, generator=gen, dtype=dtype),
    )


@pytest.fixture
def make_gaussians() -> Callable[..., Gaussians]:
    """Factory fixture: ``make_gaussians(n=16, degree=0, batch=(), seed=0, dtype=torch.float32)``."""
    return random_gaussians
