import math

import pytest
import torch

from facelift.cameras import orbit_cameras
from facelift.gaussians import Gaussians, rgb_to_sh_dc
from facelift.rendering import RasterSettings, eval_sh, gsplat_available, rasterize
from facelift.rendering import _reference as R

from ._dense import dense_composite


def random_scene(n=12, seed=0, dtype=torch.float64, sh_degree=0, spread=0.5):
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen, dtype=dtype) * 2 - 1) * spread
    scales = torch.rand(n, 3, generator=gen, dtype=dtype) * 0.12 + 0.03
    quats = torch.randn(n, 4, generator=gen, dtype=dtype)
    opac = torch.rand(n, generator=gen, dtype=dtype) * 0.75 + 0.2
    sh = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=gen, dtype=dtype) * 0.5
    return Gaussians(means, quats, scales, opac, sh)


def cams(az=(0.0, 100.0), el=(10.0, -20.0), width=24, height=20, dtype=torch.float64):
    return orbit_cameras(torch.tensor(az), torch.tensor(el), width=width, height=height, dtype=dtype)


def test_single_isotropic_gaussian_matches_analytic_footprint():
    # One isotropic Gaussian at the origin seen by the front camera: its image is an isotropic 2D Gaussian
    # with variance (s f / d)^2 + 0.3 px^2 centred on the principal point.
    s, o, d, res = 0.04, 0.8, 2.7, 64
    cam = orbit_cameras(torch.tensor([0.0]), 0.0, radius=d, width=res, dtype=torch.float64)
    f = float(cam.fx[0])
    g = Gaussians.from_rgb(
        torch.zeros(1, 3, dtype=torch.float64), torch.full((1, 3), s, dtype=torch.float64),
        torch.tensor([o], dtype=torch.float64), torch.tensor([[1.0, 0.2, 0.0]], dtype=torch.float64),
    )  # fmt: skip
    out = rasterize(g, cam, background=torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), backend="torch")
    var = (s * f / d) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(res, dtype=torch.float64) + 0.5, torch.arange(res, dtype=torch.float64) + 0.5, indexing="ij")
    r2 = (xs - res / 2) ** 2 + (ys - res / 2) ** 2
    expected = (o * torch.exp(-0.5 * r2 / var)).to(torch.float64)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))
    alpha = out.alpha[0, 0]
    torch.testing.assert_close(alpha, expected, rtol=1e-9, atol=1e-9)
    # Peak at the four central pixels, value o * exp(-0.5 * 0.5 / var).
    assert alpha.max().item() == pytest.approx(o * math.exp(-0.25 / var), rel=1e-9)
    peak = (alpha >= alpha.max() - 1e-12).nonzero().tolist()
    assert sorted(peak) == [[31, 31], [31, 32], [32, 31], [32, 32]]
    # Radius: nothing beyond the alpha = 1/255 circle, something just inside it.
    r_cut = math.sqrt(2 * var * math.log(255 * o))
    assert (alpha[r2.sqrt() > r_cut + 1e-6] == 0).all()
    assert (alpha[(r2.sqrt() < r_cut - 0.5)] > 0).all()
    # Colour over the background, and depth = 2.7 wherever something was hit.
    rgb = out.rgb[0]
    torch.testing.assert_close(rgb[0], alpha * 1.0, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(rgb[2], 1 - alpha, rtol=1e-9, atol=1e-12)
    hit = alpha > 0
    torch.testing.assert_close(out.depth[0, 0][hit], torch.full_like(alpha[hit], d), rtol=1e-9, atol=1e-9)
    assert (out.depth[0, 0][~hit] == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_dense_oracle_forward_and_backward(seed):
    g = random_scene(n=14, seed=seed)
    c = cams()
    params = [g.means, g.quats, g.scales, g.opacities, g.sh]
    for p in params:
        p.requires_grad_(True)
    bg = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    out = rasterize(g, c, background=bg, backend="torch")

    proj = R.project_gaussians(g.means[None], g.quats[None], g.scales[None], g.opacities[None], c.w2c[None], c.K[None], 24, 20)
    colours = (0.5 + eval_sh(g.sh, g.means)).clamp_min(0)[None].expand(2, -1, -1)
    rgb_d, a_d, d_d = dense_composite(proj, g.opacities[None].expand(2, -1), colours, bg.expand(2, 3), 24, 20)
    torch.testing.assert_close(out.rgb, rgb_d.permute(0, 3, 1, 2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.alpha[:, 0], a_d, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.depth[:, 0], d_d, rtol=1e-10, atol=1e-10)
    assert out.alpha.max() > 0.5  # the scene is actually visible

    w = torch.randn(out.rgb.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    loss = (out.rgb * w).sum() + out.alpha.sum() + 0.1 * out.depth.sum()
    loss_d = (rgb_d.permute(0, 3, 1, 2) * w).sum() + a_d.sum() + 0.1 * d_d.sum()
    grads = torch.autograd.grad(loss, params)
    grads_d = torch.autograd.grad(loss_d, params)
    for name, ga, gb in zip(["means", "quats", "scales", "opacities", "sh"], grads, grads_d):
        assert ga.abs().sum() > 0, name
        torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-9, msg=name)


def test_gradients_match_finite_differences():
    g = random_scene(n=4, seed=3, sh_degree=1, spread=0.3)
    c = cams(az=(20.0,), el=(5.0,), width=12, height=12)
    bg = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)

    def f(means, quats, scales, opacities, sh):
        out = rasterize(Gaussians(means, quats, scales, opacities, sh), c, background=bg, backend="torch")
        return out.rgb, out.alpha, out.depth

    inputs = tuple(t.clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.sh))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_order_independent():
    g = random_scene(n=30, seed=4, dtype=torch.float32)
    c = cams(dtype=torch.float32)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    a = rasterize(g, c, backend="torch")
    b = rasterize(g[perm], c, backend="torch")
    torch.testing.assert_close(a.rgb, b.rgb, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.alpha, b.alpha, rtol=0, atol=1e-6)


def test_zero_opacity_renders_background():
    g = random_scene(n=10, seed=5, dtype=torch.float32)
    g = Gaussians(g.means, g.quats, g.scales, torch.zeros_like(g.opacities), g.sh)
    bg = torch.tensor([0.1, 0.2, 0.3])
    out = rasterize(g, cams(dtype=torch.float32), background=bg, backend="torch")
    assert (out.alpha == 0).all()
    torch.testing.assert_close(out.rgb, bg[None, :, None, None].expand_as(out.rgb), rtol=0, atol=0)


def test_early_termination_stops_at_opaque_front():
    # An opaque front layer hides a red Gaussian behind it completely (T < 1e-4 before reaching it).
    n = 6
    means = torch.zeros(n, 3)
    means[:, 1] = torch.linspace(-0.3, 0.3, n)  # depth along the front camera's axis (+y)
    rgb = torch.zeros(n, 3)
    rgb[-1] = torch.tensor([1.0, 0.0, 0.0])
    g = Gaussians.from_rgb(means, torch.full((n, 3), 0.3), torch.full((n,), 0.999), rgb)
    out = rasterize(g, orbit_cameras(torch.tensor([0.0]), 0.0, width=16), background=0.0, backend="torch")
    centre = out.rgb[0, :, 8, 8]
    assert centre[0].item() == 0.0  # the red one contributed nothing
    assert out.alpha[0, 0, 8, 8].item() > 0.999


@pytest.mark.parametrize("batch_dims", [(), (2,), (1, 2)])
def test_batch_dims_match_per_scene_rendering(batch_dims):
    n_scenes = math.prod(batch_dims) if batch_dims else 1
    scenes = [random_scene(n=10, seed=10 + i, dtype=torch.float32) for i in range(n_scenes)]
    views = [cams(az=(30.0 * i, 200.0), el=(0.0, 15.0), dtype=torch.float32) for i in range(n_scenes)]
    singles = [rasterize(s, v, backend="torch").rgb for s, v in zip(scenes, views)]
    if batch_dims:
        from facelift.cameras import Cameras

        g = Gaussians.cat([s.reshape(1, -1) for s in scenes], dim=0).reshape(*batch_dims, 10)
        v = Cameras.stack(views).reshape(*batch_dims, 2)
    else:
        g, v = scenes[0], views[0]
    out = rasterize(g, v, backend="torch")
    assert out.rgb.shape == (*batch_dims, 2, 3, 20, 24)
    torch.testing.assert_close(out.rgb.reshape(-1, 2, 3, 20, 24), torch.stack(singles), rtol=0, atol=1e-6)


def test_view_dependent_colour_uses_sh():
    # A degree-1 Gaussian whose band-1 coefficients make it brighter seen from +x than from -x.
    sh = torch.zeros(1, 4, 3)
    sh[0, 0] = rgb_to_sh_dc(torch.tensor([0.5, 0.5, 0.5]))
    sh[0, 3] = -0.8  # coefficient of -C1 * x: colour rises with the x of the view direction
    g = Gaussians(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.2), torch.ones(1) * 0.99, sh)
    c = orbit_cameras(torch.tensor([90.0, 270.0]), 0.0, width=16)  # at -x (looking +x) and at +x
    out = rasterize(g, c, background=0.0, backend="torch")
    centre = out.rgb[:, 0, 8, 8]
    expected = 0.99 * (0.5 + torch.tensor([1.0, -1.0]) * 0.4886025119029199 * 0.8)
    torch.testing.assert_close(centre, expected * out.alpha[:, 0, 8, 8] / 0.99, rtol=1e-4, atol=1e-4)
    assert centre[0] > centre[1]
    flat = rasterize(g, c, background=0.0, backend="torch", settings=RasterSettings(sh_degree=0))
    torch.testing.assert_close(flat.rgb[0], flat.rgb[1])


def test_width_height_override_rescales_intrinsics():
    g = random_scene(n=10, seed=6, dtype=torch.float32)
    c = cams(width=48, height=40, dtype=torch.float32)
    small = rasterize(g, c, 24, 20, backend="torch")
    direct = rasterize(g, c.resized(24, 20), backend="torch")
    assert small.rgb.shape[-2:] == (20, 24)
    torch.testing.assert_close(small.rgb, direct.rgb)


def test_bad_inputs_raise_clear_errors():
    g = random_scene(n=4, dtype=torch.float32)
    with pytest.raises(ValueError, match="cameras must be"):
        rasterize(g.reshape(1, 4), cams(dtype=torch.float32))
    with pytest.raises(ValueError, match="backend"):
        rasterize(g, cams(dtype=torch.float32), backend="vulkan")
    with pytest.raises(ValueError, match="CUDA"):
        rasterize(g, cams(dtype=torch.float32), backend="gsplat")


def test_behind_camera_and_outside_image_are_culled():
    c = orbit_cameras(torch.tensor([0.0]), 0.0, width=16)
    behind = Gaussians.from_rgb(torch.tensor([[0.0, -3.5, 0.0]]), torch.full((1, 3), 0.1), torch.ones(1) * 0.9, torch.zeros(1, 3))
    outside = Gaussians.from_rgb(torch.tensor([[5.0, 0.0, 0.0]]), torch.full((1, 3), 0.01), torch.ones(1) * 0.9, torch.zeros(1, 3))
    for g in (behind, outside):
        assert rasterize(g, c, backend="torch").alpha.sum() == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or not gsplat_available(), reason="needs CUDA and gsplat")
def test_gsplat_matches_reference_on_cuda():
    g = random_scene(n=200, seed=7, dtype=torch.float32, sh_degree=1, spread=0.6).to("cuda")
    c = cams(az=(0.0, 45.0, 90.0), el=(0.0, 10.0, 20.0), width=64, height=48, dtype=torch.float32).to("cuda")
    ref = rasterize(g, c, backend="torch")
    fast = rasterize(g, c, backend="gsplat")
    torch.testing.assert_close(fast.rgb, ref.rgb, rtol=0, atol=2e-4)
    torch.testing.assert_close(fast.alpha, ref.alpha, rtol=0, atol=2e-4)


def test_no_gaussians_renders_background():
    g = Gaussians.from_rgb(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3))
    bg = torch.tensor([0.2, 0.4, 0.6])
    out = rasterize(g, cams(dtype=torch.float32), background=bg, backend="torch")
    assert out.rgb.shape == (2, 3, 20, 24)
    torch.testing.assert_close(out.rgb, bg[None, :, None, None].expand(2, 3, 20, 24))
    assert (out.alpha == 0).all() and (out.depth == 0).all()
