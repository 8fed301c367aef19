"""Batched renderer of primitive scenes: RGBA, depth and normals for ``[B, V]`` cameras, CPU or CUDA.

Shading: procedural textures in each primitive's local frame, a face layer (brows, stubble, blush) on the
head, hemispherical sky/studio ambient with analytic ambient occlusion, and an optional key light with
wrapped ("subsurface-like") diffuse, Blinn-Phong or Kajiya-Kay (hair) highlights and ray-traced soft
shadows (one jittered shadow ray per sample). Ambient-only lighting is the reference's "ambient" mode.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.cameras.rays import camera_rays
from facelift.synthetic.noise import fbm, value_noise
from facelift.synthetic.primitives import Kind, Op, Pattern, PrimitiveTable, seeded_generator
from facelift.synthetic.raycast import any_hit, cast_rays, local_normal

__all__ = ["Lighting", "SynthSettings", "SynthOutput", "render_scene"]


@dataclass
class Lighting:
    """Per-subject lighting, all ``[B, ...]``.

    Attributes:
        sky, horizon, ground: ``[B, 3]`` hemispherical ambient colours (up, sideways, down).
        key_dir: ``[B, 3]`` unit direction toward the key light (world).
        key_colour: ``[B, 3]`` key-light colour times intensity; zeros for ambient-only lighting.
        softness: ``[B]`` angular radius of the key light (radians) for soft shadows.
    """

    sky: Tensor
    horizon: Tensor
    ground: Tensor
    key_dir: Tensor
    key_colour: Tensor
    softness: Tensor

    @staticmethod
    def ambient(batch: int = 1, level: float = 1.0, device=None) -> "Lighting":
        """Uniform white ambient light (the reference's ambient-only renders)."""
        c = torch.full((batch, 3), level, device=device)
        z = torch.zeros(batch, 3, device=device)
        return Lighting(c, c, c * 0.9, z + torch.tensor([0.0, 0.0, 1.0], device=device), z, torch.zeros(batch, device=device))

    @staticmethod
    def random(batch: int, generator: torch.Generator, ambient_only_prob: float = 0.25) -> "Lighting":
        """Random sky/studio environments with a dominant, possibly coloured key light (CPU tensors)."""
        u = torch.rand(batch, 16, generator=generator)
        tint = lambda lo, hi, cols: lo + (hi - lo) * u[:, cols]  # noqa: E731
        sky = torch.stack([tint(0.35, 0.7, 0), tint(0.4, 0.75, 1), tint(0.45, 0.9, 2)], -1)
        horizon = sky * 0.8 + 0.15
        ground = torch.stack([tint(0.15, 0.45, 3), tint(0.12, 0.4, 4), tint(0.1, 0.35, 5)], -1)
        az = u[:, 6] * 2 * math.pi
        el = math.radians(10) + u[:, 7] * math.radians(65)
        key_dir = torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], -1)
        warm = torch.stack([1.0 + 0.25 * (u[:, 8] - 0.5), 1.0 + 0.1 * (u[:, 9] - 0.5), 1.0 - 0.3 * (u[:, 8] - 0.5)], -1)
        key_colour = warm * (0.6 + 0.7 * u[:, 10:11])
        ambient_only = u[:, 11] < ambient_only_prob
        level = (0.7 + 0.4 * u[:, 12:13])
        sky = torch.where(ambient_only[:, None], level.expand(-1, 3), sky)
        horizon = torch.where(ambient_only[:, None], level.expand(-1, 3), horizon)
        ground = torch.where(ambient_only[:, None], 0.85 * level.expand(-1, 3), ground)
        key_colour = torch.where(ambient_only[:, None], torch.zeros_like(key_colour), key_colour)
        softness = math.radians(2) + u[:, 13] * math.radians(10)
        return Lighting(sky, horizon, ground, key_dir, key_colour, softness)

    def to(self, device) -> "Lighting":
        return Lighting(*(getattr(self, k).to(device) for k in ("sky", "horizon", "ground", "key_dir", "key_colour", "softness")))


@dataclass(frozen=True)
class SynthSettings:
    """Renderer settings."""

    supersample: int = 1
    """Samples per pixel along each axis (2 = 4 samples, anti-aliased edges)."""
    shadows: bool = True
    """Trace shadow rays toward the key light."""
    chunk_rays: int | None = None
    """Rays per subject processed at once (bounds memory); None: 65,536 on CPU (cache-sized), 4M on GPU
    (few, large kernels)."""
    seed: int = 0
    """Seeds the shadow-ray jitter, so renders are deterministic."""
    threads: int | None = None
    """Chunks rendered concurrently (None: ``torch.get_num_threads()`` on the CPU, 1 on CUDA); the
    pixels do not depend on it."""

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


@dataclass
class SynthOutput:
    """Rendered views, channels first.

    Attributes:
        rgba: ``[B, V, 4, H, W]`` colour (not premultiplied) and coverage in [0, 1].
        depth: ``[B, V, 1, H, W]`` camera-frame z of the nearest surface, 0 where nothing was hit.
        normals: ``[B, V, 3, H, W]`` world-space unit normals, 0 where nothing was hit.
    """

    rgba: Float[Tensor, "B V 4 H W"]
    depth: Float[Tensor, "B V 1 H W"]
    normals: Float[Tensor, "B V 3 H W"]


def _mix(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    return a + (b - a) * t[..., None]


def _pattern_colour(kind: int, c1: Tensor, c2: Tensor, p: Tensor, ps: Tensor) -> Tensor:
    """Colour ``[n, 3]`` of one :class:`Pattern` at local points ``p`` (``ps``: scaled by the pattern's scale)."""
    if kind == Pattern.NOISE:
        return _mix(c1, c2, fbm(ps * 4))
    if kind == Pattern.STRIPES:
        return _mix(c1, c2, (torch.sin(ps[:, 2] * 12) > 0).to(p.dtype))
    if kind == Pattern.CHECKER:
        return _mix(c1, c2, torch.floor(ps * 4).sum(-1).remainder(2))
    if kind == Pattern.GRADIENT:
        return _mix(c1, c2, (p[:, 2] * 0.5 + 0.5).clamp(0, 1))
    if kind == Pattern.DOTS:
        q = ps * 5
        return _mix(c1, c2, ((q - torch.round(q))[:, [0, 2]].norm(dim=-1) < 0.25).to(p.dtype))
    if kind == Pattern.HAIR:
        # Strands run along local z: high frequency across (x, y), low along z.
        q = torch.stack([ps[:, 0] * 40, ps[:, 1] * 40, ps[:, 2] * 2.5], -1)
        return _mix(c1, c2, 0.55 * value_noise(q) + 0.45 * value_noise(q * 2.1 + 3.3))
    if kind == Pattern.SKIN:
        return c1 * (1.0 + 0.08 * (fbm(ps * 6, 2) - 0.5))[:, None]
    if kind == Pattern.IRIS:
        u = torch.nn.functional.normalize(p, dim=-1)
        front = -u[:, 1]  # cos of the angle from the local -y axis
        iris = (front > 0.86).to(p.dtype)
        pupil = (front > 0.96).to(p.dtype)
        ring = 0.8 + 0.2 * torch.sin(torch.atan2(u[:, 0], u[:, 2]) * 24)
        return _mix(c1, c2 * ring[:, None], iris) * (1 - pupil[:, None] * 0.95)
    return c1  # SOLID


def _albedo(pattern: Tensor, scale: Tensor, c1: Tensor, c2: Tensor, p: Tensor) -> Tensor:
    """Base colour ``[N, 3]`` of ``N`` surface points given their primitives' texture parameters (each
    pattern is evaluated on its own points only)."""
    ps = p * scale[:, None]
    out = c1.clone()
    for kind in torch.unique(pattern).tolist():
        if kind == Pattern.SOLID:
            continue
        sel = torch.nonzero(pattern == kind).flatten()
        out[sel] = _pattern_colour(kind, *(x.index_select(0, sel) for x in (c1, c2, p, ps)))
    return out.clamp(0, 1)


def _face_layer(base: Tensor, p: Tensor, params: Tensor) -> Tensor:
    """Brows, stubble and blush painted on the head primitive (local frame: face toward -y, z up).

    ``params = (brow_r, brow_g, brow_b, brow_height, brow_thickness, stubble, blush, brow_tilt)``.
    """
    x, y, z = p.unbind(-1)
    brow_c = params[:, 0:3]
    height, thick, stubble, blush, tilt = params[:, 3], params[:, 4], params[:, 5], params[:, 6], params[:, 7]
    front = (y < -0.55).to(p.dtype)
    # Brows: two arcs above the eyes at |x| in [0.12, 0.52].
    ax = x.abs()
    arc = height + 0.05 - 0.35 * (ax - 0.32) ** 2 + tilt * (ax - 0.32)
    brow = front * ((ax > 0.1) & (ax < 0.55)).to(p.dtype) * ((z - arc).abs() < thick).to(p.dtype)
    out = _mix(base, brow_c, 0.9 * brow)
    # Stubble / beard shadow on the jaw and upper lip.
    jaw = ((z < -0.2) & (y < -0.2)).to(p.dtype) * (1 - ((z < -0.62) & (ax < 0.2)).to(p.dtype) * 0.0)
    grain = (value_noise(p * 60) > 0.45).to(p.dtype)
    out = _mix(out, brow_c * 0.8, 0.55 * stubble * jaw * grain)
    # Blush on the cheeks.
    cheek = torch.exp(-(((ax - 0.42) / 0.12) ** 2 + ((z + 0.12) / 0.12) ** 2)) * front
    return _mix(out, out * torch.tensor([1.05, 0.75, 0.75], device=p.device), blush * cheek)


def _ambient_occlusion(table: PrimitiveTable, b_idx: Tensor, prim: Tensor, p: Tensor, n: Tensor) -> Tensor:
    """Analytic occlusion by every other primitive, each approximated by its equivalent sphere.

    Per point and occluder (centre ``c``, radius ``r``, ``v = c - p``): ``max(0, cos(n, v)) * min(1, r / |v|)²``,
    summed over the additive, unmasked occluders that do not contain the point; ``|v|²`` and ``n.v`` are
    matrix products per subject (``[N, K]`` without ``[N, K, 3]`` temporaries).
    """
    lin = torch.linalg.inv(table.w2l[..., :3])  # [B, K, 3, 3] local -> world
    centre = -(lin @ table.w2l[..., 3:4])[..., 0]  # [B, K, 3]
    radius = torch.linalg.det(lin).abs().pow(1 / 3)  # [B, K]
    static = (table.kind != Kind.NONE) & (table.op == Op.ADD) & (table.mask == 0)  # [B, K]
    out = torch.ones(len(p), dtype=p.dtype, device=p.device)
    for b in torch.unique(b_idx).tolist():
        sel = torch.nonzero(b_idx == b).flatten()
        cols = torch.nonzero(static[b]).flatten()  # the possible occluders only
        ps, ns, c, r = p[sel], n[sel], centre[b, cols], radius[b, cols]
        # |v|² = |p|² - 2 p.c + |c|² and n.v = n.c - n.p as fused matrix products; outside the occluder
        # (|v| > r) min(1, r / |v|)² is r² / |v|², so occ = max(0, n.v) r² / |v|³.
        dist2 = torch.addmm((c * c).sum(-1)[None], ps, c.t(), alpha=-2).add_((ps * ps).sum(-1, keepdim=True))
        vn = torch.addmm(-(ps * ns).sum(-1, keepdim=True), ns, c.t())
        valid = (dist2 > r * r) & (cols != prim[sel, None])
        inv_d = torch.rsqrt(dist2.clamp_min(1e-12))
        occ = vn.clamp_min_(0).mul_(inv_d.pow(3)).mul_(r * r).masked_fill_(~valid, 0)
        out[sel] = (1 - 0.6 * occ.sum(-1)).clamp(0.25, 1)
    return out


def _surface_normal(table: PrimitiveTable, b_idx: Tensor, prim: Tensor, inward: Tensor, p: Tensor, view_d: Tensor):
    """World unit normals facing the viewer, local hit points and world->local matrices of hit points."""
    w2l = table.w2l[b_idx, prim]  # [N, 3, 4]
    a = w2l[..., :3]
    p_local = (a @ p[..., None])[..., 0] + w2l[..., 3]
    n = (a.transpose(-1, -2) @ local_normal(table.kind[b_idx, prim], p_local, table.shape[b_idx, prim])[..., None])[..., 0]
    n = torch.nn.functional.normalize(n, dim=-1)
    n = torch.where(inward[:, None], -n, n)
    n = torch.where(((n * view_d).sum(-1) > 0)[:, None], -n, n)  # face the viewer
    return n, p_local, a


def _shade(table: PrimitiveTable, light: Lighting, b_idx: Tensor, prim: Tensor, inward: Tensor, p: Tensor, view_d: Tensor, gen_u: Tensor, settings: SynthSettings):
    """Colour and normal of hit points (flat ``[N]`` arrays; ``b_idx`` is each point's subject)."""
    n, p_local, a = _surface_normal(table, b_idx, prim, inward, p, view_d)
    pattern = table.pattern[b_idx, prim]
    albedo = _albedo(pattern, table.pattern_scale[b_idx, prim], table.colour[b_idx, prim], table.colour2[b_idx, prim], p_local)
    face = torch.nonzero(table.face[b_idx, prim] == 1).flatten()
    if len(face):
        albedo[face] = _face_layer(albedo[face], p_local[face], table.face_params[b_idx[face], prim[face]])
    # Ambient: sky above, ground below, horizon between, attenuated by occlusion.
    up = n[:, 2]
    amb = torch.where(
        (up >= 0)[:, None],
        _mix(light.horizon[b_idx], light.sky[b_idx], up.clamp(0, 1)),
        _mix(light.horizon[b_idx], light.ground[b_idx], (-up).clamp(0, 1)),
    )
    amb = amb * _ambient_occlusion(table, b_idx, prim, p, n)[:, None]
    key = light.key_colour[b_idx]
    lit = key.abs().sum(-1) > 0
    colour = albedo * amb * 0.85
    if bool(lit.any()):
        # Jitter the light direction inside its cone for soft shadows.
        ldir = light.key_dir[b_idx]
        jitter = (gen_u[:, :3] * 2 - 1) * light.softness[b_idx][:, None]
        ldir_j = torch.nn.functional.normalize(ldir + jitter, dim=-1)
        sss = table.subsurface[b_idx, prim]
        ndl = (n * ldir).sum(-1)
        wrap = ((ndl + sss * 0.5) / (1 + sss * 0.5)).clamp_min(0)
        shadow = torch.ones_like(ndl)
        if settings.shadows:  # only where the key light can contribute (diffuse and highlight need wrap > 0)
            need = torch.nonzero((wrap > 0) & lit).flatten()
            if len(need):
                occluded = any_hit_flat(table, b_idx[need], p[need] + n[need] * 2e-3, ldir_j[need])
                shadow[need] = shadow[need].masked_fill(occluded, 0.15)
        shadow = torch.where(lit, shadow, torch.zeros_like(shadow))
        # Warm, reddish terminator for subsurface-like skin.
        sss_tint = 1 + sss[:, None] * torch.tensor([0.12, -0.04, -0.08], device=p.device) * (1 - ndl.clamp(0, 1))[:, None]
        diffuse = albedo * key * (wrap * shadow)[:, None] * sss_tint
        h = torch.nn.functional.normalize(ldir - view_d, dim=-1)
        rough = table.roughness[b_idx, prim]
        exponent = 2 + (1 - rough) * 120
        spec_strength = table.specular[b_idx, prim]
        blinn = (n * h).sum(-1).clamp_min(0) ** exponent
        tangent = torch.nn.functional.normalize(a.transpose(-1, -2)[..., 2], dim=-1)  # local z in world
        th = (tangent * h).sum(-1)
        kajiya = torch.sqrt((1 - th * th).clamp_min(0)) ** (exponent * 0.5)
        spec = torch.where(pattern == Pattern.HAIR, 0.6 * kajiya, blinn) * spec_strength * shadow * (ndl > 0)
        colour = colour + diffuse + key * spec[:, None]
    return colour.clamp(0, 1), n


def any_hit_flat(table: PrimitiveTable, b_idx: Tensor, origins: Tensor, dirs: Tensor) -> Tensor:
    """:func:`any_hit` for flat ray lists whose subjects are ``b_idx``: rays are regrouped per subject."""
    out = torch.zeros(len(origins), dtype=torch.bool, device=origins.device)
    for b in torch.unique(b_idx).tolist():
        sel = b_idx == b
        out[sel] = any_hit(table[b], origins[sel][None], dirs[sel][None])[0]
    return out


def render_scene(
    table: PrimitiveTable,
    cameras: Cameras,
    lighting: Lighting,
    settings: SynthSettings = SynthSettings(),
) -> SynthOutput:
    """Render ``B`` scenes from their own ``V`` cameras each.

    Args:
        table: ``[B, K]`` primitives.
        cameras: ``[B, V]`` cameras (same device as the table).
        lighting: per-subject :class:`Lighting` (``[B, ...]``).
        settings: :class:`SynthSettings`.

    Returns:
        :class:`SynthOutput` with ``[B, V, ...]`` images at the cameras' resolution.
    """
    if cameras.batch_shape[:1] != (table.batch_size,) or len(cameras.batch_shape) != 2:
        raise ValueError(f"cameras must be [B={table.batch_size}, V], got {tuple(cameras.batch_shape)}")
    ss = int(settings.supersample)
    if ss < 1:
        raise ValueError(f"supersample must be >= 1, got {ss}")
    B, V = cameras.batch_shape
    W, H = cameras.width, cameras.height
    cams_hi = cameras.resized(W * ss, H * ss) if ss > 1 else cameras
    origins, dirs = camera_rays(cams_hi)  # [B, V, H', W', 3]
    forward = cams_hi.c2w[..., :3, 2]  # [B, V, 3]
    z_scale = (dirs * forward[:, :, None, None]).sum(-1)  # camera z per unit t
    origins = origins.reshape(B, -1, 3)
    dirs = dirs.reshape(B, -1, 3)
    z_scale = z_scale.reshape(B, -1)
    R = origins.shape[1]
    rgb = torch.zeros(B, R, 3, device=origins.device, dtype=origins.dtype)
    alpha = torch.zeros(B, R, device=origins.device, dtype=origins.dtype)
    depth = torch.zeros(B, R, device=origins.device, dtype=origins.dtype)
    normals = torch.zeros(B, R, 3, device=origins.device, dtype=origins.dtype)
    light = lighting.to(origins.device)
    # Subject by subject: a single subject's primitive kinds are fixed per column, which lets the ray
    # caster use each kind's short closed form; chunks of rays bound the [R, K] temporaries. On the CPU the
    # chunks run in a pool of threads (torch releases the GIL inside its kernels, and most of a chunk's
    # tensors are too small for intra-op parallelism); each chunk draws its shadow jitter from its own
    # generator, so the pixels do not depend on the order or the number of threads.
    chunk = settings.chunk_rays or (2**22 if origins.device.type == "cuda" else 2**16)

    def render_chunk(b: int, start: int) -> None:
        sub = table[b]
        light_b = Lighting(*(getattr(light, k)[b : b + 1] for k in ("sky", "horizon", "ground", "key_dir", "key_colour", "softness")))
        sl = slice(start, min(R, start + chunk))
        hits = cast_rays(sub, origins[b : b + 1, sl], dirs[b : b + 1, sl])
        r_idx = torch.nonzero(hits.hit[0]).flatten()
        if len(r_idx) == 0:
            return
        zeros = torch.zeros_like(r_idx)
        t = hits.t[0, r_idx]
        d = dirs[b, sl][r_idx]
        p = origins[b, sl][r_idx] + t[:, None] * d
        u = torch.rand(len(r_idx), 3, generator=seeded_generator(settings.seed, b, start)).to(p)
        colour, n = _shade(sub, light_b, zeros, hits.prim[0, r_idx], hits.inward[0, r_idx], p, d, u, settings)
        idx = r_idx + start
        rgb[b, idx] = colour
        alpha[b, idx] = 1.0
        depth[b, idx] = t * z_scale[b, idx]
        normals[b, idx] = n

    tasks = [(b, start) for b in range(B) for start in range(0, R, chunk)]
    threads = settings.threads if settings.threads is not None else (torch.get_num_threads() if origins.device.type == "cpu" else 1)
    if threads > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(min(threads, len(tasks))) as pool:
            for future in [pool.submit(render_chunk, b, start) for b, start in tasks]:
                future.result()
    else:
        for b, start in tasks:
            render_chunk(b, start)

    def down(x: Tensor, c: int) -> Tensor:
        x = x.reshape(B * V, H * ss, W * ss, c).permute(0, 3, 1, 2)
        if ss > 1:
            x = torch.nn.functional.avg_pool2d(x, ss)
        return x.reshape(B, V, c, H, W)

    a = down(alpha[..., None], 1)
    # Average colour over covered samples only, so edges do not darken toward the (absent) background.
    colour = down(rgb * alpha[..., None], 3) / a.clamp_min(1e-6)
    if ss > 1:
        # Depth and normals at the pixel centres (averaging depths across an edge is meaningless): the
        # middle sample for odd factors, a separate centre ray for even ones.
        if ss % 2:
            c = ss // 2
            depth_img = depth.reshape(B * V, H, ss, W, ss)[:, :, c, :, c].reshape(B, V, 1, H, W)
            n_img = normals.reshape(B * V, H, ss, W, ss, 3)[:, :, c, :, c].permute(0, 3, 1, 2).reshape(B, V, 3, H, W)
        else:
            depth_img, n_img = _centre_depth_normals(table, cameras, chunk)
    else:
        depth_img, n_img = down(depth[..., None], 1), down(normals, 3)
    return SynthOutput(torch.cat([colour.clamp(0, 1), a], 2), depth_img, n_img)


def _centre_depth_normals(table: PrimitiveTable, cameras: Cameras, chunk: int) -> tuple[Tensor, Tensor]:
    """``(depth [B, V, 1, H, W], normals [B, V, 3, H, W])`` from one ray through each pixel centre."""
    B, V = cameras.batch_shape
    W, H = cameras.width, cameras.height
    origins, dirs = camera_rays(cameras)
    z_scale = (dirs * cameras.c2w[..., :3, 2][:, :, None, None]).sum(-1).reshape(B, -1)
    origins, dirs = origins.reshape(B, -1, 3), dirs.reshape(B, -1, 3)
    depth = torch.zeros(B, origins.shape[1], dtype=origins.dtype, device=origins.device)
    normals = torch.zeros(B, origins.shape[1], 3, dtype=origins.dtype, device=origins.device)
    for b in range(B):
        sub = table[b]
        for start in range(0, origins.shape[1], chunk):
            sl = slice(start, min(origins.shape[1], start + chunk))
            hits = cast_rays(sub, origins[b : b + 1, sl], dirs[b : b + 1, sl])
            r_idx = torch.nonzero(hits.hit[0]).flatten()
            if len(r_idx) == 0:
                continue
            t = hits.t[0, r_idx]
            d = dirs[b, sl][r_idx]
            p = origins[b, sl][r_idx] + t[:, None] * d
            n, _, _ = _surface_normal(sub, torch.zeros_like(r_idx), hits.prim[0, r_idx], hits.inward[0, r_idx], p, d)
            depth[b, r_idx + start] = t * z_scale[b, r_idx + start]
            normals[b, r_idx + start] = n
    return depth.reshape(B, V, 1, H, W), normals.reshape(B, V, H, W, 3).permute(0, 1, 4, 2, 3)
