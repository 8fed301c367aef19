"""The typed Gaussian container.

Storage convention (one, everywhere): **activated** values.

=============  ======================  =====================================================
field          shape                   meaning
=============  ======================  =====================================================
means          ``[..., N, 3]``         centres in the world frame
quats          ``[..., N, 4]``         rotations, wxyz; need not be normalised (consumers do)
scales         ``[..., N, 3]``         standard deviations along the local axes, > 0
opacities      ``[..., N]``            in [0, 1]
sh             ``[..., N, K, 3]``      spherical-harmonic colour coefficients, K = (deg+1)^2;
                                       ``sh[..., 0, :]`` is the DC term ``f_dc``
=============  ======================  =====================================================

Colour from the DC term follows 3DGS: ``rgb = 0.5 + SH_C0 * f_dc`` (clamped at >= 0 when rendering).
The raw (pre-activation) forms exist only at file boundaries (PLY stores log-scales and opacity logits)
and inside models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["Gaussians", "SH_C0", "rgb_to_sh_dc", "sh_dc_to_rgb", "sh_degree_from_coeffs"]

SH_C0 = 0.28209479177387814
"""Zeroth-order real spherical harmonic, 1 / (2 sqrt(pi))."""


def rgb_to_sh_dc(rgb: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """DC coefficient ``f_dc`` that renders as ``rgb`` (inverse of :func:`sh_dc_to_rgb`)."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(f_dc: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """View-independent colour of a DC coefficient, ``0.5 + SH_C0 * f_dc`` (not clamped)."""
    return 0.5 + SH_C0 * f_dc


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """SH degree ``d`` with ``(d + 1)^2 == num_coeffs``; raises for other counts."""
    d = int(round(math.sqrt(num_coeffs))) - 1
    if d < 0 or (d + 1) ** 2 != num_coeffs:
        raise ValueError(f"number of SH coefficients must be a square (1, 4, 9, 16), got {num_coeffs}")
    return d


@dataclass(frozen=True)
class Gaussians:
    """A set (or batch of sets) of 3D Gaussians, activated storage (see the module docstring).

    Indexing applies to the leading ``[..., N]`` axes of every field: ``g[mask]`` keeps Gaussians of an
    unbatched set, ``g[0]`` takes the first scene of a batched one.

    Example:
        >>> g = Gaussians.from_rgb(torch.zeros(5, 3), torch.ones(5, 3) * 0.01, torch.ones(5), torch.rand(5, 3))
        >>> g.num, g.sh_degree, g[g.opacities > 0.5].num
        (5, 0, 5)
    """

    means: Float[Tensor, "*batch N 3"]
    quats: Float[Tensor, "*batch N 4"]
    scales: Float[Tensor, "*batch N 3"]
    opacities: Float[Tensor, "*batch N"]
    sh: Float[Tensor, "*batch N K 3"]

    def __post_init__(self) -> None:
        shape = self.means.shape[:-1]
        if self.means.ndim < 2 or self.means.shape[-1] != 3:
            raise ValueError(f"means must be [..., N, 3], got {tuple(self.means.shape)}")
        checks = {
            "quats": (self.quats, (*shape, 4)),
            "scales": (self.scales, (*shape, 3)),
            "opacities": (self.opacities, tuple(shape)),
        }
        for name, (t, want) in checks.items():
            if tuple(t.shape) != tuple(want):
                raise ValueError(f"{name} must be {list(want)} to match means {tuple(self.means.shape)}, got {tuple(t.shape)}")
        if self.sh.shape[:-2] != shape or self.sh.shape[-1] != 3:
            raise ValueError(f"sh must be [..., N, K, 3] to match means {tuple(self.means.shape)}, got {tuple(self.sh.shape)}")
        sh_degree_from_coeffs(self.sh.shape[-2])

    # ---- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_rgb(
        cls,
        means: Float[Tensor, "*batch N 3"],
        scales: Float[Tensor, "*batch N 3"],
        opacities: Float[Tensor, "*batch N"],
        rgb: Float[Tensor, "*batch N 3"],
        quats: Float[Tensor, "*batch N 4"] | None = None,
    ) -> "Gaussians":
        """Degree-0 Gaussians with colour ``rgb`` in [0, 1]; identity rotations when ``quats`` is None."""
        if quats is None:
            quats = torch.zeros(*means.shape[:-1], 4, dtype=means.dtype, device=means.device)
            quats[..., 0] = 1.0
        return cls(means, quats, scales, opacities, rgb_to_sh_dc(rgb)[..., None, :])

    # ---- shape ---------------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        """``[..., N]``: batch shape plus the Gaussian axis."""
        return self.means.shape[:-1]

    @property
    def num(self) -> int:
        """Number of Gaussians per set, ``N``."""
        return self.means.shape[-2]

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(self.sh.shape[-2])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def rgb(self) -> Float[Tensor, "*batch N 3"]:
        """View-independent colour from the DC term (unclamped)."""
        return sh_dc_to_rgb(self.sh[..., 0, :])

    def _map(self, fn) -> "Gaussians":
        return Gaussians(*(fn(getattr(self, f.name)) for f in fields(self)))

    def __getitem__(self, index) -> "Gaussians":
        if isinstance(index, Tensor) and index.dtype == torch.bool and index.shape != self.shape[: index.ndim]:
            raise IndexError(f"boolean mask {tuple(index.shape)} does not match Gaussians shape {tuple(self.shape)}")
        return self._map(lambda t: t[index])

    def __len__(self) -> int:
        return self.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Gaussians":
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> "Gaussians":
        return self._map(lambda t: t.detach())

    def clone(self) -> "Gaussians":
        return self._map(lambda t: t.clone())

    def reshape(self, *shape: int) -> "Gaussians":
        """Reshape the leading ``[..., N]`` axes (e.g. ``reshape(-1)`` merges scenes into one set)."""
        n = len(self.shape)
        return self._map(lambda t: t.reshape(*shape, *t.shape[n:]))

    def with_sh_degree(self, degree: int) -> "Gaussians":
        """Truncate or zero-pad the SH coefficients to ``degree``."""
        k = (degree + 1) ** 2
        sh = self.sh
        if sh.shape[-2] >= k:
            sh = sh[..., :k, :]
        else:
            pad = sh.new_zeros(*sh.shape[:-2], k - sh.shape[-2], 3)
            sh = torch.cat([sh, pad], dim=-2)
        return Gaussians(self.means, self.quats, self.scales, self.opacities, sh)

    @staticmethod
    def cat(items: Sequence["Gaussians"], dim: int = -1) -> "Gaussians":
        """Concatenate along the Gaussian axis (``dim=-1`` of ``shape``) or a batch axis.

        SH degrees are promoted to the largest among the inputs (zero-padded).
        """
        if not items:
            raise ValueError("Gaussians.cat needs at least one input")
        degree = max(g.sh_degree for g in items)
        items = [g.with_sh_degree(degree) for g in items]
        ndim = len(items[0].shape)
        d = dim if dim >= 0 else ndim + dim
        if not 0 <= d < ndim:
            raise ValueError(f"dim {dim} out of range for Gaussians of shape {tuple(items[0].shape)}")
        return Gaussians(*(torch.cat([getattr(g, f.name) for g in items], dim=d) for f in fields(Gaussians)))
