"""covariance, transform (incl. band-1 SH rotation) and the reference release's pruning."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facelift.cameras.conventions import quat_to_rotmat
from facelift.gaussians import (
    Gaussians,
    covariance,
    reference_prune,
    reference_prune_mask,
    rotate_sh,
    transform,
)

C0 = 0.28209479177387814
C1 = 0.4886025119029199


def eval_sh_deg1(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """3DGS's degree-1 evaluation: ``C0 c0 - C1 y c1 + C1 z c2 - C1 x c3``; sh [..., 4, 3], dirs [..., 3]."""
    x, y, z = dirs[..., 0:1], dirs[..., 1:2], dirs[..., 2:3]
    return C0 * sh[..., 0, :] - C1 * y * sh[..., 1, :] + C1 * z * sh[..., 2, :] - C1 * x * sh[..., 3, :]


def _rot_z(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def _random_rotation(seed: int, dtype=torch.float32) -> torch.Tensor:
    q = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return quat_to_rotmat(q).to(dtype)


def _random_dirs(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, 3, generator=gen, dtype=torch.float64), dim=-1)


def _same_quat_up_to_sign(a: torch.Tensor, b: torch.Tensor, atol: float) -> None:
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    sign = torch.sign((a * b).sum(-1, keepdim=True))
    torch.testing.assert_close(a, sign * b, rtol=0, atol=atol)


# ---- covariance ----------------------------------------------------------------------------------------


def test_covariance_of_known_gaussian():
    # 90 degrees about z: local x -> world y, so the world covariance is diag(s_y^2, s_x^2, s_z^2).
    q = torch.tensor([[math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]]) * 3.0  # not normalised
    g = Gaussians(torch.zeros(1, 3), q, torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1), torch.zeros(1, 1, 3))
    torch.testing.assert_close(covariance(g)[0], torch.diag(torch.tensor([4.0, 1.0, 9.0])), rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [(), (2,), (1, 2)])
def test_covariance_is_symmetric_psd_with_scale_eigenvalues(make_gaussians, batch):
    g = make_gaussians(n=8, batch=batch, dtype=torch.float64)
    cov = covariance(g)
    assert cov.shape == (*batch, 8, 3, 3)
    torch.testing.assert_close(cov, cov.transpose(-1, -2))
    eig = torch.linalg.eigvalsh(cov)
    torch.testing.assert_close(eig, (g.scales**2).sort(dim=-1).values, rtol=1e-9, atol=1e-12)


# ---- transform ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [(), (2,), (1, 2)])
@pytest.mark.parametrize("as_quaternion", [False, True])
def test_transform_maps_covariance_as_r_sigma_rt(make_gaussians, batch, as_quaternion):
    g = make_gaussians(n=8, batch=batch, degree=1, dtype=torch.float64)
    rot = _random_rotation(1, torch.float64)
    t = torch.tensor([0.3, -0.2, 1.5], dtype=torch.float64)
    s = 1.7
    q_rot = torch.tensor([0.5, -0.5, 0.5, 0.5], dtype=torch.float64) * 2  # not normalised
    rotation = q_rot if as_quaternion else rot
    rot = quat_to_rotmat(q_rot) if as_quaternion else rot
    out = transform(g, rotation, t, s)
    torch.testing.assert_close(out.means, s * torch.einsum("ij,...j->...i", rot, g.means) + t)
    torch.testing.assert_close(covariance(out), s**2 * rot @ covariance(g) @ rot.T)
    torch.testing.assert_close(out.scales, g.scales * s)
    torch.testing.assert_close(out.opacities, g.opacities, rtol=0, atol=0)
    torch.testing.assert_close(out.sh[..., 0, :], g.sh[..., 0, :], rtol=0, atol=0)


def test_quaternion_and_matrix_inputs_agree(make_gaussians):
    g = make_gaussians(n=8, degree=1)
    q = torch.tensor([0.9, 0.1, -0.3, 0.2])
    a, b = transform(g, q), transform(g, quat_to_rotmat(q))
    torch.testing.assert_close(a.means, b.means)
    torch.testing.assert_close(a.sh, b.sh)
    _same_quat_up_to_sign(a.quats, b.quats, atol=1e-6)


def test_transform_then_inverse_is_identity(make_gaussians):
    g = make_gaussians(n=12, degree=1, dtype=torch.float64)
    rot, t, s = _random_rotation(3, torch.float64), torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64), 0.6
    moved = transform(g, rot, t, s)
    assert (moved.means - g.means).abs().max() > 0.1  # the transform did something
    back = transform(moved, rot.T, -(rot.T @ t) / s, 1.0 / s)
    for name in ("means", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name))
    _same_quat_up_to_sign(back.quats, g.quats, atol=1e-12)


def test_transform_composes(make_gaussians):
    g = make_gaussians(n=6, degree=1, dtype=torch.float64)
    r1, r2 = _random_rotation(4, torch.float64), _random_rotation(5, torch.float64)
    t1, t2 = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64), torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    two = transform(transform(g, r1, t1, 2.0), r2, t2, 0.5)
    one = transform(g, r2 @ r1, 0.5 * (r2 @ t1) + t2, 1.0)
    for name in ("means", "scales", "sh"):
        torch.testing.assert_close(getattr(two, name), getattr(one, name))
    _same_quat_up_to_sign(two.quats, one.quats, atol=1e-12)


@pytest.mark.parametrize("batch", [(), (2,)])
def test_degree1_sh_rotation_preserves_the_colour_function(make_gaussians, batch):
    g = make_gaussians(n=5, degree=1, batch=batch, dtype=torch.float64)
    rot = _random_rotation(7, torch.float64)
    out = transform(g, rot)
    assert (out.sh - g.sh).abs().max() > 1e-3  # band 1 actually changed
    dirs = _random_dirs((*batch, 5), seed=8)
    rotated_dirs = torch.einsum("ij,...j->...i", rot, dirs)
    torch.testing.assert_close(eval_sh_deg1(out.sh, rotated_dirs), eval_sh_deg1(g.sh, dirs))


_QUATS = st.tuples(*[st.floats(-1.0, 1.0, allow_nan=False) for _ in range(4)]).filter(lambda q: sum(v * v for v in q) > 1e-2)


@settings(max_examples=25, deadline=None)
@given(q=_QUATS)
def test_sh_rotation_property(q):
    rot = quat_to_rotmat(torch.tensor(q, dtype=torch.float64))
    sh = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dirs = _random_dirs((16,), seed=1)
    rotated = rotate_sh(sh, rot)
    torch.testing.assert_close(eval_sh_deg1(rotated, dirs @ rot.T), eval_sh_deg1(sh, dirs))


def test_rotate_sh_moves_an_x_lobe_to_y():
    sh = torch.zeros(4, 3)
    sh[3] = 1.0  # -C1 x: brightest toward -x
    out = rotate_sh(sh, _rot_z(90.0))  # -x -> -y
    expected = torch.zeros(4, 3)
    expected[1] = 1.0  # -C1 y: brightest toward -y
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_rotate_sh_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        rotate_sh(torch.zeros(2, 3), torch.eye(3))
    with pytest.raises(ValueError, match=r"\[\.\.\., K, 3\]"):
        rotate_sh(torch.zeros(4, 2), torch.eye(3))


def test_higher_degree_needs_identity_rotation(make_gaussians):
    g = make_gaussians(n=4, degree=3)
    with pytest.raises(NotImplementedError, match="degree >= 2"):
        transform(g, _rot_z(30.0))
    moved = transform(g, torch.eye(3), torch.tensor([1.0, 0.0, 0.0]), 2.0)  # translation + scale are fine
    torch.testing.assert_close(moved.sh, g.sh, rtol=0, atol=0)
    torch.testing.assert_close(moved.means, 2.0 * g.means + torch.tensor([1.0, 0.0, 0.0]))
    # dropping the higher bands makes any rotation possible
    assert transform(g.with_sh_degree(1), _rot_z(30.0)).sh_degree == 1


@pytest.mark.parametrize(
    ("rotation", "translation", "scale", "match"),
    [
        (torch.diag(torch.tensor([1.0, 1.0, -1.0])), None, 1.0, "proper rotation"),
        (torch.eye(3) * 2.0, None, 1.0, "proper rotation"),
        (torch.eye(2), None, 1.0, r"\[3, 3\]"),
        (torch.zeros(4), None, 1.0, "non-zero"),
        (torch.eye(3), torch.zeros(2), 1.0, "translation"),
        (torch.eye(3), None, 0.0, "scale"),
        (torch.eye(3), None, -1.0, "scale"),
    ],
)
def test_transform_rejects_bad_inputs(make_gaussians, rotation, translation, scale, match):
    with pytest.raises(ValueError, match=match):
        transform(make_gaussians(n=2), rotation, translation, scale)


def test_transform_is_differentiable(make_gaussians):
    g = make_gaussians(n=4, degree=1)
    means = g.means.clone().requires_grad_(True)
    sh = g.sh.clone().requires_grad_(True)
    out = transform(Gaussians(means, g.quats, g.scales, g.opacities, sh), _rot_z(45.0), torch.ones(3), 3.0)
    (out.means.sum() + out.sh.sum()).backward()
    torch.testing.assert_close(means.grad, (3.0 * _rot_z(45.0).sum(0)).expand(4, 3))
    assert sh.grad is not None and sh.grad.abs().sum() > 0


# ---- reference pruning --------------------------------------------------------------------------------

# (x, y, z, opacity, max scale, kept?) -- one row per rule edge.
_PRUNE_CASES = [
    ((0.0, 0.0, 0.0), 0.5, 0.01, True),  # 0: plain survivor
    ((0.0, 0.0, 0.0), 0.04, 0.01, False),  # 1: opacity must be strictly above 0.04
    ((0.0, 0.0, 0.0), 0.041, 0.01, True),  # 2: just above
    ((0.0, 0.0, -0.1), 0.5, 0.1, False),  # 3: max scale >= 0.1 below the xy-plane
    ((0.0, 0.0, 0.1), 0.5, 0.5, True),  # 4: large but above the plane (z > 0)
    ((0.0, 0.0, 0.0), 0.5, 0.5, False),  # 5: large at z == 0 (not > 0)
    ((0.0, 0.0, -0.5), 0.5, 0.099, True),  # 6: just below the size threshold
    ((0.7, -0.7, -0.7), 0.5, 0.01, False),  # 7: floater corner
    ((-0.7, 0.7, -0.7), 0.5, 0.01, False),  # 8: another floater corner
    ((0.7, 0.5, -0.7), 0.5, 0.01, True),  # 9: |y| <= 0.6: not a floater
    ((-0.7, 0.7, -0.5), 0.5, 0.01, True),  # 10: z >= -0.6: not a floater
    ((0.92, 0.0, 0.0), 0.5, 0.01, False),  # 11: outside the crop in x
    ((0.0, -0.95, 0.0), 0.5, 0.01, False),  # 12: outside in y
    ((0.0, 0.0, -1.01), 0.5, 0.01, False),  # 13: below the crop
    ((0.0, 0.0, 1.01), 0.5, 0.5, False),  # 14: above the crop (large is fine up there, the crop is not)
    ((0.9, -0.9, 1.0), 0.5, 0.01, True),  # 15: inside, z == 1 is inclusive
    ((0.0, 0.0, -1.0), 0.5, 0.01, True),  # 16: z == -1 is inclusive
]


def _prune_set() -> tuple[Gaussians, torch.Tensor]:
    means = torch.tensor([c[0] for c in _PRUNE_CASES])
    opacities = torch.tensor([c[1] for c in _PRUNE_CASES])
    scales = torch.tensor([[c[2] * 0.5, c[2], c[2] * 0.2] for c in _PRUNE_CASES])  # max along local y
    rgb = torch.linspace(0, 1, len(_PRUNE_CASES))[:, None].expand(-1, 3)
    keep = torch.tensor([c[3] for c in _PRUNE_CASES])
    return Gaussians.from_rgb(means, scales, opacities, rgb), keep


def test_reference_prune_mask_hits_each_rule():
    g, keep = _prune_set()
    mask = reference_prune_mask(g)
    assert mask.tolist() == keep.tolist()


def test_reference_prune_keeps_order_and_matches_mask():
    g, keep = _prune_set()
    pruned = reference_prune(g)
    assert pruned.num == int(keep.sum())
    torch.testing.assert_close(pruned.means, g.means[keep], rtol=0, atol=0)
    torch.testing.assert_close(pruned.sh, g.sh[keep], rtol=0, atol=0)


def test_reference_prune_rules_can_be_disabled():
    g, keep = _prune_set()
    assert reference_prune_mask(g, scale_threshold=None)[[3, 5]].tolist() == [True, True]
    assert reference_prune_mask(g, floater_threshold=None)[[7, 8]].tolist() == [True, True]
    assert reference_prune_mask(g, crop_box=None)[[11, 12, 13, 14]].tolist() == [True, True, True, True]
    assert reference_prune_mask(g, opacity_threshold=0.0)[1].item() is True


def test_reference_prune_mask_is_batched_but_prune_is_not(make_gaussians):
    g = make_gaussians(n=10, batch=(2,))
    mask = reference_prune_mask(g)
    assert mask.shape == (2, 10)
    assert mask[1].tolist() == reference_prune_mask(g[1]).tolist()
    with pytest.raises(ValueError, match="unbatched"):
        reference_prune(g)


@pytest.mark.parametrize("box", [(0.0, 1.0), (1.0, -1.0, -1.0, 1.0, -1.0, 1.0)])
def test_reference_prune_rejects_bad_crop_box(make_gaussians, box):
    with pytest.raises(ValueError, match="crop_box"):
        reference_prune_mask(make_gaussians(n=3), crop_box=box)


def test_reference_crop_bounds_are_inclusive():
    box = (-0.5, 0.5, -0.25, 0.25, -1.0, 0.75)  # exactly representable bounds
    bounds = [(-0.5, 0.0, 0.0), (0.5, 0.0, 0.0), (0.0, -0.25, 0.0), (0.0, 0.25, 0.0), (0.0, 0.0, -1.0), (0.0, 0.0, 0.75)]
    inside = torch.tensor(bounds)
    outside = inside * 1.0002  # each point just past its bound
    means = torch.cat([inside, outside])
    g = Gaussians.from_rgb(means, torch.full((12, 3), 0.01), torch.ones(12), torch.zeros(12, 3))
    mask = reference_prune_mask(g, crop_box=box)
    assert mask.tolist() == [True] * 6 + [False] * 6


def test_prune_settings_apply_their_rules_and_round_trip_json():
    import json

    from facelift.gaussians import PruneSettings

    g, keep = _prune_set()
    assert PruneSettings().apply(g).num == int(keep.sum())
    procedural = PruneSettings.procedural()
    assert procedural.crop_box is None
    assert procedural.apply(g).num == int(reference_prune_mask(g, crop_box=None).sum())
    for prune in (PruneSettings(), procedural, PruneSettings(opacity_threshold=0.2, floater_threshold=None)):
        assert PruneSettings.from_dict(json.loads(json.dumps(prune.to_dict()))) == prune
    with pytest.raises(ValueError, match="crop_box"):
        PruneSettings(crop_box=(0.0, 1.0))
    with pytest.raises(ValueError, match="unknown pruning settings"):
        PruneSettings.from_dict({"box": None})


def test_average_corresponding_means_each_parameter_and_treats_q_and_minus_q_alike(make_gaussians):
    from facelift.cameras.conventions import normalize_quat
    from facelift.gaussians import average_corresponding

    g = make_gaussians(n=32, degree=1, batch=(2,), seed=3)
    avg = average_corresponding(g)
    assert tuple(avg.shape) == (32,) and avg.sh.shape == (32, 4, 3)
    torch.testing.assert_close(avg.means, (g.means[0] + g.means[1]) / 2)
    torch.testing.assert_close(avg.opacities, (g.opacities[0] + g.opacities[1]) / 2)
    torch.testing.assert_close(avg.sh, (g.sh[0] + g.sh[1]) / 2)
    torch.testing.assert_close(avg.scales, (g.scales[0] * g.scales[1]).sqrt())  # geometric mean
    # A set averaged with itself is itself (rotations normalised); flipping one set's quaternions (the same
    # rotations) changes nothing.
    same = average_corresponding(Gaussians.cat([g[:1], g[:1]], dim=0))
    torch.testing.assert_close(same.quats, normalize_quat(g.quats[0]))
    torch.testing.assert_close(same.scales, g.scales[0])
    flipped = Gaussians(g.means, torch.stack([g.quats[0], -g.quats[1]]), g.scales, g.opacities, g.sh)
    torch.testing.assert_close(quat_to_rotmat(average_corresponding(flipped).quats), quat_to_rotmat(avg.quats))
    # Along another batch axis: [3, 2, N] -> [3, N].
    many = make_gaussians(n=8, batch=(3, 2), seed=4)
    torch.testing.assert_close(average_corresponding(many, dim=1).means, many.means.mean(1))
    with pytest.raises(ValueError, match="batch axis"):
        average_corresponding(make_gaussians(n=8))
    with pytest.raises(ValueError, match="not a batch axis"):
        average_corresponding(many, dim=2)
