"""A small procedural Gaussian bust: the foundation's demo scene, until the synthetic engine exists.

Flat (surfel-like) Gaussians are sampled on a union of ellipsoids (head, hair shell, eyes, irises, nose,
lips, ears, neck, torso) in the reference world frame (z up, the face toward -y), deterministic per seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from facelift.cameras.conventions import rotmat_to_quat
from facelift.gaussians.container import Gaussians

__all__ = ["demo_bust"]


@dataclass(frozen=True)
class _Part:
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    colour: tuple[float, float, float]
    solid: bool = True
    """Solid parts hide the surface of other parts inside them; shells (hair) do not."""


def _parts(skin: tuple[float, float, float], hair: tuple[float, float, float], shirt: tuple[float, float, float]) -> list[_Part]:
    lips = (min(1.0, skin[0] * 0.95 + 0.1), skin[1] * 0.55, skin[2] * 0.55)
    return [
        _Part((0.0, 0.0, 0.12), (0.52, 0.6, 0.7), skin),
        _Part((0.0, 0.04, 0.2), (0.56, 0.63, 0.69), hair, solid=False),
        _Part((0.19, -0.5, 0.2), (0.075, 0.06, 0.06), (0.95, 0.95, 0.93)),
        _Part((-0.19, -0.5, 0.2), (0.075, 0.06, 0.06), (0.95, 0.95, 0.93)),
        _Part((0.19, -0.555, 0.2), (0.032, 0.012, 0.032), (0.25, 0.35, 0.55)),
        _Part((-0.19, -0.555, 0.2), (0.032, 0.012, 0.032), (0.25, 0.35, 0.55)),
        _Part((0.0, -0.6, 0.02), (0.07, 0.1, 0.14), skin),
        _Part((0.0, -0.54, -0.24), (0.15, 0.05, 0.035), lips),
        _Part((0.53, 0.0, 0.1), (0.05, 0.1, 0.16), skin),
        _Part((-0.53, 0.0, 0.1), (0.05, 0.1, 0.16), skin),
        _Part((0.0, 0.05, -0.6), (0.24, 0.24, 0.35), skin),
        _Part((0.0, 0.1, -1.05), (0.85, 0.42, 0.32), shirt),
    ]


def _frame_from_normal(n: torch.Tensor) -> torch.Tensor:
    """``[M, 3, 3]`` rotations whose third column is the unit normal ``n [M, 3]``."""
    helper = torch.where(n[:, 2:3].abs() < 0.9, torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]))
    t1 = torch.nn.functional.normalize(torch.linalg.cross(helper, n), dim=-1)
    t2 = torch.linalg.cross(n, t1)
    return torch.stack([t1, t2, n], -1)


def _inside(points: torch.Tensor, part: _Part, margin: float = 0.995) -> torch.Tensor:
    q = (points - torch.tensor(part.centre)) / torch.tensor(part.radii)
    return (q * q).sum(-1) < margin


def demo_bust(num: int = 30_000, seed: int = 0) -> Gaussians:
    """A deterministic procedural bust of about ``num`` flat Gaussians (fewer after hidden-surface removal).

    Args:
        num: Gaussians sampled before removing those hidden inside other parts.
        seed: picks skin, hair and clothing colours and the sample positions.

    Returns:
        ``[N]`` Gaussians with degree-0 colour. The head lies inside the reference crop box
        (``REFERENCE_CROP_BOX``); the torso reaches below its floor (z down to about -1.37).

    Example:
        >>> demo_bust(2000).num > 1000
        True
    """
    gen = torch.Generator().manual_seed(seed)
    tone = torch.rand(1, generator=gen).item()
    skin = (0.95 - 0.45 * tone, 0.78 - 0.45 * tone, 0.66 - 0.42 * tone)
    hair = tuple((torch.rand(3, generator=gen) * 0.25 + torch.tensor([0.12, 0.08, 0.05])).tolist())
    shirt = tuple(torch.rand(3, generator=gen).mul(0.7).add(0.15).tolist())
    parts = _parts(skin, hair, shirt)  # type: ignore[arg-type]
    # Knud Thomsen's approximation of each ellipsoid's surface area decides its share of the samples.
    p = 1.6075
    areas = torch.tensor(
        [4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p) for a, b, c in (pt.radii for pt in parts)]
    )
    counts = (areas / areas.sum() * num).round().long().clamp_min(64)
    means, quats, scales, colours = [], [], [], []
    for part, count in zip(parts, counts.tolist()):
        d = torch.nn.functional.normalize(torch.randn(count, 3, generator=gen), dim=-1)
        radii = torch.tensor(part.radii)
        x = torch.tensor(part.centre) + d * radii
        if part is parts[1]:  # hair: a cap over the top and back of the head, ragged at its edge
            ragged = 0.06 * torch.sin(17 * d[:, 0]) * torch.cos(11 * d[:, 1])
            keep = (d[:, 2] + 0.55 * d[:, 1].clamp_min(0) - 0.35 * (-d[:, 1]).clamp_min(0) + ragged) > 0.05
            x, d = x[keep], d[keep]
        hidden = torch.zeros(len(x), dtype=torch.bool)
        for other in parts:
            if other is not part and other.solid:
                hidden |= _inside(x, other)
        x, d = x[~hidden], d[~hidden]
        normal = torch.nn.functional.normalize(d / radii, dim=-1)  # ellipsoid normal ∝ (x - c) / r²
        spacing = math.sqrt(areas[parts.index(part)].item() / count)
        tangent = 0.75 * spacing
        means.append(x)
        quats.append(rotmat_to_quat(_frame_from_normal(normal)))
        scales.append(torch.tensor([tangent, tangent, 0.15 * tangent]).expand(len(x), 3))
        # Subtle shading variation so the surface does not look flat; strand-like streaks on the hair.
        shade = 1.0 + 0.06 * torch.randn(len(x), 1, generator=gen)
        if not part.solid:
            shade = shade * (0.8 + 0.2 * torch.sin(60 * torch.atan2(d[:, 0:1], -d[:, 1:2])))
        colours.append((torch.tensor(part.colour) * shade).clamp(0, 1))
    means_t = torch.cat(means)
    opac = torch.full((len(means_t),), 0.95)
    return Gaussians.from_rgb(means_t, torch.cat(scales).contiguous(), opac, torch.cat(colours), quats=torch.cat(quats))
