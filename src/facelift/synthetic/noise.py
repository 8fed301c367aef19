"""Procedural noise shared by the textures (``render.py``) and the surface relief (``raycast.py``).

All functions are pure, elementwise over leading dimensions, and give identical values on CPU and CUDA
up to float rounding.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

__all__ = ["lattice_hash", "value_noise", "fbm"]


def lattice_hash(p: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch"]:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point ``p`` (given as floats)."""
    h = (p[..., 0] * 127.1 + p[..., 1] * 311.7 + p[..., 2] * 74.7).sin() * 43758.5453
    return h - h.floor()


def value_noise(p: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch"]:
    """Smooth 3D value noise in [0, 1]: trilinear interpolation with smoothstep weights over a hashed lattice.

    Example:
        >>> import torch
        >>> v = value_noise(torch.rand(100, 3) * 10)
        >>> bool(((v >= 0) & (v <= 1)).all())
        True
    """
    i = p.floor()
    f = p - i
    w = f * f * (3 - 2 * f)
    wx, wy, wz = w.unbind(-1)
    # Per-axis terms of the hash's dot product at both lattice neighbours, each from an exact integer,
    # so that a lattice point hashes identically from every cell that touches it (continuity).
    hx = (i[..., 0] * 127.1, (i[..., 0] + 1) * 127.1)
    hy = (i[..., 1] * 311.7, (i[..., 1] + 1) * 311.7)
    hz = (i[..., 2] * 74.7, (i[..., 2] + 1) * 74.7)

    def corner(dx: int, dy: int, dz: int) -> Tensor:
        h = (hx[dx] + hy[dy] + hz[dz]).sin() * 43758.5453
        return h - h.floor()

    def along_x(dy: int, dz: int) -> Tensor:
        lo = corner(0, dy, dz)
        return lo + (corner(1, dy, dz) - lo) * wx

    x00, x10, x01, x11 = along_x(0, 0), along_x(1, 0), along_x(0, 1), along_x(1, 1)
    y0 = x00 + (x10 - x00) * wy
    y1 = x01 + (x11 - x01) * wy
    return y0 + (y1 - y0) * wz


def fbm(p: Float[Tensor, "*batch 3"], octaves: int = 3) -> Float[Tensor, "*batch"]:
    """Fractal sum of ``octaves`` value-noise octaves (gain 0.5, lacunarity 2.03), normalised to [0, 1]."""
    total, amp, norm = 0.0, 1.0, 0.0
    for _ in range(octaves):
        total = total + amp * value_noise(p)
        norm += amp
        amp *= 0.5
        p = p * 2.03 + 1.7
    return total / norm
