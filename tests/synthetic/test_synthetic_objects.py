"""Procedural Zeroverse-style objects: determinism, structure, bounds and renders (32 px, CPU)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

from facelift.cameras.orbits import facelift_views
from facelift.synthetic.objects import (
    ADDITIVE_ROLES,
    MAX_RADIUS,
    OBJECT_PATTERNS,
    ObjectSpec,
    build_object,
    object_scene,
    part_extreme_points,
    sample_object,
    segment_rotation,
)
from facelift.synthetic.primitives import Kind, Op, PrimitiveTable
from facelift.synthetic.render import Lighting, SynthSettings, render_scene

RES = 32
IDS = range(40)
RENDER_IDS = range(10)


def _render(table: PrimitiveTable, lighting: Lighting | None = None, views: int = 6) -> torch.Tensor:
    cams = facelift_views(resolution=RES)[:views].reshape(1, views)
    light = Lighting.ambient(1) if lighting is None else lighting
    return render_scene(table, cams, light, SynthSettings()).rgba[0]  # [V, 4, H, W]


def _world_centres(table: PrimitiveTable) -> torch.Tensor:
    """``[K, 3]`` world position of each primitive's local origin: ``-inv(A) @ b`` of its w2l."""
    a, b = table.w2l[0, :, :, :3].double(), table.w2l[0, :, :, 3:].double()
    return -(torch.linalg.inv(a) @ b)[..., 0]


@pytest.fixture(scope="module")
def specs() -> dict[int, ObjectSpec]:
    return {i: sample_object(i) for i in IDS}


def test_same_id_same_spec_and_json_round_trip(specs):
    for i in (0, 7, 31):
        assert sample_object(i) == specs[i]
        d = asdict(specs[i])
        assert json.loads(json.dumps(d)) == json.loads(json.dumps(asdict(sample_object(i))))
    table, params = object_scene(7)
    assert params["object_id"] == 7 and params["object"] == asdict(specs[7])
    assert table.batch_size == 1 and table.num == len(specs[7].parts)


def test_same_id_renders_identical_pixels():
    light = Lighting.random(1, torch.Generator().manual_seed(0), ambient_only_prob=0.0)
    a = _render(object_scene(3)[0], light, views=2)
    b = _render(object_scene(3)[0], light, views=2)
    assert torch.equal(a, b)


def test_different_ids_give_different_objects(specs):
    spec_list = list(specs.values())
    for i, s in enumerate(spec_list):
        for t in spec_list[i + 1 :]:
            assert s.parts != t.parts
    a = _render(object_scene(0)[0], views=2)
    b = _render(object_scene(1)[0], views=2)
    assert (a - b).abs().mean() > 0.02


def test_parts_counts_and_roles(specs):
    for spec in specs.values():
        roles = [p.role for p in spec.parts]
        assert 1 <= spec.num_shapes <= 9
        assert set(roles) <= {*ADDITIVE_ROLES, "ring_hole", "carve", "wire", "joint"}
        assert spec.carved == ("carve" in roles)
        assert spec.wireframe == ("wire" in roles)
        for p in spec.parts:
            assert (p.op == Op.SUBTRACT) == (p.role in ("carve", "ring_hole"))
            assert p.material.pattern in OBJECT_PATTERNS
            assert 0.1 <= p.material.roughness <= 0.9 and 0 <= p.material.subsurface <= 0.3
            rot = torch.tensor(p.rotation, dtype=torch.float64)
            torch.testing.assert_close(rot @ rot.T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-9)
            assert torch.linalg.det(rot) > 0
            if p.role == "wire":
                assert p.kind == Kind.CYLINDER and 0.01 <= p.size[0] == p.size[1] <= 0.02
        rings = [p for p in spec.parts if p.role == "ring"]
        holes = [p for p in spec.parts if p.role == "ring_hole"]
        assert len(rings) == len(holes)
        for ring, hole in zip(rings, holes):  # a coaxial, thinner and taller hole in the ring's own group
            assert (ring.centre, ring.rotation, ring.group) == (hole.centre, hole.rotation, hole.group)
            assert hole.size[0] < ring.size[0] and hole.size[2] > ring.size[2]
            assert [q for q in spec.parts if q.group == ring.group] == [ring, hole]


def test_feature_frequencies(specs):
    """Carving (~30%), wireframes (~25%), reliefs (~25% of solids), rings, tori and every kind occur over the first ids."""
    carved = sum(s.carved for s in specs.values()) / len(specs)
    wired = sum(s.wireframe for s in specs.values()) / len(specs)
    assert 0.1 <= carved <= 0.5 and 0.1 <= wired <= 0.45
    roles = {p.role for s in specs.values() for p in s.parts}
    kinds = {p.kind for s in specs.values() for p in s.parts if p.role == "solid"}
    assert {"ring", "carve", "wire"} <= roles
    assert kinds == {Kind.SPHERE, Kind.BOX, Kind.CYLINDER, Kind.CONE, Kind.TORUS}
    solids = [p for s in specs.values() for p in s.parts if p.role == "solid"]
    relief = sum(p.relief[0] > 0 for p in solids) / len(solids)
    assert 0.12 <= relief <= 0.4
    for p in solids:
        assert (p.kind == Kind.TORUS) == (0.2 <= p.tube <= 0.45)
        assert p.relief == (0.0, 1.0, 0.0) or (0.06 <= p.relief[0] <= 0.2 and 1.5 <= p.relief[1] <= 5.0)
    for p in (p for s in specs.values() for p in s.parts if p.role != "solid"):
        assert p.relief[0] == 0 and p.tube == 0  # carves, wires and rings are exact quadrics
    assert len({s.num_shapes for s in specs.values()}) >= 6


def test_object_stays_within_radius(specs):
    for i in IDS[:12]:
        spec = specs[i]
        table, _ = object_scene(i)
        centres = _world_centres(table)
        expected = torch.tensor([p.centre for p in spec.parts], dtype=torch.float64)
        torch.testing.assert_close(centres, expected, rtol=0, atol=1e-4)
        assert bool((centres.norm(dim=-1) <= MAX_RADIUS + 1e-4).all()), f"object {i}"
        assert torch.equal(table.op[0], torch.tensor([p.op for p in spec.parts]))
    for spec in specs.values():
        extremes = torch.cat([part_extreme_points(p) for p in spec.parts if p.op == Op.ADD])
        reach = float(extremes.norm(dim=-1).max())
        # Scaled to touch its bounding sphere (wires stay inside it).
        assert spec.radius - 1e-6 <= reach <= spec.radius + 1e-6 <= MAX_RADIUS + 1e-6


@pytest.mark.parametrize("object_id", RENDER_IDS)
def test_renders_in_frame_from_facelift_views(object_id):
    alpha = _render(object_scene(object_id)[0])[:, 3]  # [6, H, W]
    coverage = alpha.mean((-1, -2))
    assert bool(((coverage > 0.02) & (coverage < 0.9)).all()), coverage.tolist()
    border = torch.cat([alpha[:, 0], alpha[:, -1], alpha[:, :, 0], alpha[:, :, -1]], -1)
    assert float(border.max()) == 0.0  # not clipped by the frame


def test_carving_changes_the_render(specs):
    fractions = []
    for spec in [s for s in specs.values() if s.carved][:3]:
        carved = _render(build_object(spec).build())
        solid = _render(build_object(spec, include_subtract=False).build())
        fractions.append(float(((carved - solid).abs().amax(1) > 0.05).float().mean()))  # of [6, H, W]
    # Every carve shows somewhere (a small notch can be a few pixels at 32 px); most are clearly visible.
    assert min(fractions) > 0 and max(fractions) > 0.005, fractions


@pytest.mark.parametrize("direction", [(0, 0, 1), (0, 0, -1), (1, 0, 0), (0.3, -2.0, 0.5), (-1, -1, -1)])
def test_segment_rotation_points_local_z_along_the_segment(direction):
    a = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    b = a + torch.tensor(direction, dtype=torch.float64)
    rot = segment_rotation(a, b)
    torch.testing.assert_close(rot @ rot.T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.linalg.det(rot), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(rot[:, 2], (b - a) / (b - a).norm())
    with pytest.raises(ValueError, match="differ"):
        segment_rotation(a, a)


def test_relief_and_torus_reach_the_table_and_the_render():
    spec = next(sample_object(i) for i in IDS if any(p.relief[0] > 0 for p in sample_object(i).parts))
    table = build_object(spec).build()
    for k, part in enumerate(spec.parts):
        assert table.shape[0, k].tolist() == pytest.approx([*part.relief, part.tube])
        assert int(table.kind[0, k]) == part.kind
    flat = replace(spec, parts=tuple(replace(p, relief=(0.0, 1.0, 0.0)) for p in spec.parts))
    a, b = _render(table, views=2), _render(build_object(flat).build(), views=2)
    assert (a - b).abs().amax() > 0.2  # the relief changes what is seen
