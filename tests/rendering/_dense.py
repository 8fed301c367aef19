"""Brute-force oracle for the rasteriser: every pixel against every Gaussian, pure autograd.

It reuses only the projection of ``_reference`` (tested separately against analytic footprints) and
re-implements compositing densely: alpha for all (pixel, Gaussian) pairs, a per-pixel front-to-back
cumulative product with the same threshold, clamp and termination rules. Small scenes only.
"""

from __future__ import annotations

import torch

from facelift.rendering import _reference as R


def dense_composite(proj: R.Projected, opacities, features, background, width, height):
    M, N = proj.depths.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=features.dtype) + 0.5, torch.arange(width, dtype=features.dtype) + 0.5, indexing="ij"
    )
    pix = torch.stack([xs, ys], -1).reshape(-1, 2)  # [HW, 2]
    colours, alphas, depths = [], [], []
    for m in range(M):
        visible = (proj.radii[m] > 0).all(-1)
        order = torch.argsort(torch.where(visible, proj.depths[m].detach(), torch.inf))
        order = order[visible[order]]
        mu, con, opa = proj.means2d[m, order], proj.conics[m, order], opacities[m, order]
        d = mu[None] - pix[:, None]  # [HW, G, 2]
        sigma = 0.5 * (con[:, 0] * d[..., 0] ** 2 + con[:, 2] * d[..., 1] ** 2) + con[:, 1] * d[..., 0] * d[..., 1]
        alpha = opa * torch.exp(-sigma)
        use = (sigma >= 0) & (alpha >= R.ALPHA_THRESHOLD)
        alpha = torch.where(use, alpha.clamp(max=R.ALPHA_MAX), torch.zeros_like(alpha))
        t_incl = torch.cumprod(1 - alpha, dim=1)
        t_excl = torch.cat([torch.ones_like(t_incl[:, :1]), t_incl[:, :-1]], 1)
        w = torch.where(t_incl > R.TRANSMITTANCE_MIN, alpha * t_excl, torch.zeros_like(alpha))
        a = w.sum(1)
        colours.append(w @ features[m, order] + (1 - a)[:, None] * background[m])
        alphas.append(a)
        depths.append(torch.where(a > 0, (w @ proj.depths[m, order]) / a.clamp_min(1e-10), torch.zeros_like(a)))
    shape = (M, height, width)
    return (
        torch.stack(colours).reshape(*shape, -1),
        torch.stack(alphas).reshape(shape),
        torch.stack(depths).reshape(shape),
    )
