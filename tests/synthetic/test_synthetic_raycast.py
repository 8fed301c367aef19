import math

import pytest
import torch

from facelift.synthetic.primitives import Kind, Mask, Op, PrimitiveBuilder, PrimitiveTable
from facelift.synthetic.raycast import (
    MARCH_STEPS,
    any_hit,
    bounding_spheres,
    cast_rays,
    implicit_value,
    intersect_intervals,
    local_normal,
)


def _inside_local(kind: int, p: torch.Tensor) -> torch.Tensor:
    x, y, z = p.unbind(-1)
    if kind == Kind.SPHERE:
        return (p * p).sum(-1) <= 1
    if kind == Kind.BOX:
        return p.abs().amax(-1) <= 1
    if kind == Kind.CYLINDER:
        return (x * x + y * y <= 1) & (z.abs() <= 1)
    return (torch.sqrt(x * x + y * y) <= (1 - z) / 2) & (z.abs() <= 1)


def _random_table(seed: int, kinds=(Kind.SPHERE, Kind.BOX, Kind.CYLINDER, Kind.CONE)) -> PrimitiveTable:
    g = torch.Generator().manual_seed(seed)
    b = PrimitiveBuilder()
    for kind in kinds:
        c = ((torch.rand(3, generator=g) * 2 - 1) * 0.5).tolist()
        size = (torch.rand(3, generator=g) * 0.4 + 0.15).tolist()
        rot = tuple((torch.rand(3, generator=g) * 2 * math.pi).tolist())
        b.add(kind, centre=c, size=size, rotation=rot)
    return b.build(dtype=torch.float64)


def _rays(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    o = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1) * 2.5
    target = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * 0.6
    d = torch.nn.functional.normalize(target - o, dim=-1)
    return o[None], d[None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intervals_match_dense_sampling(seed):
    table = _random_table(seed)
    o, d = _rays(400, seed)
    t_in, t_out = intersect_intervals(table, o, d)
    ts = torch.linspace(0, 5, 5001, dtype=torch.float64)
    step = ts[1] - ts[0]
    pts = o[0, :, None] + ts[None, :, None] * d[0, :, None]  # [R, S, 3]
    hits = 0
    for k in range(table.num):
        a, b = table.w2l[0, k, :, :3], table.w2l[0, k, :, 3]
        local = pts @ a.t() + b
        inside = _inside_local(int(table.kind[0, k]), local)  # [R, S]
        any_in = inside.any(-1)
        finite = torch.isfinite(t_in[0, :, k])
        # Sampling can miss grazing chords shorter than its step; everything else must agree.
        long_chord = finite & (t_out[0, :, k] - t_in[0, :, k] > 2 * step)
        assert not (any_in & ~finite).any(), f"sampled inside but no analytic hit (kind {int(table.kind[0, k])})"
        assert any_in[long_chord].all(), f"analytic chord not found by sampling (kind {int(table.kind[0, k])})"
        any_in = any_in & long_chord
        if any_in.any():
            first = ts[inside.float().argmax(-1)]
            last = ts[inside.shape[1] - 1 - inside.flip(-1).float().argmax(-1)]
            torch.testing.assert_close(t_in[0, any_in, k], first[any_in], atol=step.item() * 1.01, rtol=0)
            torch.testing.assert_close(t_out[0, any_in, k], last[any_in], atol=step.item() * 1.01, rtol=0)
            hits += int(any_in.sum())
    assert hits > 100  # the test actually exercises intersections


def _assert_single_equals_batched(a: PrimitiveTable, b: PrimitiveTable, o: torch.Tensor, d: torch.Tensor) -> None:
    """The culled one-subject path and the general batched path give the same intervals for both tables."""
    single = [intersect_intervals(t, o, d) for t in (a, b)]
    batched = intersect_intervals(PrimitiveTable.stack([a, b]), o.expand(2, -1, -1), d.expand(2, -1, -1))
    for i in range(2):
        for x, y in zip(single[i], (batched[0][i : i + 1], batched[1][i : i + 1])):
            finite = torch.isfinite(x)
            assert torch.equal(finite, torch.isfinite(y))
            torch.testing.assert_close(x[finite], y[finite], rtol=1e-9, atol=1e-9)


def test_culled_single_subject_equals_general_batched_path():
    a, b = _random_table(5), _random_table(6, kinds=(Kind.CONE, Kind.SPHERE, Kind.BOX, Kind.CYLINDER))
    _assert_single_equals_batched(a, b, *_rays(300, 7))


def test_culling_of_rays_from_shared_origins_equals_general_batched_path():
    """Runs of rays from one origin (the views of a camera batch) are culled by angle per run; one origin
    sits inside a primitive's bounding sphere, and the rays graze every primitive's silhouette."""
    a, b = _random_table(8), _random_table(9, kinds=(Kind.BOX, Kind.CONE, Kind.CYLINDER, Kind.SPHERE))
    centres, _ = bounding_spheres(a)
    g = torch.Generator().manual_seed(3)
    origins = [torch.tensor([0.0, -2.5, 0.3], dtype=torch.float64), torch.tensor([2.0, 1.0, -1.0], dtype=torch.float64), centres[0, 1]]
    o_runs, d_runs = [], []
    for origin in origins:
        target = (torch.rand(400, 3, generator=g, dtype=torch.float64) * 2 - 1) * 0.9
        o_runs.append(origin.expand(400, 3))
        d_runs.append(torch.nn.functional.normalize(target - origin, dim=-1) * 1.7)  # not unit: t is in their units
    o, d = torch.cat(o_runs)[None], torch.cat(d_runs)[None]
    for table in (a, b):
        culled = intersect_intervals(table, o, d)
        general = intersect_intervals(PrimitiveTable.stack([table, table]), o.expand(2, -1, -1), d.expand(2, -1, -1))
        ahead = general[1][:1] > 0  # intervals entirely behind an origin may be culled (near = 0)
        assert ahead.any() and torch.equal(torch.isfinite(culled[0]) & ahead, torch.isfinite(general[0][:1]) & ahead)
        for x, y in zip(culled, general):
            torch.testing.assert_close(x[ahead], y[:1][ahead], rtol=1e-9, atol=1e-9)
    hits = cast_rays(a, o, d).hit
    assert 0.1 < float(hits.double().mean()) < 0.9  # a mix of hits and misses


def test_bounding_spheres_contain_primitives():
    table = _random_table(3)
    centres, radii = bounding_spheres(table)
    g = torch.Generator().manual_seed(0)
    for k in range(table.num):
        local = (torch.rand(2000, 3, generator=g, dtype=torch.float64) * 2 - 1)
        local = local[_inside_local(int(table.kind[0, k]), local)]
        lin = torch.linalg.inv(table.w2l[0, k, :, :3])
        world = (local - table.w2l[0, k, :, 3]) @ lin.t()
        assert ((world - centres[0, k]).norm(dim=-1) <= radii[0, k] + 1e-9).all()


def test_carving_moves_hit_to_the_carve_exit():
    b = PrimitiveBuilder()
    b.add(Kind.SPHERE, centre=(0, 0, 0), size=(1, 1, 1))
    b.add(Kind.SPHERE, centre=(0, -1, 0), size=(0.5, 0.5, 0.5), op=Op.SUBTRACT)
    table = b.build(dtype=torch.float64)
    o = torch.tensor([[[0.0, -3.0, 0.0], [0.0, -3.0, 0.8]]], dtype=torch.float64)
    d = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    hits = cast_rays(table, o, d)
    # Through the carve: the bite's far wall at y = -0.5 (t = 2.5), owned by the carving primitive.
    assert hits.t[0, 0].item() == pytest.approx(2.5)
    assert hits.prim[0, 0].item() == 1 and bool(hits.inward[0, 0])
    # Beside it: the sphere's own surface.
    assert hits.t[0, 1].item() == pytest.approx(3.0 - math.sqrt(1 - 0.64))
    assert hits.prim[0, 1].item() == 0 and not bool(hits.inward[0, 1])


def test_hairline_mask_removes_the_face_side():
    b = PrimitiveBuilder()
    b.add(Kind.SPHERE, centre=(0, 0, 0), size=(0.5, 0.5, 0.5))
    b.add(Kind.SPHERE, centre=(0, 0, 0), size=(0.6, 0.6, 0.6), mask=Mask.HAIRLINE, mask_params=(0.5, 0.0, -0.5, 0.0))
    table = b.build(dtype=torch.float64)
    o = torch.tensor([[[0.0, -3.0, 0.0], [0.0, 0.0, 3.0], [0.0, 3.0, 0.0]]], dtype=torch.float64)
    d = -torch.nn.functional.normalize(o, dim=-1)
    hits = cast_rays(table, o, d)
    assert hits.prim[0].tolist() == [0, 1, 1]  # face: head; top and back: hair


def test_local_normals_are_outward_gradients():
    g = torch.Generator().manual_seed(1)
    dirs = torch.nn.functional.normalize(torch.randn(500, 3, generator=g, dtype=torch.float64), dim=-1)
    n = local_normal(torch.full((500,), Kind.SPHERE), dirs)
    torch.testing.assert_close(n, dirs)
    # Box faces: the normal is the axis of the face the point lies on.
    p = torch.tensor([[1.0, 0.2, -0.3], [0.1, -1.0, 0.5], [0.3, 0.4, 1.0]], dtype=torch.float64)
    expected = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(local_normal(torch.full((3,), Kind.BOX), p), expected)
    # Cylinder side and cap; cone base.
    assert local_normal(torch.tensor([Kind.CYLINDER]), torch.tensor([[0.0, 1.0, 0.2]]))[0].tolist() == [0.0, 1.0, 0.0]
    assert local_normal(torch.tensor([Kind.CYLINDER]), torch.tensor([[0.1, 0.2, 1.0]]))[0].tolist() == [0.0, 0.0, 1.0]
    assert local_normal(torch.tensor([Kind.CONE]), torch.tensor([[0.1, 0.2, -1.0]]))[0].tolist() == [0.0, 0.0, -1.0]


def test_overlapping_carves_in_either_order():
    # A small bite behind a big one: the ray enters the big bite first, leaves it inside the small one and
    # must end on the small bite's far wall (y = -0.2), whichever order the carves are listed in.
    bites = {"small": ((0, -0.45, 0), 0.25), "big": ((0, -1.0, 0), 0.5)}
    for order in (("small", "big"), ("big", "small")):
        b = PrimitiveBuilder()
        b.add(Kind.SPHERE, centre=(0, 0, 0), size=(1, 1, 1))
        for name in order:
            centre, r = bites[name]
            b.add(Kind.SPHERE, centre=centre, size=(r, r, r), op=Op.SUBTRACT)
        table = b.build(dtype=torch.float64)
        hits = cast_rays(table, torch.tensor([[[0.0, -3.0, 0.0]]], dtype=torch.float64), torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64))
        assert hits.t[0, 0].item() == pytest.approx(2.8), order


def _implicit_table(seed: int) -> PrimitiveTable:
    """A torus, a relief sphere, box, cylinder and cone, and a relief torus, randomly placed."""
    g = torch.Generator().manual_seed(seed)
    b = PrimitiveBuilder()
    specs = [
        (Kind.TORUS, (0.0, 1.0, 0.0)),
        (Kind.SPHERE, (0.15, 3.0, 1.0)),
        (Kind.BOX, (0.12, 2.5, 2.0)),
        (Kind.CYLINDER, (0.1, 4.0, 3.0)),
        (Kind.CONE, (0.15, 2.0, 4.0)),
        (Kind.TORUS, (0.2, 3.0, 5.0)),
    ]
    for kind, relief in specs:
        c = ((torch.rand(3, generator=g) * 2 - 1) * 0.5).tolist()
        size = (torch.rand(3, generator=g) * 0.4 + 0.25).tolist()
        rot = tuple((torch.rand(3, generator=g) * 2 * math.pi).tolist())
        b.add(kind, centre=c, size=size, rotation=rot, relief=relief, tube=0.3)
    return b.build(dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1])
def test_implicit_intervals_match_dense_sampling(seed):
    """Tori and reliefs: the marched first entry and last exit agree with a dense sampling of the
    implicit function along each ray, except for chords thinner than the march can see."""
    table = _implicit_table(seed)
    o, d = _rays(400, seed)
    t_in, t_out = intersect_intervals(table, o, d)
    ts = torch.linspace(0, 5, 5001, dtype=torch.float64)
    step = float(ts[1] - ts[0])
    pts = o[0, :, None] + ts[None, :, None] * d[0, :, None]  # [R, S, 3]
    checked = 0
    for k in range(table.num):
        a, b = table.w2l[0, k, :, :3], table.w2l[0, k, :, 3]
        local = pts @ a.t() + b
        inside = implicit_value(table.kind[0, k].expand(local.shape[:2]), table.shape[0, k].expand(*local.shape[:2], 4), local) <= 0
        first = ts[inside.to(torch.uint8).argmax(-1)]
        last = ts[inside.shape[1] - 1 - inside.flip(-1).to(torch.uint8).argmax(-1)]
        any_in = inside.any(-1)
        finite = torch.isfinite(t_in[0, :, k])
        assert not (finite & ~any_in).any(), "a marched hit where the implicit function is never negative"
        # Misses allowed only for thin chords (shorter than ~ a march step of the bounding chord).
        long_chord = any_in & ((last - first) > 0.1)
        assert finite[long_chord].all(), f"kind {int(table.kind[0, k])}: a thick chord was missed"
        both = any_in & finite
        torch.testing.assert_close(t_in[0, both, k], first[both], atol=step * 1.01, rtol=0)
        torch.testing.assert_close(t_out[0, both, k], last[both], atol=step * 1.01, rtol=0)
        checked += int(both.sum())
    assert checked > 200


def test_torus_hole_and_tube_depth():
    b = PrimitiveBuilder()
    b.add(Kind.TORUS, centre=(0, 0, 0), size=(1, 1, 1), tube=0.3)
    table = b.build(dtype=torch.float64)
    xs = torch.tensor([0.0, 0.3, 0.5, 0.7, 0.95, 1.02], dtype=torch.float64)
    o = torch.stack([xs, torch.zeros_like(xs), torch.full_like(xs, 5.0)], -1)[None]
    d = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand(1, len(xs), 3)
    hits = cast_rays(table, o, d)
    expected = [5 - math.sqrt(0.09 - (x - 0.7) ** 2) if abs(x - 0.7) < 0.3 else math.inf for x in xs.tolist()]
    assert hits.hit[0].tolist() == [math.isfinite(e) for e in expected]  # the hole and outside: misses
    finite = hits.hit[0]
    torch.testing.assert_close(hits.t[0, finite], torch.tensor(expected, dtype=torch.float64)[finite], atol=1e-5, rtol=0)  # bisection + secant
    # Sideways through both tubes: first entry and last exit.
    t_in, t_out = intersect_intervals(table, torch.tensor([[[-5.0, 0.0, 0.0]]], dtype=torch.float64), torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64))
    assert (t_in.item(), t_out.item()) == pytest.approx((4.0, 6.0), abs=1e-5)


def test_implicit_culled_path_equals_batched_path():
    _assert_single_equals_batched(_implicit_table(3), _implicit_table(4), *_rays(300, 8))


@pytest.mark.parametrize("far", [math.inf, 2.2])
def test_any_hit_marches_only_unoccluded_rays_and_agrees_with_the_batched_path(far):
    """Shadow rays: closed-form occluders are tested first and implicit ones marched only for the rest; the
    answer is the batched path's (every pair marched), for rays starting outside and inside primitives."""
    table = _implicit_table(4)
    o, d = _rays(500, 11)
    o = torch.cat([o, o[:, :100] * 0.1], 1)  # some rays start near the middle, inside primitives
    d = torch.cat([d, -d[:, :100]], 1)
    single = any_hit(table, o, d, far=far)
    batched = any_hit(PrimitiveTable.stack([table, table]), o.expand(2, -1, -1), d.expand(2, -1, -1), far=far)
    assert torch.equal(single[0], batched[0]) and torch.equal(single[0], batched[1])
    assert 0.1 < float(single.double().mean()) < 0.95


def test_implicit_normals():
    # A torus without relief: the numerical gradient is the analytic one, (p - nearest core point).
    g = torch.Generator().manual_seed(0)
    theta, phi = (torch.rand(2, 300, generator=g, dtype=torch.float64) * 2 * math.pi).unbind(0)
    tube, ring = 0.3, 0.7
    core = torch.stack([ring * torch.cos(theta), ring * torch.sin(theta), torch.zeros_like(theta)], -1)
    outward = torch.stack([torch.cos(phi) * torch.cos(theta), torch.cos(phi) * torch.sin(theta), torch.sin(phi)], -1)
    p = core + tube * outward
    shape = torch.tensor([0.0, 1.0, 0.0, tube], dtype=torch.float64).expand(300, 4)
    n = torch.nn.functional.normalize(local_normal(torch.full((300,), Kind.TORUS), p, shape), dim=-1)
    torch.testing.assert_close(n, outward, atol=1e-5, rtol=0)
    # With a relief, the normal is the gradient of the implicit function: a small step along it raises f.
    relief = torch.tensor([0.2, 3.0, 1.0, 0.0], dtype=torch.float64).expand(300, 4)
    q = torch.nn.functional.normalize(torch.randn(300, 3, generator=g, dtype=torch.float64), dim=-1) * 0.9
    n = torch.nn.functional.normalize(local_normal(torch.zeros(300, dtype=torch.long), q, relief), dim=-1)
    kind = torch.zeros(300, dtype=torch.long)
    assert (implicit_value(kind, relief, q + 1e-3 * n) > implicit_value(kind, relief, q)).all()
    # Quadric shapes are unchanged by passing their (relief-free) shape parameters.
    torch.testing.assert_close(local_normal(kind, q, torch.zeros(300, 4, dtype=torch.float64)), local_normal(kind, q))


def test_relief_only_removes_material():
    """A relief surface lies inside its shape (the bounding entry can only move later)."""
    plain, bumpy = PrimitiveBuilder(), PrimitiveBuilder()
    plain.add(Kind.SPHERE, centre=(0, 0, 0), size=(0.8, 0.8, 0.8))
    bumpy.add(Kind.SPHERE, centre=(0, 0, 0), size=(0.8, 0.8, 0.8), relief=(0.15, 3.0, 0.0))
    o, d = _rays(500, 3)
    a = cast_rays(plain.build(dtype=torch.float64), o, d)
    b = cast_rays(bumpy.build(dtype=torch.float64), o, d)
    assert not (b.hit & ~a.hit).any()
    both = a.hit & b.hit
    assert (b.t[both] >= a.t[both] - 1e-9).all()
    assert (b.t[both] - a.t[both]).max() > 0.05  # and it is visible
    assert MARCH_STEPS >= 16
