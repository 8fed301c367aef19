"""Procedural objects in the spirit of Zeroverse (LRM-Zero): random unions of textured primitives.

An object is 1-9 additive shapes (ellipsoids, boxes, cylinders, cones, tori and flat rings) with random
sizes, rotations, procedural textures and materials, attached to one another so that they read as one
thing. About a quarter of the solid shapes carry a height-field relief (value noise carved into the
surface, :class:`~facelift.synthetic.primitives.PrimitiveTable` ``shape``). About 30% of objects are
carved by boolean subtractions (dents, notches, drilled holes), and about 25% carry a thin wireframe (the
edges of a box or a jointed polyline of thin cylinders). A flat ring (a washer) is a short cylinder minus
a coaxial, taller and thinner cylinder in its own carving ``group``, so that the hole does not cut other
parts; a torus is its own primitive.

Everything is deterministic in the object id. The object is recentred and scaled so that its additive
parts fit in a sphere of radius :data:`MAX_RADIUS` about the origin, which the reference cameras (orbit
radius 2.7, FOV 50) see whole and at a good size.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor

from facelift.cameras.conventions import quat_to_rotmat
from facelift.synthetic.primitives import seeded_generator
from facelift.synthetic.primitives import Kind, Op, Pattern, PrimitiveBuilder, PrimitiveTable

__all__ = [
    "MAX_RADIUS",
    "OBJECT_PATTERNS",
    "ADDITIVE_ROLES",
    "Material",
    "PartSpec",
    "ObjectSpec",
    "sample_object",
    "build_object",
    "object_scene",
    "segment_rotation",
    "part_extreme_points",
]

MAX_RADIUS = 0.9
"""Every additive part lies inside this sphere about the origin (world units)."""
OBJECT_PATTERNS = (Pattern.SOLID, Pattern.NOISE, Pattern.STRIPES, Pattern.CHECKER, Pattern.GRADIENT, Pattern.DOTS)
ADDITIVE_ROLES = ("solid", "ring")
"""Roles of the 1-9 primary shapes; the other roles are ``carve`` and ``ring_hole`` (subtractions),
``wire`` (thin cylinders) and ``joint`` (small spheres where wires meet)."""

_CARVE_PROB = 0.3
_WIRE_PROB = 0.25
_RING_PROB = 0.12
_RELIEF_PROB = 0.25
_CARVE_GROUP = 0
_WIRE_GROUP = 1
_FIRST_RING_GROUP = 2


@dataclass(frozen=True)
class Material:
    """Surface appearance of one part (see :class:`~facelift.synthetic.primitives.PrimitiveTable`)."""

    colour: tuple[float, float, float]
    colour2: tuple[float, float, float]
    pattern: int
    """A :class:`~facelift.synthetic.primitives.Pattern` id from :data:`OBJECT_PATTERNS`."""
    pattern_scale: float
    roughness: float
    specular: float
    subsurface: float


@dataclass(frozen=True)
class PartSpec:
    """One primitive: ``world = rotation @ diag(size) @ local + centre`` for the canonical ``kind``."""

    role: str
    """``solid``, ``ring``, ``ring_hole``, ``carve``, ``wire`` or ``joint``."""
    kind: int
    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    """Semi-axes of the canonical shape (a cylinder's radii and half height)."""
    rotation: tuple[tuple[float, float, float], ...]
    """Row-major 3x3 rotation matrix (local -> world)."""
    material: Material
    op: int = Op.ADD
    group: int = _CARVE_GROUP
    """Subtractions carve the additive parts of their own group only."""
    relief: tuple[float, float, float] = (0.0, 1.0, 0.0)
    """Height-field relief ``(depth, frequency, offset)`` in the canonical shape's units (depth 0: none)."""
    tube: float = 0.0
    """A torus's tube radius relative to its outer radius (tori only)."""


@dataclass(frozen=True)
class ObjectSpec:
    """The sampled parameters of one object; ``dataclasses.asdict`` gives a JSON-serialisable dict."""

    object_id: int
    parts: tuple[PartSpec, ...]
    carved: bool
    """Whether boolean subtractions (other than ring holes) carve the object."""
    wireframe: bool
    """Whether the object carries thin wire parts."""
    radius: float
    """Radius of the sphere about the origin that bounds the additive parts."""

    @property
    def num_shapes(self) -> int:
        """Number of primary additive shapes (1-9)."""
        return sum(p.role in ADDITIVE_ROLES for p in self.parts)


# ----------------------------------------------------------------------------------------------------
# Geometry helpers


def segment_rotation(a, b) -> Tensor:
    """Rotation whose third column (the local z of a cylinder) points from ``a`` to ``b``.

    Args:
        a, b: ``[3]`` end points (sequences or tensors); they must differ.

    Returns:
        ``[3, 3]`` float64 rotation with determinant +1.

    Example:
        >>> segment_rotation((0, 0, 0), (0, 0, 2))[:, 2]
        tensor([0., 0., 1.], dtype=torch.float64)
    """
    d = torch.as_tensor(b, dtype=torch.float64) - torch.as_tensor(a, dtype=torch.float64)
    length = d.norm()
    if not bool(length > 1e-12):
        raise ValueError("segment end points must differ")
    z = d / length
    # Any unit vector not parallel to z completes the frame.
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) if z[0].abs() < 0.9 else torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    x = torch.linalg.cross(helper, z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    return torch.stack([x, y, z], 1)


def _fibonacci_sphere(n: int) -> Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = i * math.pi * (3 - math.sqrt(5))
    r = torch.sqrt(1 - z * z)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def _circle(n: int, z: float) -> Tensor:
    a = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return torch.stack([torch.cos(a), torch.sin(a), torch.full_like(a, z)], -1)


def _canonical_extremes(kind: int, tube: float = 0.0) -> Tensor:
    """Points of a canonical shape that include (or, for the sphere, densely sample) its extreme points.

    The farthest point of a convex set from any given point is an extreme point: the cube's corners,
    the cylinder's cap rims, the cone's apex and base rim, every point of the sphere. A torus is
    bounded by its enclosing cylinder (rims of radius 1 at ``z = ±tube``).
    """
    if kind == Kind.TORUS:
        return torch.cat([_circle(96, -tube), _circle(96, tube)])
    if kind == Kind.BOX:
        return torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float64)
    if kind == Kind.CYLINDER:
        return torch.cat([_circle(96, -1.0), _circle(96, 1.0)])
    if kind == Kind.CONE:
        return torch.cat([_circle(96, -1.0), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    if kind == Kind.SPHERE:
        return _fibonacci_sphere(1024)
    raise ValueError(f"unknown primitive kind {kind}")


def part_extreme_points(part: PartSpec) -> Tensor:
    """``[M, 3]`` world points whose farthest from any point bounds the part (float64).

    Example:
        >>> from facelift.synthetic.primitives import Kind
        >>> m = Material((1, 1, 1), (1, 1, 1), 0, 1.0, 0.5, 0.0, 0.0)
        >>> eye = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
        >>> part_extreme_points(PartSpec("solid", Kind.BOX, (0, 0, 0), (1, 2, 3), eye, m)).amax(0)
        tensor([1., 2., 3.], dtype=torch.float64)
    """
    rot = torch.tensor(part.rotation, dtype=torch.float64)
    size = torch.tensor(part.size, dtype=torch.float64)
    return _canonical_extremes(part.kind, part.tube) * size @ rot.T + torch.tensor(part.centre, dtype=torch.float64)


def _tuple3(x: Tensor) -> tuple[float, float, float]:
    return tuple(float(v) for v in x.tolist())


def _rot_tuple(r: Tensor) -> tuple[tuple[float, float, float], ...]:
    return tuple(_tuple3(row) for row in r)


# ----------------------------------------------------------------------------------------------------
# Sampling


class _Sampler:
    """Thin wrapper over a seeded ``torch.Generator`` (every draw goes through it, in a fixed order)."""

    def __init__(self, g: torch.Generator) -> None:
        self.g = g

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * float(torch.rand(1, generator=self.g, dtype=torch.float64))

    def chance(self, p: float) -> bool:
        return self.uniform() < p

    def integer(self, lo: int, hi: int) -> int:
        """Uniform in ``[lo, hi]``."""
        return int(torch.randint(lo, hi + 1, (1,), generator=self.g))

    def choice(self, seq, weights=None):
        if weights is None:
            return seq[self.integer(0, len(seq) - 1)]
        w = torch.tensor(weights, dtype=torch.float64)
        return seq[int(torch.multinomial(w, 1, generator=self.g))]

    def unit_vector(self) -> Tensor:
        v = torch.randn(3, generator=self.g, dtype=torch.float64)
        return v / v.norm().clamp_min(1e-12)

    def rotation(self) -> Tensor:
        """Uniformly random rotation, or (30%) one of the axis-aligned frames turned about z."""
        if self.chance(0.3):
            yaw = self.uniform(0, 2 * math.pi)
            c, s = math.cos(yaw), math.sin(yaw)
            return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        q = torch.randn(4, generator=self.g, dtype=torch.float64)
        return quat_to_rotmat(q)


def _random_colour(s: _Sampler) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(s.uniform(), s.uniform(0.15, 0.9), s.uniform(0.25, 0.95))


def _sample_material(s: _Sampler) -> Material:
    colour = _random_colour(s)
    if s.chance(0.5):
        colour2 = _random_colour(s)
    else:  # a tint of the same hue: lighter or darker
        k = s.choice((0.35, 0.55, 1.5, 1.9))
        colour2 = tuple(min(1.0, c * k + (0.08 if k > 1 else 0.0)) for c in colour)
    pattern = s.choice(OBJECT_PATTERNS, weights=(0.3, 0.16, 0.14, 0.14, 0.12, 0.14))
    return Material(
        colour=tuple(colour),
        colour2=tuple(colour2),
        pattern=int(pattern),
        pattern_scale=math.exp(s.uniform(math.log(0.5), math.log(2.5))),
        roughness=s.uniform(0.1, 0.9),
        specular=s.uniform(0.0, 0.8),
        subsurface=s.uniform(0.0, 0.3),
    )


def _sample_shapes(s: _Sampler, n: int) -> list[PartSpec]:
    """``n`` additive shapes (plus ring holes), each attached near the surface of an earlier one."""
    parts: list[PartSpec] = []
    anchors: list[PartSpec] = []
    material = _sample_material(s)
    for i in range(n):
        if i > 0 and not s.chance(0.3):  # most parts get their own look, some continue the last one
            material = _sample_material(s)
        rot = s.rotation()
        if i == 0 or s.chance(0.15):
            centre = torch.randn(3, generator=s.g, dtype=torch.float64) * (0.0 if i == 0 else 0.25)
        else:  # on the surface region of an earlier shape, so that the object holds together
            anchor = anchors[s.integer(0, len(anchors) - 1)]
            local = s.unit_vector() * s.uniform(0.6, 1.0)
            a_rot = torch.tensor(anchor.rotation, dtype=torch.float64)
            centre = a_rot @ (local * torch.tensor(anchor.size, dtype=torch.float64)) + torch.tensor(anchor.centre, dtype=torch.float64)
        if s.chance(_RING_PROB):
            outer = s.uniform(0.3, 0.6)
            aspect = s.uniform(0.7, 1.0)
            half_h = s.uniform(0.05, 0.2)
            inner = outer * s.uniform(0.45, 0.8)
            group = _FIRST_RING_GROUP + i
            ring = PartSpec("ring", Kind.CYLINDER, _tuple3(centre), (outer, outer * aspect, half_h), _rot_tuple(rot), material, Op.ADD, group)
            hole = PartSpec("ring_hole", Kind.CYLINDER, _tuple3(centre), (inner, inner * aspect, half_h * 1.6), _rot_tuple(rot), material, Op.SUBTRACT, group)
            parts += [ring, hole]
            anchors.append(ring)
            continue
        kind = s.choice((Kind.SPHERE, Kind.BOX, Kind.CYLINDER, Kind.CONE, Kind.TORUS), weights=(0.27, 0.27, 0.19, 0.16, 0.11))
        size = torch.tensor([s.uniform(0.15, 0.6) for _ in range(3)], dtype=torch.float64)
        # Keep every axis at least a third of the longest, so no part is a sliver seen end-on.
        size = torch.maximum(size, size.max() / 3)
        if kind in (Kind.CYLINDER, Kind.CONE, Kind.TORUS) and s.chance(0.6):  # round cross-sections read better
            size[1] = size[0]
        tube = s.uniform(0.2, 0.45) if kind == Kind.TORUS else 0.0
        if kind == Kind.TORUS:  # a torus's z extent is tube * size[2]: keep the tube round-ish
            size[2] = float(size[:2].mean())
        relief = (0.0, 1.0, 0.0)
        if s.chance(_RELIEF_PROB):
            relief = (s.uniform(0.06, 0.2), s.uniform(1.5, 5.0), s.uniform(0.0, 100.0))
        part = PartSpec("solid", int(kind), _tuple3(centre), _tuple3(size), _rot_tuple(rot), material, relief=relief, tube=tube)
        parts.append(part)
        anchors.append(part)
    return parts


def _sample_carves(s: _Sampler, shapes: list[PartSpec]) -> list[PartSpec]:
    """1-3 subtractions that cut the outside of the object: notches and dents at support points of
    its hull, or holes drilled through a solid shape (chosen in proportion to its volume)."""
    solids = [p for p in shapes if p.role == "solid" and p.kind != Kind.TORUS]  # drilling a torus: no
    hull = torch.cat([part_extreme_points(p) for p in shapes if p.op == Op.ADD])  # [M, 3]
    extent = float((hull - (hull.amin(0) + hull.amax(0)) / 2).norm(dim=-1).max())
    carves: list[PartSpec] = []
    for _ in range(s.integer(1, 3)):
        material = _sample_material(s)
        if s.chance(0.3) and solids:  # a hole drilled through a solid along one of its axes
            target = s.choice(solids, weights=[math.prod(p.size) for p in solids])
            t_rot = torch.tensor(target.rotation, dtype=torch.float64)
            t_size = torch.tensor(target.size, dtype=torch.float64)
            axis = s.integer(0, 2)
            perm = [(axis + 1) % 3, (axis + 2) % 3, axis]
            rot = t_rot[:, perm]  # a cyclic permutation of the columns keeps det = +1
            width = float(t_size[perm[:2]].min()) * s.uniform(0.3, 0.6)
            carve = PartSpec("carve", Kind.CYLINDER, target.centre, (width, width, float(t_size[axis]) * 1.5), _rot_tuple(rot), material, Op.SUBTRACT, _CARVE_GROUP)
        else:  # centred near the object's farthest point along a random direction
            u = s.unit_vector()
            support = hull[int((hull @ u).argmax())]
            size = tuple(extent * s.uniform(0.15, 0.4) for _ in range(3))
            centre = support + u * (max(size) * s.uniform(-0.5, 0.4))
            kind = s.choice((Kind.SPHERE, Kind.BOX, Kind.CYLINDER), weights=(0.45, 0.35, 0.2))
            carve = PartSpec("carve", int(kind), _tuple3(centre), size, _rot_tuple(s.rotation()), material, Op.SUBTRACT, _CARVE_GROUP)
        if any(_bounds_overlap(carve, c) for c in carves):
            # Overlapping subtractions are resolved in table order by the ray caster, which can leave
            # a stray carved surface inside another carve; keep carves apart instead.
            continue
        carves.append(carve)
    return carves


def _bounds_overlap(a: PartSpec, b: PartSpec) -> bool:
    """Whether the bounding spheres of two parts intersect."""
    dist = math.dist(a.centre, b.centre)
    return dist < math.hypot(*a.size) + math.hypot(*b.size)


def _normalise(parts: list[PartSpec], radius: float) -> list[PartSpec]:
    """Translate and scale all parts together so that the additive ones fit ``radius`` about the origin."""
    pts = torch.cat([part_extreme_points(p) for p in parts if p.op == Op.ADD])
    mid = _enclosing_centre(pts)
    scale = radius / float((pts - mid).norm(dim=-1).max())
    out = []
    for p in parts:
        centre = (torch.tensor(p.centre, dtype=torch.float64) - mid) * scale
        if p.op == Op.SUBTRACT and float(centre.norm()) > radius:  # keep carving centres inside too
            centre = centre * (radius / float(centre.norm()))
        out.append(replace(p, centre=_tuple3(centre), size=tuple(v * scale for v in p.size)))
    return out


def _enclosing_centre(points: Tensor, iterations: int = 200) -> Tensor:
    """Approximate centre of the smallest sphere enclosing ``points [M, 3]`` (Badoiu-Clarkson: step
    toward the farthest point by 1/(i+1); the radius is within about 1/sqrt(iterations) of optimal)."""
    c = (points.amin(0) + points.amax(0)) / 2
    points = points[:: max(1, len(points) // 1024)]  # the centre need not be exact: callers rescale
    for i in range(iterations):
        far = points[int((points - c).square().sum(-1).argmax())]
        c = c + (far - c) / (i + 2)
    return c


def _wire_material(s: _Sampler) -> Material:
    m = _sample_material(s)
    # Wires are too thin to show a texture; metal-like or plastic-like solid colours.
    return replace(m, pattern=Pattern.SOLID if s.chance(0.7) else Pattern.GRADIENT, roughness=s.uniform(0.1, 0.5), specular=s.uniform(0.3, 0.8))


def _wire(a: Tensor, b: Tensor, r: float, material: Material) -> PartSpec:
    half = float((b - a).norm()) / 2
    return PartSpec("wire", Kind.CYLINDER, _tuple3((a + b) / 2), (r, r, half), _rot_tuple(segment_rotation(a, b)), material, Op.ADD, _WIRE_GROUP)


def _joint(p: Tensor, r: float, material: Material) -> PartSpec:
    eye = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    return PartSpec("joint", Kind.SPHERE, _tuple3(p), (r, r, r), eye, material, Op.ADD, _WIRE_GROUP)


def _sample_wireframe(s: _Sampler, radius: float) -> list[PartSpec]:
    """Thin cylinders (radius 0.01-0.02) along the edges of a box or a random polyline, with joints."""
    r = s.uniform(0.01, 0.02)
    material = _wire_material(s)
    reach = radius - r  # end points stay inside the object's sphere
    if s.chance(0.5):
        rot = s.rotation()
        half = torch.tensor([s.uniform(0.25, 0.65) for _ in range(3)], dtype=torch.float64)
        centre = s.unit_vector() * s.uniform(0.0, 0.3)
        signs = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float64)
        corners = (signs * half) @ rot.T + centre  # [8, 3]
        corners = corners * min(1.0, reach / float(corners.norm(dim=-1).max()))
        edges = [(i, j) for i in range(8) for j in range(i + 1, 8) if int((signs[i] != signs[j]).sum()) == 1]
        parts = [_wire(corners[i], corners[j], r, material) for i, j in edges]
        return parts + [_joint(c, r, material) for c in corners]
    points = [s.unit_vector() * s.uniform(0.3, reach) for _ in range(s.integer(3, 7))]
    if s.chance(0.4):  # a closed loop
        points.append(points[0])
    parts = [_wire(a, b, r, material) for a, b in zip(points[:-1], points[1:]) if float((b - a).norm()) > 1e-3]
    return parts + [_joint(p, r, material) for p in points]


def sample_object(object_id: int) -> ObjectSpec:
    """Deterministic object for an id (any non-negative integer).

    Example:
        >>> spec = sample_object(7)
        >>> 1 <= spec.num_shapes <= 9 and spec == sample_object(7)
        True
    """
    s = _Sampler(seeded_generator(object_id, 0x0B1EC7))
    n = s.choice(range(1, 10), weights=(0.06, 0.1, 0.12, 0.13, 0.13, 0.13, 0.12, 0.11, 0.1))
    parts = _sample_shapes(s, n)
    carved = s.chance(_CARVE_PROB) and any(p.role == "solid" for p in parts)
    if carved:
        parts += _sample_carves(s, parts)
    radius = s.uniform(0.82, MAX_RADIUS)
    parts = _normalise(parts, radius)
    wireframe = s.chance(_WIRE_PROB)
    if wireframe:
        parts += _sample_wireframe(s, radius)
    return ObjectSpec(object_id=int(object_id), parts=tuple(parts), carved=carved, wireframe=wireframe, radius=radius)


# ----------------------------------------------------------------------------------------------------
# Building


def build_object(spec: ObjectSpec, *, include_subtract: bool = True) -> PrimitiveBuilder:
    """Assemble the primitives of one object; returns the builder (``.build()`` gives the table).

    Args:
        spec: the sampled object.
        include_subtract: ``False`` drops every subtraction (carves and ring holes), e.g. to compare.

    Example:
        >>> build_object(sample_object(0)).build().batch_size
        1
    """
    b = PrimitiveBuilder()
    for p in spec.parts:
        if p.op == Op.SUBTRACT and not include_subtract:
            continue
        m = p.material
        b.add(
            p.kind, centre=p.centre, size=p.size, rotation=torch.tensor(p.rotation, dtype=torch.float64),
            colour=m.colour, colour2=m.colour2, pattern=m.pattern, pattern_scale=m.pattern_scale,
            roughness=m.roughness, specular=m.specular, subsurface=m.subsurface, op=p.op, group=p.group,
            relief=p.relief, tube=p.tube,
        )  # fmt: skip
    return b


def object_scene(object_id: int, device: torch.device | str = "cpu") -> tuple[PrimitiveTable, dict]:
    """The ``[1, K]`` primitive table of one object and its generating parameters (for manifests).

    Example:
        >>> table, params = object_scene(3)
        >>> table.batch_size, params["object_id"]
        (1, 3)
    """
    spec = sample_object(object_id)
    table = build_object(spec).build(device=device)
    return table, {"object_id": int(object_id), "object": asdict(spec)}
