"""Portable pure-PyTorch Gaussian rasteriser: the reference implementation (CPU and CUDA).

It computes what the 3DGS / gsplat CUDA rasteriser computes, with the same constants, so the two
backends agree to float32 rounding (see ``tests/rendering`` and ``benchmarks/render_parity.py``):

1. **EWA projection** (Zwicker et al. 2001; 3DGS eq. 5): ``cov2d = J W Σ W^T J^T + eps2d I`` with the
   local-affine Jacobian ``J`` of the pinhole projection, its ``x/z, y/z`` clamped to 1.3x the image
   (gsplat ``persp_proj``), and ``eps2d = 0.3`` px² as the low-pass filter.
2. **Opacity-aware footprint**: the rectangle ``mean2d ± ceil(e sqrt(cov2d_ii))`` with
   ``e = min(3.33, sqrt(2 ln(255 o)))`` contains every pixel where ``alpha >= 1/255``.
3. **Binning and depth sort**: Gaussians are depth-sorted per image; for each, the pixels whose
   centres lie inside its ``alpha >= 1/255`` ellipse are generated row by row, in that order. A stable
   sort of these (Gaussian, pixel) pairs by pixel then yields, for each pixel, its front-to-back list:
   the tile lists of the CUDA rasteriser with a tile of one pixel, which avoids evaluating the empty
   part of every tile.
4. **Front-to-back compositing with early termination**: ``alpha = min(0.999, o exp(-σ))``,
   ``T_i = Π_{j<i} (1 - alpha_j)``, a pixel stops before the Gaussian that would take ``T`` to
   ``<= 1e-4``. Transmittances come from a segmented prefix sum of ``log(1 - alpha)`` in float64 (a
   running sum over millions of pairs keeps full precision). Compositing has a hand-written backward
   (:class:`_PairComposite`, the 3DGS gradients with suffix sums); projection and colours use autograd.

Everything runs in the dtype of the inputs (float32 normally, float64 for gradient checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from facelift.cameras.conventions import quat_to_rotmat

ALPHA_THRESHOLD = 1.0 / 255.0
"""Pairs with a smaller alpha are skipped (3DGS, gsplat)."""
ALPHA_MAX = 0.999
"""Alpha is clamped to this value (gsplat; 3DGS uses 0.99)."""
TRANSMITTANCE_MIN = 1e-4
"""A pixel stops before the Gaussian that would take its transmittance to this value or below."""
MAX_EXTEND = 3.33
"""Footprint half-size in standard deviations for fully opaque Gaussians."""


@dataclass
class Projected:
    """Per-image screen-space Gaussians, all ``[M, N, ...]`` for M images of N Gaussians.

    Attributes:
        means2d: ``[M, N, 2]`` pixel coordinates (pixel centres at +0.5).
        conics: ``[M, N, 3]`` inverse 2D covariance ``(a, b, c)`` of ``[[a, b], [b, c]]``.
        depths: ``[M, N]`` camera-frame z.
        radii: ``[M, N, 2]`` integer footprint half-sizes in pixels; 0 where culled.
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    w2c: Tensor,
    K: Tensor,
    width: int,
    height: int,
    *,
    eps2d: float = 0.3,
    near: float = 0.01,
    far: float = 1e10,
) -> Projected:
    """EWA-project Gaussians of ``S`` scenes into ``M = S * C`` images.

    Args:
        means, quats, scales, opacities: ``[S, N, 3]``, ``[S, N, 4]``, ``[S, N, 3]``, ``[S, N]``.
        w2c, K: ``[S, C, 4, 4]`` and ``[S, C, 3, 3]``.
        width, height: image size.
        eps2d: low-pass filter added to the 2D covariance (px²).
        near, far: camera-frame z range; Gaussians outside are culled.

    Returns:
        :class:`Projected` with ``M = S * C`` images, scene-major.
    """
    S, N = means.shape[:2]
    C = w2c.shape[1]
    # Σ = (R_q diag(s)) (R_q diag(s))^T, so the projected covariance is A A^T with A = J W R_q diag(s).
    rs = quat_to_rotmat(quats) * scales[..., None, :]  # [S, N, 3, 3]
    rot_w = w2c[..., :3, :3]  # [S, C, 3, 3]
    p_cam = torch.einsum("scij,snj->scni", rot_w, means) + w2c[..., None, :3, 3]  # [S, C, N, 3]
    x, y, z = p_cam.unbind(-1)
    in_range = (z > near) & (z < far)
    z = torch.where(in_range, z, torch.ones_like(z))
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]  # [S, C, 1]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    rz = 1.0 / z
    # Clamp the Jacobian's evaluation point to 1.3x the image (as gsplat's persp_proj) for stability.
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    tx = z * torch.minimum((width - cx) / fx + 0.3 * tan_x, torch.maximum(-(cx / fx + 0.3 * tan_x), x * rz))
    ty = z * torch.minimum((height - cy) / fy + 0.3 * tan_y, torch.maximum(-(cy / fy + 0.3 * tan_y), y * rz))
    # J = [[fx/z, 0, -fx tx/z²], [0, fy/z, -fy ty/z²]]; rows of J W.
    j0 = torch.stack([fx * rz, torch.zeros_like(rz), -fx * tx * rz * rz], -1)  # [S, C, N, 3]
    j1 = torch.stack([torch.zeros_like(rz), fy * rz, -fy * ty * rz * rz], -1)
    jw0 = torch.einsum("scni,scij->scnj", j0, rot_w)
    jw1 = torch.einsum("scni,scij->scnj", j1, rot_w)
    a0 = torch.einsum("scnj,snjk->scnk", jw0, rs)  # first row of A, [S, C, N, 3]
    a1 = torch.einsum("scnj,snjk->scnk", jw1, rs)
    cov_a = (a0 * a0).sum(-1) + eps2d
    cov_b = (a0 * a1).sum(-1)
    cov_c = (a1 * a1).sum(-1) + eps2d
    det = cov_a * cov_c - cov_b * cov_b
    valid = in_range & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([cov_c / det, -cov_b / det, cov_a / det], -1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)

    with torch.no_grad():
        opa = opacities[:, None, :].expand(S, C, N)
        valid = valid & (opa >= ALPHA_THRESHOLD)
        extend = torch.sqrt(2.0 * torch.log(opa.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp(max=MAX_EXTEND)
        rx = torch.ceil(extend * torch.sqrt(cov_a.detach()))
        ry = torch.ceil(extend * torch.sqrt(cov_c.detach()))
        u, v = means2d.detach().unbind(-1)
        valid = valid & (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)
        radii = torch.where(valid[..., None], torch.stack([rx, ry], -1), torch.zeros_like(means2d)).to(torch.int32)
    M = S * C
    return Projected(means2d.reshape(M, N, 2), conics.reshape(M, N, 3), p_cam[..., 2].reshape(M, N), radii.reshape(M, N, 2))


def _ellipse_pairs(
    u: Tensor, v: Tensor, conic: Tensor, level: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Pixels whose centres lie inside each Gaussian's ``alpha >= 1/255`` ellipse, row by row.

    The ellipse is ``0.5 (a dx² + 2 b dx dy + c dy²) <= level`` with ``level = ln(o / (1/255))`` (capped
    at ``MAX_EXTEND² / 2``), i.e. exactly the pixels the CUDA rasteriser would composite; a small margin
    keeps rounding on the safe side (the alpha test in :func:`composite` is the final word).

    Args:
        u, v: ``[G]`` pixel-space centres of the (visible, ordered) Gaussians.
        conic: ``[G, 3]`` inverse covariances ``(a, b, c)``.
        level: ``[G]`` ellipse level.
        width, height: image size.

    Returns:
        ``(owner [P], px [P], py [P])``: index into the G Gaussians (non-decreasing) and pixel coordinates.
    """
    a, b, c = conic.unbind(-1)
    det = (a * c - b * b).clamp_min(1e-20)
    two_l = 2.0 * level * (1.0 + 1e-4) + 1e-6
    # y-extent of the ellipse: |dy| <= sqrt(2L a / det) (= sqrt(2L cov_yy)).
    ey = torch.sqrt(two_l * a / det)
    y0 = torch.ceil(v - ey - 0.5).clamp(0, height - 1)
    y1 = torch.floor(v + ey - 0.5).clamp(-1, height - 1)
    rows = (y1 - y0 + 1).clamp_min(0).long()
    n_rows = int(rows.sum())
    owner_row = torch.repeat_interleave(rows, output_size=n_rows)

    def per_row(x: Tensor) -> Tensor:
        return x.index_select(0, owner_row)

    # Row r of Gaussian g is y0[g] + (r - first row of g).
    py = per_row(y0 - (torch.cumsum(rows, 0) - rows).to(y0.dtype)) + torch.arange(n_rows, device=u.device, dtype=u.dtype)
    # x-span of the ellipse on this row: a dx² + 2 b dy dx + (c dy² - 2L) <= 0.
    dy = py + 0.5 - per_row(v)
    ar, br = per_row(a), per_row(b)
    disc = (br * br - ar * per_row(c)) * dy * dy + ar * per_row(two_l)
    half = torch.sqrt(disc.clamp_min(0.0)) / ar
    xc = per_row(u) - br * dy / ar
    x0 = torch.ceil(xc - half - 0.5).clamp(0, width - 1)
    x1 = torch.floor(xc + half - 0.5).clamp(-1, width - 1)
    cols = (x1 - x0 + 1).clamp_min(0).long()
    cols = torch.where(disc >= 0, cols, torch.zeros_like(cols))
    n_pairs = int(cols.sum())
    row_of_pair = torch.repeat_interleave(cols, output_size=n_pairs)
    px = (x0.long() - (torch.cumsum(cols, 0) - cols)).index_select(0, row_of_pair) + torch.arange(n_pairs, device=u.device)
    return owner_row.index_select(0, row_of_pair), px, py.long().index_select(0, row_of_pair)


@dataclass
class _Pairs:
    """Pair structure of one image (no gradients), sorted by pixel and front to back within a pixel.

    Pair ``i`` covers pixel ``pixel[i]`` (``py * W + px``) with Gaussian ``owner[i]``; Gaussians are indexed
    in front-to-back order, so after the stable sort by pixel each pixel's pairs are contiguous and in
    depth order. ``seg[i]`` numbers the pixel segment of pair ``i``; ``seg_first`` / ``seg_last`` hold each
    segment's first and last pair index. Per-Gaussian tables (a few hundred KB) are gathered from and
    scattered into in this order, which stays cache-resident.
    """

    owner: Tensor
    pixel: Tensor
    px: Tensor
    py: Tensor
    seg: Tensor
    seg_first: Tensor
    seg_last: Tensor


def _build_pairs(params_t: Tensor, width: int, height: int) -> _Pairs:
    """Pairs of one image whose Gaussians (``params_t [6, G]``, see :func:`_pair_alpha`) are front to back."""
    u, v, ca, cb, cc, opac = params_t
    level = torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD).clamp(max=0.5 * MAX_EXTEND**2)
    owner, px, py = _ellipse_pairs(u, v, torch.stack([ca, cb, cc], -1), level, width, height)
    pixel = py * width + px
    # A stable sort by pixel keeps the front-to-back order in which pairs were generated.
    pixel_sorted, perm = torch.sort(pixel.to(torch.int32) if height * width < 2**31 else pixel, stable=True)
    pixel_sorted = pixel_sorted.long()
    n = pixel.numel()
    first = torch.ones(n, dtype=torch.bool, device=pixel.device)
    first[1:] = pixel_sorted[1:] != pixel_sorted[:-1]
    seg_first = first.nonzero()[:, 0]
    seg_last = torch.cat([seg_first[1:] - 1, seg_first.new_tensor([n - 1])]) if n else seg_first
    seg = torch.cumsum(first, 0) - 1
    dtype = params_t.dtype
    px_c = (pixel_sorted % width).to(dtype) + 0.5
    py_c = torch.div(pixel_sorted, width, rounding_mode="floor").to(dtype) + 0.5
    return _Pairs(owner.index_select(0, perm), pixel_sorted, px_c, py_c, seg, seg_first, seg_last)


def _pair_alpha(params_t: Tensor, pairs: _Pairs):
    """Per pair: ``(alpha, exp(-sigma), dx, dy)``, alpha clamped and cut at the threshold.

    ``params_t`` is the channel-first table ``[6, G]`` of ``(u, v, a, b, c, opacity)`` per Gaussian:
    1-D gathers from contiguous rows are several times faster than multi-column gathers on CPU.
    """
    u, v, ca, cb, cc, o = (params_t[k].index_select(0, pairs.owner) for k in range(6))
    dx = u - pairs.px
    dy = v - pairs.py
    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    g = torch.exp(-sigma)
    alpha = o * g
    use = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(use, alpha.clamp(max=ALPHA_MAX), torch.zeros_like(alpha))
    return alpha, g, dx, dy


def _segment_exclusive_log_t(alpha: Tensor, pairs: _Pairs) -> tuple[Tensor, Tensor]:
    """Per pair: ``(log T_exclusive, log T_inclusive)`` in float64, segment by segment."""
    log_1m = torch.log1p(-alpha).double()
    csum = torch.cumsum(log_1m, 0)
    offset = (csum.index_select(0, pairs.seg_first) - log_1m.index_select(0, pairs.seg_first)).index_select(0, pairs.seg)
    log_t_incl = csum - offset
    return log_t_incl - log_1m, log_t_incl


class _PairComposite(torch.autograd.Function):
    """Front-to-back compositing over per-image pair lists, with a hand-written backward.

    Forward, per pixel p with pairs i in depth order: ``T_i = Π_{j<i} (1 - α_j)``, ``w_i = α_i T_i`` for
    pairs before termination, ``acc[p] = Σ_i w_i [f_i, 1]``.
    Backward (3DGS supplementary): with ``g_i = <dL/dacc[p], [f_i, 1]>`` and the suffix sum
    ``S_i = Σ_{k>i} g_k w_k``, ``dL/dα_i = g_i T_i - S_i / (1 - α_i)`` and ``dL/df_i = w_i dL/dacc[p]``;
    then ``α = o exp(-σ)`` with ``σ = ½ (a dx² + c dy²) + b dx dy`` gives the parameter gradients.

    Images are processed one at a time, so every temporary stays a few MB (in cache and in the
    allocator's free lists), and all gathers and scatters are 1-D over channel-first tables.
    Input: per visible Gaussian ``params [G, 6] = (u, v, a, b, c, opacity)`` and ``feats [G, F]``; the
    Gaussians of image m are rows ``bounds[m]``, front to back. Output: ``acc [M, F + 1, H * W]``.
    """

    @staticmethod
    def forward(ctx, params, feats, bounds: list[tuple[int, int]], width: int, height: int):
        f_dim = feats.shape[1]
        params_t = params.t().contiguous()  # [6, G]
        feats_t = feats.t().contiguous()  # [F, G]
        acc = torch.zeros(len(bounds), f_dim + 1, height * width, dtype=feats.dtype, device=feats.device)
        saved = []
        for m, (g0, g1) in enumerate(bounds):
            p_m = params_t[:, g0:g1]
            pairs = _build_pairs(p_m, width, height)
            alpha, gauss, dx, dy = _pair_alpha(p_m, pairs)
            log_t_excl, log_t_incl = _segment_exclusive_log_t(alpha, pairs)
            alive = log_t_incl > math.log(TRANSMITTANCE_MIN)  # stop before T would reach <= 1e-4
            trans = torch.where(alive, torch.exp(log_t_excl), torch.zeros_like(log_t_excl)).to(alpha.dtype)
            w = alpha * trans
            # Pairs are contiguous per pixel: segment sums, scattered once per channel to the pixels hit.
            if len(w):
                lengths = pairs.seg_last - pairs.seg_first + 1
                hit_pixels = pairs.pixel.index_select(0, pairs.seg_first)
                contrib = torch.stack([feats_t[k, g0:g1].index_select(0, pairs.owner) * w for k in range(f_dim)] + [w], 1)
                acc[m][:, hit_pixels] = torch.segment_reduce(contrib, "sum", lengths=lengths, axis=0).t()
            saved.append((pairs, trans, alpha, gauss, dx, dy))
        ctx.save_for_backward(params_t, feats_t)
        ctx.saved = saved
        ctx.bounds = bounds
        return acc

    @staticmethod
    def backward(ctx, grad_acc):
        params_t, feats_t = ctx.saved_tensors
        f_dim = feats_t.shape[0]
        sums = torch.zeros(6, params_t.shape[1], dtype=params_t.dtype, device=params_t.device)
        g_feats = torch.zeros_like(feats_t)  # [F, G]
        for m, ((g0, g1), (pairs, trans, alpha, gauss, dx, dy)) in enumerate(zip(ctx.bounds, ctx.saved)):
            w = alpha * trans
            g_w = grad_acc[m, f_dim].index_select(0, pairs.pixel)
            for k in range(f_dim):
                gp_k = grad_acc[m, k].index_select(0, pairs.pixel)
                g_w = g_w + gp_k * feats_t[k, g0:g1].index_select(0, pairs.owner)
                g_feats[k, g0:g1].index_add_(0, pairs.owner, gp_k * w)
            # Suffix sums S_i = Σ_{k>i, same pixel} g_k w_k, in float64.
            csum = torch.cumsum((g_w * w).double(), 0)
            suffix = (csum.index_select(0, pairs.seg_last).index_select(0, pairs.seg) - csum).to(w.dtype)
            g_alpha = g_w * trans - suffix / (1.0 - alpha)
            # No gradient where alpha is clamped (0.999), cut (below 1/255) or past termination.
            live = (alpha > 0) & (alpha < ALPHA_MAX) & (trans > 0)
            g_alpha = torch.where(live, g_alpha, torch.zeros_like(g_alpha))
            # dσ/du = a dx + b dy, dσ/dv = b dx + c dy, dσ/d(a, b, c) = (dx²/2, dx dy, dy²/2): the conic is
            # constant per Gaussian, so accumulate the moments Σ g_σ (dx, dy, dx², dx dy, dy²) and combine.
            g_sigma = -g_alpha * alpha
            g_dx = g_sigma * dx
            g_dy = g_sigma * dy
            for k, g in enumerate((g_dx, g_dy, g_dx * dx, g_dx * dy, g_dy * dy, g_alpha * gauss)):
                sums[k, g0:g1].index_add_(0, pairs.owner, g)
        ca, cb, cc = params_t[2:5]
        sx, sy, sxx, sxy, syy, g_opac = sums
        g_params = torch.stack([ca * sx + cb * sy, cb * sx + cc * sy, 0.5 * sxx, sxy, 0.5 * syy, g_opac], 1)
        return g_params, g_feats.t(), None, None, None


def composite(
    proj: Projected,
    opacities: Tensor,
    features: Tensor,
    background: Tensor,
    width: int,
    height: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Alpha-composite projected Gaussians front to back.

    Args:
        proj: :class:`Projected` for ``M`` images of ``N`` Gaussians.
        opacities: ``[M, N]`` opacities in [0, 1].
        features: ``[M, N, D]`` per-image colours (D channels).
        background: ``[M, D]`` colour behind the Gaussians.
        width, height: image size.

    Returns:
        ``(colour [M, D, H, W], alpha [M, H, W], depth [M, H, W])`` where depth is the expected depth
        ``Σ w z / Σ w`` (0 where nothing was hit).
    """
    M, N = proj.depths.shape
    D = features.shape[-1]
    device = features.device
    with torch.no_grad():
        visible = (proj.radii > 0).all(-1)  # [M, N]
        depth_key = torch.where(visible, proj.depths.detach(), torch.full_like(proj.depths, math.inf))
        order = torch.argsort(depth_key, dim=-1)  # front to back per image
        flat = (order + torch.arange(M, device=device)[:, None] * N).reshape(-1)
        flat = flat[visible.reshape(-1).index_select(0, flat)]  # visible Gaussians, image-major, front to back
        counts = visible.sum(-1).tolist()
        ends = torch.tensor(counts).cumsum(0).tolist()
        bounds = [(e - c, e) for c, e in zip(counts, ends)]
    # One gather per visible Gaussian; the Function then works image by image on these tables.
    params = torch.cat([proj.means2d.reshape(-1, 2), proj.conics.reshape(-1, 3), opacities.reshape(-1, 1)], -1)
    feats = torch.cat([features.reshape(-1, D), proj.depths.reshape(-1, 1)], -1)  # [M * N, D + 1]
    acc = _PairComposite.apply(params.index_select(0, flat), feats.index_select(0, flat), bounds, width, height)
    acc = acc.reshape(M, D + 2, height, width)
    alpha_img = acc[:, D + 1]
    colour = acc[:, :D] + (1.0 - alpha_img)[:, None] * background[:, :, None, None]
    depth = torch.where(alpha_img > 0, acc[:, D] / alpha_img.clamp_min(1e-10), torch.zeros_like(alpha_img))
    return colour, alpha_img, depth
