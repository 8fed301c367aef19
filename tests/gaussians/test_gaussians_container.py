"""The Gaussians container: validation, indexing, concatenation and tensor plumbing."""

from __future__ import annotations

import pytest
import torch

from facelift.gaussians import SH_C0, Gaussians, rgb_to_sh_dc, sh_dc_to_rgb


def _fields(n: int = 4, k: int = 1) -> dict[str, torch.Tensor]:
    return {
        "means": torch.zeros(n, 3),
        "quats": torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4).clone(),
        "scales": torch.full((n, 3), 0.01),
        "opacities": torch.full((n,), 0.5),
        "sh": torch.zeros(n, k, 3),
    }


def test_valid_construction_reports_shape():
    g = Gaussians(**_fields(n=5, k=9))
    assert g.shape == (5,)
    assert (g.num, g.sh_degree, len(g)) == (5, 2, 5)


@pytest.mark.parametrize(
    ("field", "bad", "match"),
    [
        ("means", torch.zeros(4, 2), "means must be"),
        ("means", torch.zeros(3), "means must be"),
        ("quats", torch.zeros(4, 3), "quats must be"),
        ("quats", torch.zeros(5, 4), "quats must be"),
        ("scales", torch.zeros(4, 4), "scales must be"),
        ("opacities", torch.zeros(4, 1), "opacities must be"),
        ("sh", torch.zeros(4, 1, 4), "sh must be"),
        ("sh", torch.zeros(3, 1, 3), "sh must be"),
        ("sh", torch.zeros(4, 5, 3), "must be a square"),
    ],
)
def test_bad_shapes_raise_value_error(field, bad, match):
    fields = _fields()
    fields[field] = bad
    with pytest.raises(ValueError, match=match):
        Gaussians(**fields)


def test_boolean_mask_indexing_keeps_selected_rows(make_gaussians):
    g = make_gaussians(n=10, degree=1)
    mask = g.opacities > 0.5
    assert 0 < int(mask.sum()) < 10  # the seed gives a non-trivial mask
    kept = g[mask]
    assert kept.num == int(mask.sum())
    for name in ("means", "quats", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(kept, name), getattr(g, name)[mask], rtol=0, atol=0)


def test_mask_of_wrong_shape_raises(make_gaussians):
    g = make_gaussians(n=10)
    with pytest.raises(IndexError, match="does not match"):
        g[torch.ones(9, dtype=torch.bool)]


def test_integer_index_selects_a_scene_of_a_batch(make_gaussians):
    g = make_gaussians(n=6, batch=(3,), degree=1)
    scene = g[1]
    assert scene.shape == (6,)
    torch.testing.assert_close(scene.sh, g.sh[1], rtol=0, atol=0)


def test_cat_promotes_mixed_sh_degrees(make_gaussians):
    g0 = make_gaussians(n=3, degree=0, seed=1)
    g2 = make_gaussians(n=4, degree=2, seed=2)
    out = Gaussians.cat([g0, g2])
    assert (out.num, out.sh_degree) == (7, 2)
    torch.testing.assert_close(out.sh[:3, 0], g0.sh[:, 0], rtol=0, atol=0)
    assert torch.count_nonzero(out.sh[:3, 1:]) == 0  # zero-padded higher bands
    torch.testing.assert_close(out.sh[3:], g2.sh, rtol=0, atol=0)
    torch.testing.assert_close(out.means, torch.cat([g0.means, g2.means]), rtol=0, atol=0)


def test_cat_along_batch_axis_and_errors(make_gaussians):
    a, b = make_gaussians(n=5, batch=(2,), seed=1), make_gaussians(n=5, batch=(1,), seed=2)
    assert Gaussians.cat([a, b], dim=0).shape == (3, 5)
    with pytest.raises(ValueError, match="at least one"):
        Gaussians.cat([])
    with pytest.raises(ValueError, match="out of range"):
        Gaussians.cat([a, b], dim=2)


def test_to_detach_clone_reshape(make_gaussians):
    g = make_gaussians(n=4, batch=(2, 3), degree=1)
    g64 = g.to(dtype=torch.float64)
    assert g64.dtype == torch.float64 and g64.sh.dtype == torch.float64 and g64.opacities.dtype == torch.float64

    means = g.means.clone().requires_grad_(True)
    g_grad = Gaussians(means, g.quats, g.scales, g.opacities, g.sh)
    assert g_grad.means.requires_grad and not g_grad.detach().means.requires_grad

    c = g.clone()
    c.means.zero_()
    assert g.means.abs().sum() > 0  # the clone does not share storage

    flat = g.reshape(-1)
    assert flat.shape == (24,) and flat.sh.shape == (24, 4, 3)
    torch.testing.assert_close(flat.means, g.means.reshape(-1, 3), rtol=0, atol=0)
    assert g.reshape(6, 4).shape == (6, 4)


def test_with_sh_degree_truncates_and_pads(make_gaussians):
    g = make_gaussians(n=3, degree=2)
    low = g.with_sh_degree(1)
    torch.testing.assert_close(low.sh, g.sh[:, :4], rtol=0, atol=0)
    high = g.with_sh_degree(3)
    assert high.sh.shape == (3, 16, 3) and torch.count_nonzero(high.sh[:, 9:]) == 0


def test_rgb_dc_round_trip():
    rgb = torch.tensor([[0.0, 0.5, 1.0]])
    torch.testing.assert_close(sh_dc_to_rgb(rgb_to_sh_dc(rgb)), rgb)
    assert rgb_to_sh_dc(torch.tensor(0.5 + SH_C0)).item() == pytest.approx(1.0)
    g = Gaussians.from_rgb(torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1), rgb)
    torch.testing.assert_close(g.rgb, rgb)
    torch.testing.assert_close(g.quats, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), rtol=0, atol=0)
