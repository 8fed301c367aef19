"""Closed-form ray casting of primitive tables, with carving and surface masks.

Every canonical shape is the intersection of one quadric and up to three slabs in its local frame:

============  ===========================================  =================
kind          quadric ``q(p) <= 0``                        slabs ``|p_i| <= 1``
============  ===========================================  =================
sphere        ``x² + y² + z² - 1``                         none
box           none (``-1``)                                x, y, z
cylinder      ``x² + y² - 1``                              z
cone          ``x² + y² - (1 - z)² / 4``                   z
============  ===========================================  =================

so one vectorised routine intersects a ray with all of them: ``q(o + t d)`` is a quadratic in ``t`` (its
``<= 0`` set is an interval or, for the cone, two half-lines of which only one meets the slab), each slab
is an interval, and the primitive is their intersection. All shapes are convex, so each ray meets each
primitive in at most one interval ``[t_in, t_out]``.

Implicit shapes (a :attr:`Kind.TORUS`, or any shape with a surface relief) are described by
:func:`implicit_value`, ``f(p) <= 0`` inside, and intersected by marching: ``f`` is sampled at
:data:`MARCH_STEPS` + 1 points across the closed-form interval of a bounding shape (the shape itself
without relief; for a torus the cylinder ``x² + y² <= 1, |z| <= tube``), and the first entry and last exit
are refined by :data:`BISECT_STEPS` bisections and a secant step. The interval reported is ``[first entry, last exit]``: a
ray through a torus's hole gets the near tube's entry (what is seen) and the far tube's exit (carving and
shadows treat the hole as filled, a documented approximation). Features thinner than about
``1 / MARCH_STEPS`` of the bounding chord can be missed at grazing angles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from facelift.synthetic.noise import value_noise
from facelift.synthetic.primitives import Kind, Mask, Op, PrimitiveTable

__all__ = ["RayHits", "intersect_intervals", "cast_rays", "local_normal", "any_hit", "implicit_value", "MARCH_STEPS", "BISECT_STEPS"]

MARCH_STEPS = 32
"""Samples (plus one) of an implicit shape's function across its bounding interval."""
BISECT_STEPS = 8
"""Bisections that refine an implicit shape's entry and exit (to 1/256 of a march step), before a final
secant step."""

_INF = math.inf
# Quadric q(p) = mu (x² + y²) + alpha z² + beta z + gamma, per kind (sphere, box, cylinder, cone).
_QUADRIC = torch.tensor(
    [
        [1.0, 1.0, 0.0, -1.0],
        [0.0, 0.0, 0.0, -1.0],
        [1.0, 0.0, 0.0, -1.0],
        [1.0, -0.25, 0.5, -0.25],
        [1.0, 0.0, 0.0, -1.0],  # torus: its bounding cylinder (rays scaled by 1 / tube along z)
    ]
)
# Which local axes are bounded by the slab |p_i| <= 1, per kind.
_SLABS = torch.tensor([[0, 0, 0], [1, 1, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=torch.bool)


def _gauge(kind: int, p: Tensor, tube: Tensor) -> Tensor:
    """Gauge of one canonical shape at local points ``p [..., 3]`` (``<= 1`` exactly inside)."""
    x, y, z = p.unbind(-1)
    if kind == Kind.SPHERE:
        return torch.sqrt(x * x + y * y + z * z)
    if kind == Kind.BOX:
        return p.abs().amax(-1)
    r = torch.sqrt(x * x + y * y)
    if kind == Kind.CYLINDER:
        return torch.maximum(r, z.abs())
    if kind == Kind.CONE:
        return torch.maximum(z.abs(), 2 * r + z)
    return torch.sqrt((r - (1 - tube)) ** 2 + z * z) / tube  # torus


def implicit_value(kind: Tensor | int, shape: Tensor, p: Tensor) -> Tensor:
    """``f(p)``, negative inside, of canonical shapes with their relief (see :class:`PrimitiveTable`).

    ``f = g(p) - 1 + depth * noise(p * frequency + offset)`` where ``g`` is the shape's gauge (``g <= 1``
    exactly inside the canonical shape: ``|p|`` for the sphere, ``max |p_i|`` for the box, ...; for the
    torus the distance to its core circle over the tube radius), so a relief only ever removes material.

    Args:
        kind: ``[...]`` :class:`Kind` ids, or one id for all points.
        shape: ``[..., 4]`` the table's ``shape`` parameters.
        p: ``[..., 3]`` local points.

    Returns:
        ``[...]``.
    """
    tube = shape[..., 3].clamp_min(1e-3)
    if isinstance(kind, int):
        g = _gauge(kind, p, tube)
    else:
        g = torch.zeros_like(p[..., 0])
        for k in torch.unique(kind).tolist():
            g = torch.where(kind == k, _gauge(k, p, tube), g)
    depth = shape[..., 0]
    if bool((depth > 0).any()):
        g = g + depth * value_noise(p * shape[..., 1:2] + shape[..., 2:3])
    return g - 1


def is_implicit(kind: Tensor, shape: Tensor) -> Tensor:
    """``[...]`` True for primitives intersected by marching (tori and shapes with a relief)."""
    return (kind == Kind.TORUS) | (shape[..., 0] > 0)


def _bound_rays(kind: Tensor, shape: Tensor, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Local rays in the frame of each primitive's closed-form bound (tori: z scaled by 1 / tube)."""
    torus = kind == Kind.TORUS
    if not bool(torus.any()):
        return o, d
    zs = torch.where(torus, 1 / shape[..., 3].clamp_min(1e-3), torch.ones_like(shape[..., 3]))
    scale = torch.stack([torch.ones_like(zs), torch.ones_like(zs), zs], -1)
    return o * scale, d * scale


def _march(kind: int, shape: Tensor, o: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """First entry and last exit of ``P`` local rays ``o, d [P, 3]`` into implicit shapes of one kind inside
    their bounding intervals ``lo, hi [P]`` (``+inf, -inf`` stays a miss). Returns ``(t_in, t_out)``, ``[P]``."""
    valid = lo <= hi
    a = torch.where(valid, lo, torch.zeros_like(lo))
    b = torch.where(valid, hi, torch.ones_like(hi))
    frac = torch.linspace(0, 1, MARCH_STEPS + 1, device=o.device, dtype=o.dtype)
    ts = a[:, None] + (b - a)[:, None] * frac  # [P, N + 1]
    f = implicit_value(kind, shape[:, None], o[:, None] + ts[..., None] * d[:, None])
    inside = f <= 0
    hit = inside.any(-1) & valid
    first = inside.to(torch.uint8).argmax(-1)
    last = MARCH_STEPS - inside.flip(-1).to(torch.uint8).argmax(-1)
    # Brackets [outside, inside] for the entry and [inside, outside] for the exit, refined together by
    # bisection, then one secant step on the final bracket.
    idx_out = torch.stack([first - 1, last + 1], -1).clamp(0, MARCH_STEPS)  # [P, 2]
    idx_in = torch.stack([first, last], -1)
    out_t, in_t = torch.gather(ts, 1, idx_out), torch.gather(ts, 1, idx_in)
    out_f, in_f = torch.gather(f, 1, idx_out), torch.gather(f, 1, idx_in)
    s2, o2, d2 = shape[:, None], o[:, None], d[:, None]
    for _ in range(BISECT_STEPS):
        mid = (out_t + in_t) / 2
        f_mid = implicit_value(kind, s2, o2 + mid[..., None] * d2)
        now_in = f_mid <= 0
        in_t, in_f = torch.where(now_in, mid, in_t), torch.where(now_in, f_mid, in_f)
        out_t, out_f = torch.where(now_in, out_t, mid), torch.where(now_in, out_f, f_mid)
    w = (in_f / (in_f - out_f).clamp_max(-1e-12)).clamp(0, 1)  # in_f <= 0 < out_f
    root = in_t + (out_t - in_t) * w
    t_in = torch.where(first == 0, a, root[:, 0])
    t_out = torch.where(last == MARCH_STEPS, b, root[:, 1])
    return torch.where(hit, t_in, _INF), torch.where(hit, t_out, -_INF)


def _implicit_intervals(kind: Tensor, shape: Tensor, o: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Replace the bounding intervals of implicit pairs (flat ``[P]`` arrays) by their marched ones.

    Pairs are marched in groups of one kind, with and without relief, so that each group evaluates
    only its own gauge and only relief groups evaluate noise.
    """
    implicit = is_implicit(kind, shape) & (lo <= hi)
    relief = shape[:, 0] > 0
    for kd in torch.unique(kind[implicit]).tolist():
        for with_relief in (False, True):
            sel = torch.nonzero(implicit & (kind == kd) & (relief == with_relief)).flatten()
            if len(sel) == 0:
                continue
            m_in, m_out = _march(kd, shape[sel], o[sel], d[sel], lo[sel], hi[sel])
            lo, hi = lo.index_put((sel,), m_in), hi.index_put((sel,), m_out)
    return lo, hi


def _sphere_interval(o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Unit sphere: ``|o + t d|² <= 1``."""
    a = (d * d).sum(-1)
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - 1
    disc = b * b - a * c
    sq = torch.sqrt(disc.clamp_min(0))
    t_in = (-b - sq) / a
    t_out = (-b + sq) / a
    miss = disc < 0
    return torch.where(miss, _INF, t_in), torch.where(miss, -_INF, t_out)


def _box_interval(o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Unit cube ``[-1, 1]^3`` (slab method)."""
    inv = 1.0 / torch.where(d.abs() > 1e-12, d, 1e-12)
    t1 = (-1 - o) * inv
    t2 = (1 - o) * inv
    t_in = torch.minimum(t1, t2).amax(-1)
    t_out = torch.maximum(t1, t2).amin(-1)
    miss = t_in > t_out
    return torch.where(miss, _INF, t_in), torch.where(miss, -_INF, t_out)


def _quadric_interval(kind: Tensor, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Any kind through the general quadric-and-slabs formulation (used for cylinders and cones)."""
    coef = _QUADRIC.to(o)[kind]  # [..., 4], broadcast over rays
    mu, alpha, beta, gamma = coef.unbind(-1)
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    qa = mu * (dx * dx + dy * dy) + alpha * dz * dz
    qb = 2 * mu * (ox * dx + oy * dy) + 2 * alpha * oz * dz + beta * dz
    qc = mu * (ox * ox + oy * oy) + alpha * oz * oz + beta * oz + gamma
    lo = torch.full_like(qa, -_INF)
    hi = torch.full_like(qa, _INF)
    slabs = _SLABS.to(o.device)[kind]  # [..., 3]
    for axis in range(3):
        oa, da = o[..., axis], d[..., axis]
        safe = torch.where(da.abs() > 1e-12, da, 1e-12)
        t1, t2 = (-1 - oa) / safe, (1 - oa) / safe
        parallel_inside = (da.abs() <= 1e-12) & (oa.abs() <= 1)
        s_lo = torch.where(parallel_inside, -_INF, torch.minimum(t1, t2))
        s_hi = torch.where(parallel_inside, _INF, torch.maximum(t1, t2))
        on = slabs[..., axis]
        lo = torch.where(on, torch.maximum(lo, s_lo), lo)
        hi = torch.where(on, torch.minimum(hi, s_hi), hi)
    disc = qb * qb - 4 * qa * qc
    sq = torch.sqrt(disc.clamp_min(0))
    flat = qa.abs() < 1e-12
    qa_safe = torch.where(flat, torch.ones_like(qa), qa)
    r0 = (-qb - sq) / (2 * qa_safe)
    r1 = (-qb + sq) / (2 * qa_safe)
    r_lo, r_hi = torch.minimum(r0, r1), torch.maximum(r0, r1)
    # Linear (qa = 0): qb t + qc <= 0; constant: qc <= 0 everywhere or nowhere.
    lin = qb.abs() > 1e-12
    qb_safe = torch.where(lin, qb, torch.ones_like(qb))
    root = -qc / qb_safe
    lin_lo = torch.where(lin, torch.where(qb > 0, -_INF, root), torch.where(qc <= 0, -_INF, _INF))
    lin_hi = torch.where(lin, torch.where(qb > 0, root, _INF), torch.where(qc <= 0, _INF, -_INF))
    # qa > 0: inside between the roots. qa < 0 (cone, steep ray): inside outside the roots; the slab keeps
    # the one half-line that belongs to the lower nappe.
    left_lo, left_hi = lo, torch.minimum(hi, r_lo)
    use_left = left_lo <= left_hi
    neg_lo = torch.where(use_left, left_lo, torch.maximum(lo, r_hi))
    neg_hi = torch.where(use_left, left_hi, hi)
    no_root = disc < 0
    t_in = torch.where(flat, torch.maximum(lo, lin_lo), torch.where(qa > 0, torch.maximum(lo, r_lo), neg_lo))
    t_out = torch.where(flat, torch.minimum(hi, lin_hi), torch.where(qa > 0, torch.minimum(hi, r_hi), neg_hi))
    # No real root: qa > 0 means never inside; qa < 0 means inside along the whole slab interval.
    t_in = torch.where(no_root & ~flat, torch.where(qa > 0, _INF, lo), t_in)
    t_out = torch.where(no_root & ~flat, torch.where(qa > 0, -_INF, hi), t_out)
    miss = t_in > t_out
    return torch.where(miss, _INF, t_in), torch.where(miss, -_INF, t_out)


def _local_rays(table: PrimitiveTable, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    """World rays ``[B, R, 3]`` in the local frames of all primitives: ``[B, R, K, 3]``."""
    a, b = table.w2l[..., :3], table.w2l[..., 3]
    o = torch.einsum("bkij,brj->brki", a, origins) + b[:, None]
    d = torch.einsum("bkij,brj->brki", a, dirs)
    return o, d


# Radius of the ball around the local origin that contains each canonical shape.
_CANONICAL_RADIUS = torch.tensor([1.0, math.sqrt(3.0), math.sqrt(2.0), math.sqrt(2.0), 1.0])


def bounding_spheres(table: PrimitiveTable) -> tuple[Tensor, Tensor]:
    """World bounding spheres of all primitives: ``(centres [B, K, 3], radii [B, K])`` (padding: radius 0)."""
    lin = torch.linalg.inv(table.w2l[..., :3])  # local -> world
    centres = -(lin @ table.w2l[..., 3:4])[..., 0]
    radii = torch.linalg.matrix_norm(lin, ord=2) * _CANONICAL_RADIUS.to(lin)[table.kind.clamp_min(0)]
    return centres, torch.where(table.kind == Kind.NONE, torch.zeros_like(radii), radii)


def _candidates(table: PrimitiveTable, origins: Tensor, dirs: Tensor, near: float) -> Tensor:
    """``[K, R]`` (primitive-major) True where a ray of subject 0 meets a primitive's bounding sphere beyond
    ``near``.

    With ``b = d.(o - c)``, ``q = |o - c|² - r²`` and ``disc = b² - |d|² q``, a ray meets the sphere iff
    ``disc >= 0``, and its far crossing ``(-b + sqrt(disc)) / |d|²`` lies beyond ``near`` iff
    ``sqrt(disc) > m = near |d|² + b``, i.e. ``m < 0 or disc > m²``: no square root. Rays that share an
    origin (a camera's primary rays: the rays of one view are one run of equal origins) take an angular
    test instead (:func:`_angular_candidates`), one matrix product and a comparison per run.
    """
    c, r = bounding_spheres(table)
    c, r = c[0], r[0]
    o, d = origins[0], dirs[0]
    if len(o) == 0:
        return torch.zeros(len(r), 0, dtype=torch.bool, device=o.device)
    # Runs of equal consecutive origins: a few long runs (one per view) use the angular test.
    new_run = torch.ones(len(o), dtype=torch.bool, device=o.device)
    new_run[1:] = (o[1:] != o[:-1]).any(-1)
    starts = torch.nonzero(new_run).flatten()
    if len(starts) * 256 <= len(o):
        bounds = starts.tolist() + [len(o)]
        parts = [_angular_candidates(o[a], d[a:b], c, r) for a, b in zip(bounds[:-1], bounds[1:])]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    dd = (d * d).sum(-1)[None]  # [1, R]
    b = (o * d).sum(-1)[None] - c @ d.t()  # [K, R]
    q = (o * o).sum(-1)[None] - 2 * (c @ o.t()) + ((c * c).sum(-1) - r * r)[:, None]
    disc = b * b - dd * q
    m = b + near * dd
    return (disc >= 0) & ((m < 0) | (disc > m * m)) & (r > 0)[:, None]


def _angular_candidates(origin: Tensor, d: Tensor, c: Tensor, r: Tensor) -> Tensor:
    """``[K, R]`` bounding-sphere hits of rays ``d [R, 3]`` from one ``origin [3]``.

    A sphere seen at distance ``D`` under the half-angle ``asin(r / D)`` is met by the unit directions
    within that angle of its centre (spheres around the origin are always candidates; the angle is widened
    by 1e-5 relative so that rounding never drops a grazing ray). Spheres entirely behind ``near`` are
    kept: the exact intersection rejects them.
    """
    oc = c - origin  # [K, 3]
    dist = oc.norm(dim=-1)
    sin_a = (r * (1 + 1e-5) / dist.clamp_min(1e-12)).clamp(max=1)
    cos_a = torch.sqrt(1 - sin_a * sin_a)
    cos_a = torch.where(r > 0, torch.where(dist <= r * (1 + 1e-5), -2.0, cos_a), 2.0)  # around the origin: always; padding: never
    w = oc / dist.clamp_min(1e-12)[:, None]
    u = d * torch.rsqrt((d * d).sum(-1, keepdim=True))
    return torch.addmm(-cos_a[:, None], w, u.t()) >= 0  # u.w - cos_a, [K, R]


def intersect_intervals(
    table: PrimitiveTable, origins: Tensor, dirs: Tensor, near: float = 0.0, candidates: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Entry and exit ``t`` of every ray with every primitive (``+inf, -inf`` on a miss).

    For one subject, rays are first culled against the primitives' bounding spheres and only the
    surviving (ray, primitive) pairs are intersected, each kind with its own closed form (spheres and
    boxes, most primitives, have short ones). Batches of several subjects use the general formulation
    on every pair.

    Args:
        table: ``[B, K]`` primitives.
        origins, dirs: ``[B, R, 3]`` world rays.
        near: pairs whose bounding sphere lies entirely before ``near`` may be reported as misses.
        candidates: ``[K, R]`` bounding-sphere hits of a single subject's rays, if already known.

    Returns:
        ``(t_in, t_out)``, ``[B, R, K]`` each, in the world ray's parameter.
    """
    kind = table.kind
    B, R = origins.shape[:2]
    if B != 1:
        o, d = _local_rays(table, origins, dirs)
        k, sh = kind[:, None].expand(-1, R, -1), table.shape[:, None].expand(-1, R, -1, -1)
        bo, bd = _bound_rays(k, sh, o, d)
        t_in, t_out = _quadric_interval(k.clamp_min(0), bo, bd)
        if bool(is_implicit(table.kind, table.shape).any()):
            flat = lambda x: x.reshape(-1, *x.shape[3:])  # noqa: E731
            t_in, t_out = (x.reshape(t_in.shape) for x in _implicit_intervals(flat(k), flat(sh), flat(o), flat(d), flat(t_in), flat(t_out)))
        pad = (kind == Kind.NONE)[:, None]
        return torch.where(pad | (t_in > t_out), _INF, t_in), torch.where(pad | (t_in > t_out), -_INF, t_out)
    t_in = torch.full((1, R, table.num), _INF, dtype=origins.dtype, device=origins.device)
    t_out = torch.full_like(t_in, -_INF)
    if candidates is None:
        candidates = _candidates(table, origins, dirs, near)
    ray, prim, lo, hi, _, _ = _pair_intervals(table, origins, dirs, candidates)
    t_in[0, ray, prim] = lo
    t_out[0, ray, prim] = hi
    return t_in, t_out


def _pair_intervals(table: PrimitiveTable, origins: Tensor, dirs: Tensor, candidates: Tensor, march: bool = True) -> tuple[Tensor, ...]:
    """Intervals of the candidate pairs of one subject: ``(ray, prim, t_in, t_out, o_local, d_local)``, flat
    ``[P]`` (``[P, 3]`` for the pairs' rays in their primitive's local frame).

    ``march=False`` leaves implicit shapes (:func:`is_implicit`) at their closed-form bounding intervals,
    which contain the marched ones (for the caller to march only the pairs it still needs).

    Pairs are enumerated primitive by primitive with the primitives sorted by kind, so that each
    primitive's rays are one contiguous slice (local rays: one ``[n, 3] @ [3, 3]`` product per primitive;
    a shared origin is transformed once) and each kind's pairs are one slice for its closed form.
    """
    kind = table.kind[0]
    order = torch.argsort(kind, stable=True)
    pi, ray = torch.nonzero(candidates.index_select(0, order), as_tuple=True)
    prim = order.index_select(0, pi)
    if len(ray) == 0:
        empty = origins.new_empty(0)
        return ray, prim, empty, empty, origins.new_empty(0, 3), origins.new_empty(0, 3)
    counts = torch.bincount(pi, minlength=table.num).tolist()
    w2l = table.w2l[0].index_select(0, order)  # [K, 3, 4]
    o_world, d_world = origins[0], dirs[0].index_select(0, ray)
    shared = bool((o_world == o_world[:1]).all())
    if shared:
        o_prim = (w2l[..., :3] @ o_world[0]) + w2l[..., 3]  # [K, 3]
    else:
        o_world = o_world.index_select(0, ray)
    o_parts, d_parts, start = [], [], 0
    for k, n in enumerate(counts):
        if n == 0:
            continue
        a_t = w2l[k, :, :3].t()
        d_parts.append(d_world[start : start + n] @ a_t)
        o_parts.append(o_prim[k].expand(n, 3) if shared else o_world[start : start + n] @ a_t + w2l[k, :, 3])
        start += n
    o_all, d_all = torch.cat(o_parts), torch.cat(d_parts)
    routines = {Kind.SPHERE: _sphere_interval, Kind.BOX: _box_interval}
    implicit_cols = is_implicit(kind, table.shape[0])
    kinds_sorted = kind.index_select(0, order).tolist()
    lo_parts, hi_parts, start = [], [], 0
    for kd in sorted(set(kinds_sorted)):
        n = sum(c for c, k in zip(counts, kinds_sorted) if k == kd)
        if n == 0:
            continue
        o, d, p_sel = o_all[start : start + n], d_all[start : start + n], prim[start : start + n]
        start += n
        k_sel = torch.full((n,), kd, device=o.device)
        sh = table.shape[0].index_select(0, p_sel)
        if kd in routines:
            lo, hi = routines[kd](o, d)
        else:
            lo, hi = _quadric_interval(k_sel, *_bound_rays(k_sel, sh, o, d))
        if march and bool(implicit_cols[p_sel].any()):
            lo, hi = _implicit_intervals(k_sel, sh, o, d, lo, hi)
        lo_parts.append(lo)
        hi_parts.append(hi)
    return ray, prim, torch.cat(lo_parts), torch.cat(hi_parts), o_all, d_all


def _hairline_keep(p: Tensor, params: Tensor) -> Tensor:
    """Hair-line mask on a shell: keep directions above a height that depends on the local azimuth.

    ``params = (front, side, back, ragged)`` are heights (local z of the unit direction) at the front
    (-y), the sides (±x) and the back (+y); ``ragged`` adds a wavy edge.
    """
    u = torch.nn.functional.normalize(p, dim=-1)
    x, y, z = u.unbind(-1)
    front, side, back, ragged = params.unbind(-1)
    horiz = torch.sqrt(x * x + y * y).clamp_min(1e-6)
    cos_back = y / horiz  # +1 at the back, -1 at the front
    w_back = cos_back.clamp_min(0)
    w_front = (-cos_back).clamp_min(0)
    height = front * w_front + back * w_back + side * (1 - w_front - w_back)
    wave = ragged * torch.sin(23.0 * torch.atan2(x, -y)) * torch.cos(9.0 * z)
    return z >= height + wave


def _select_cols(table: PrimitiveTable, cols: Tensor) -> PrimitiveTable:
    return PrimitiveTable(*(getattr(table, f.name).index_select(1, cols) for f in fields(table)))


@dataclass
class RayHits:
    """Nearest hits of ``[B, R]`` rays.

    Attributes:
        t: ``[B, R]`` ray parameter of the hit (inf on a miss).
        prim: ``[B, R]`` index of the primitive whose surface is hit (a carving primitive for carved
            surfaces); 0 on a miss.
        inward: ``[B, R]`` True where the surface is a carve (normal points into the carving primitive).
        hit: ``[B, R]`` bool.
    """

    t: Tensor
    prim: Tensor
    inward: Tensor
    hit: Tensor


def cast_rays(table: PrimitiveTable, origins: Tensor, dirs: Tensor, near: float = 1e-4) -> RayHits:
    """Nearest visible surface along each ray.

    Args:
        table: ``[B, K]`` primitives.
        origins, dirs: ``[B, R, 3]`` world rays (dirs need not be unit; t is in their units).
        near: hits closer than this are ignored (a ray starting inside a primitive sees its inside only
            through carves).

    Returns:
        :class:`RayHits`.
    """
    if table.batch_size != 1:
        hits = [cast_rays(table[b], origins[b : b + 1], dirs[b : b + 1], near) for b in range(table.batch_size)]
        return RayHits(*(torch.cat([getattr(h, k) for h in hits]) for k in ("t", "prim", "inward", "hit")))
    # Only (ray, primitive) pairs whose bounding sphere the ray meets are intersected (the background of a
    # view, most of it, costs one culling test per primitive).
    return _cast_candidates(table, origins, dirs, near, _candidates(table, origins, dirs, near))


def _cast_candidates(table: PrimitiveTable, origins: Tensor, dirs: Tensor, near: float, candidates: Tensor) -> RayHits:
    """:func:`cast_rays` for one subject whose bounding-sphere candidates are known, on the flat list of
    (ray, primitive) pairs: carving, masks and the nearest hit per ray never touch a dense ``[R, K]`` array."""
    R = origins.shape[1]
    ray, prim, lo, hi, o_loc, d_loc = _pair_intervals(table, origins, dirs, candidates)
    op, group, mask = table.op[0], table.group[0], table.mask[0]
    t = torch.where((op.index_select(0, prim) == Op.ADD) & (lo > near), lo, _INF)  # [P]
    carved_by = None
    # Carving: a hit inside a subtracting primitive of the same group moves to that primitive's exit, if
    # the additive primitive still continues there (else the ray passes through). Only the hits whose ray
    # meets a subtracting primitive at all are gathered (usually a small fraction), and every carve works
    # on that short list. Two passes let a hit pushed out of one carve into an overlapping carve listed
    # earlier move on again.
    subtract = torch.nonzero(op == Op.SUBTRACT).flatten().tolist()
    if subtract:
        sub = torch.nonzero((op.index_select(0, prim) == Op.SUBTRACT) & torch.isfinite(lo)).flatten()
        s_prim, s_ray, s_lo, s_hi = prim.index_select(0, sub), ray.index_select(0, sub), lo.index_select(0, sub), hi.index_select(0, sub)
        meets = torch.zeros(R, dtype=torch.bool, device=ray.device)
        meets[s_ray] = True
        target = torch.nonzero(meets.index_select(0, ray) & torch.isfinite(t)).flatten()
        if len(target):
            tt, tr, t_hi = t.index_select(0, target), ray.index_select(0, target), hi.index_select(0, target)
            t_group = group.index_select(0, prim.index_select(0, target))
            by = torch.full_like(target, -1)
            s_in = torch.full((R,), _INF, dtype=lo.dtype, device=lo.device)
            s_out = torch.full((R,), -_INF, dtype=lo.dtype, device=lo.device)
            for s in subtract + (subtract if len(subtract) > 1 else []):
                own = torch.nonzero(s_prim == s).flatten()
                if len(own) == 0:
                    continue
                rays_s = s_ray.index_select(0, own)
                s_in[rays_s], s_out[rays_s] = s_lo.index_select(0, own), s_hi.index_select(0, own)
                a, b = s_in.index_select(0, tr), s_out.index_select(0, tr)
                inside = (t_group == group[s]) & (tt >= a) & (tt < b)
                tt = torch.where(inside, torch.where(b <= t_hi, b, _INF), tt)
                by = by.masked_fill(inside, s)
                s_in[rays_s], s_out[rays_s] = _INF, -_INF  # reset for the next carve
            t[target] = tt
            carved_by = torch.full_like(prim, -1)
            carved_by[target] = by
    # Surface masks (hair-lines, cut planes) on the primitives' own (uncarved) surfaces.
    sel = torch.nonzero((mask.index_select(0, prim) != Mask.NONE) & torch.isfinite(t)).flatten()
    if len(sel):
        if carved_by is not None:
            sel = sel[carved_by.index_select(0, sel) < 0]
        p_sel = prim.index_select(0, sel)
        t_sel = t.index_select(0, sel)
        p_local = o_loc.index_select(0, sel) + t_sel[:, None] * d_loc.index_select(0, sel)
        keep = _mask_keep_flat(mask.index_select(0, p_sel), table.mask_params[0].index_select(0, p_sel), p_local)
        t[sel] = torch.where(keep, t_sel, _INF)
    # Nearest hit per ray; among equal distances the lowest primitive index (as an argmin over primitives).
    t_best = torch.full((R,), _INF, dtype=t.dtype, device=t.device).scatter_reduce(0, ray, t, "amin")
    is_best = torch.isfinite(t) & (t == t_best.index_select(0, ray))
    k_best = torch.full((R,), table.num, dtype=prim.dtype, device=prim.device)
    k_best = k_best.scatter_reduce(0, ray[is_best], prim[is_best], "amin")
    hit = torch.isfinite(t_best)
    out_prim = torch.where(hit, k_best, torch.zeros_like(k_best))
    inward = torch.zeros_like(hit)
    if carved_by is not None:
        winner = torch.nonzero(is_best & (prim == k_best.index_select(0, ray))).flatten()
        by = torch.full_like(k_best, -1)
        by[ray[winner]] = carved_by[winner]
        inward = (by >= 0) & hit
        out_prim = torch.where(inward, by, out_prim)
    return RayHits(t_best[None], out_prim[None], inward[None], hit[None])


def _mask_keep_flat(mask: Tensor, params: Tensor, p_local: Tensor) -> Tensor:
    """``[n]`` True where a surface mask (``mask [n]``, ``params [n, 4]``) keeps the local point ``p_local [n, 3]``."""
    keep_hair = _hairline_keep(p_local, params)
    keep_half = (p_local * params[:, :3]).sum(-1) >= params[:, 3]
    return torch.where(mask == Mask.HAIRLINE, keep_hair, torch.where(mask == Mask.HALF_SPACE, keep_half, torch.ones_like(keep_hair)))


def any_hit(table: PrimitiveTable, origins: Tensor, dirs: Tensor, near: float = 1e-3, far: float = _INF) -> Tensor:
    """``[B, R]`` True where a ray enters an additive primitive within ``(near, far)`` (shadow rays).

    Carves and masks are ignored, except that masked primitives (hair shells) do not occlude; a ray that
    starts inside a primitive is not occluded by it.
    """
    occluder = (table.op == Op.ADD) & (table.mask == Mask.NONE)
    if table.batch_size != 1:
        t_in, _ = intersect_intervals(table, origins, dirs, near)
        return ((t_in > near) & (t_in < far) & occluder[:, None]).any(-1)
    cols = torch.nonzero(occluder[0]).flatten()  # only occluders are intersected
    out = torch.zeros(origins.shape[:2], dtype=torch.bool, device=origins.device)
    if len(cols) == 0:
        return out
    table = _select_cols(table, cols)
    # Closed-form shapes first; implicit ones (marched, the expensive part) only on the rays still unoccluded
    # whose bounding interval reaches into (near, far): the marched interval lies inside the bounding one.
    ray, prim, t_in, t_out, o_loc, d_loc = _pair_intervals(table, origins, dirs, _candidates(table, origins, dirs, near), march=False)
    implicit = is_implicit(table.kind[0], table.shape[0]).index_select(0, prim)
    out[0, ray[~implicit & (t_in > near) & (t_in < far)]] = True
    pending = torch.nonzero(implicit & ~out[0].index_select(0, ray) & (t_out > near) & (t_in < far)).flatten()
    if len(pending):
        p_prim = prim.index_select(0, pending)
        m_in, _ = _implicit_intervals(
            table.kind[0].index_select(0, p_prim), table.shape[0].index_select(0, p_prim), o_loc.index_select(0, pending),
            d_loc.index_select(0, pending), t_in.index_select(0, pending), t_out.index_select(0, pending),
        )  # fmt: skip
        out[0, ray.index_select(0, pending)[(m_in > near) & (m_in < far)]] = True
    return out


def local_normal(kind: Tensor, p: Tensor, shape: Tensor | None = None) -> Tensor:
    """Outward normal (unnormalised) of canonical shapes at local surface points.

    Args:
        kind: ``[...]`` :class:`Kind` ids.
        p: ``[..., 3]`` local points on the surface.
        shape: ``[..., 4]`` the table's ``shape`` parameters; required for tori and reliefs, whose
            normal is the central-difference gradient of :func:`implicit_value`.

    Returns:
        ``[..., 3]``.
    """
    if shape is not None:
        implicit = is_implicit(kind, shape)
        if bool(implicit.any()):
            sel = torch.nonzero(implicit.flatten()).flatten()
            flat_p = p.reshape(-1, 3)
            k, sh, q = kind.flatten()[sel], shape.reshape(-1, 4)[sel], flat_p[sel]
            eps = 1e-3
            offsets = torch.eye(3, dtype=p.dtype, device=p.device) * eps  # [3, 3]
            fp = implicit_value(k[:, None], sh[:, None], q[:, None] + offsets)
            fm = implicit_value(k[:, None], sh[:, None], q[:, None] - offsets)
            closed = local_normal(kind, p).reshape(-1, 3)
            return closed.index_put((sel,), fp - fm).reshape(p.shape)
    x, y, z = p.unbind(-1)
    ax = p.abs()
    # Box: the axis closest to its face.
    face = torch.nn.functional.one_hot(ax.argmax(-1), 3).to(p.dtype) * torch.sign(p)
    r = torch.sqrt(x * x + y * y)
    zero = torch.zeros_like(x)
    cyl_side = torch.stack([x, y, zero], -1)
    cyl_cap = torch.stack([zero, zero, torch.sign(z)], -1)
    cyl = torch.where(((z.abs() - 1).abs() < (r - 1).abs())[..., None], cyl_cap, cyl_side)
    cone_side = torch.stack([2 * x, 2 * y, (1 - z) / 2], -1)
    cone_cap = torch.stack([zero, zero, -torch.ones_like(z)], -1)
    cone = torch.where(((z + 1).abs() < (r - (1 - z) / 2).abs())[..., None], cone_cap, cone_side)
    k = kind[..., None]
    return torch.where(k == Kind.SPHERE, p, torch.where(k == Kind.BOX, face, torch.where(k == Kind.CYLINDER, cyl, cone)))  # tori: see shape
