"""Test-time refinement: it fits the views it is given (and helps at views it was not given), deterministically."""

from __future__ import annotations

import pytest
import torch

from facelift.cameras import Cameras, facelift_views, orbit_cameras
from facelift.gaussians import Gaussians
from facelift.pipeline.refine import REFINE_PARAMS, RefineSettings, parse_refine_params, refine_gaussians, refine_params_name, refine_settings
from facelift.rendering import rasterize


def _scene(seed: int, n: int = 300) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.25
    scales = torch.rand(n, 3, generator=g) * 0.05 + 0.02
    opac = torch.rand(n, generator=g) * 0.5 + 0.4
    rgb = torch.rand(n, 3, generator=g)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    return Gaussians.from_rgb(means, scales, opac, rgb, quats)


def _perturbed(g: Gaussians, seed: int) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    noise = lambda t, s: t + s * torch.randn(t.shape, generator=gen)  # noqa: E731
    return Gaussians(noise(g.means, 0.03), g.quats, g.scales * 1.3, (g.opacities * 0.8).clamp(0, 1), noise(g.sh, 0.4))


def _error(g: Gaussians, cams, target) -> float:
    return (rasterize(g, cams).rgb - target).abs().mean().item()


@pytest.fixture(scope="module")
def setup():
    truth = _scene(0)
    train_cams = facelift_views(resolution=24)
    held_out = orbit_cameras(torch.tensor([20.0, 135.0, 250.0]), torch.tensor([10.0, -15.0, 5.0]), width=24)
    with torch.no_grad():
        train = rasterize(truth, train_cams).rgb
        test = rasterize(truth, held_out).rgb
    return truth, train_cams, train, held_out, test


def test_refinement_fits_the_views_and_generalises(setup):
    truth, train_cams, train, held_out, test = setup
    start = _perturbed(truth, 1)
    losses = []
    refined = refine_gaussians(start, train, train_cams, RefineSettings(steps=40), callback=lambda step, loss: losses.append((step, loss)))
    assert [s for s, _ in losses] == list(range(1, 41))
    assert losses[-1][1] < 0.6 * losses[0][1]
    before, after = _error(start, train_cams, train), _error(refined, train_cams, train)
    assert after < 0.6 * before, (before, after)
    # Views the optimisation never saw get better too (the scene is the same one).
    assert _error(refined, held_out, test) < 0.8 * _error(start, held_out, test)
    assert refined.shape == start.shape and refined.sh_degree == start.sh_degree and refined.dtype == start.dtype
    assert not refined.means.requires_grad
    torch.testing.assert_close(refined.quats.norm(dim=-1), torch.ones(start.num))
    assert (refined.opacities > 0).all() and (refined.opacities < 1).all() and (refined.scales > 0).all()


def test_refinement_is_deterministic_and_leaves_its_input_alone(setup):
    truth, train_cams, train, _, _ = setup
    start = _perturbed(truth, 2)
    means = start.means.clone()
    a = refine_gaussians(start, train, train_cams, RefineSettings(steps=5))
    b = refine_gaussians(start, train, train_cams, RefineSettings(steps=5))
    assert torch.equal(a.means, b.means) and torch.equal(a.sh, b.sh)
    assert torch.equal(start.means, means)
    assert refine_gaussians(start, train, train_cams, RefineSettings(steps=0)) is start


def test_batched_scenes_refine_like_single_ones(setup):
    truth, train_cams, train, _, _ = setup
    scenes = [_perturbed(truth, 3), _perturbed(truth, 4)]
    batch = Gaussians.cat([s.reshape(1, -1) for s in scenes], dim=0)
    cams = Cameras.stack([train_cams, train_cams])
    settings = RefineSettings(steps=4)
    together = refine_gaussians(batch, torch.stack([train, train]), cams, settings)
    for b, scene in enumerate(scenes):
        alone = refine_gaussians(scene, train, train_cams, settings)
        # Adam normalises away the 1/B of the batch mean, so each scene takes (numerically) the same steps.
        torch.testing.assert_close(together[b].means, alone.means, atol=1e-4, rtol=0)


def test_fp16_gaussians_are_refined_in_fp32_and_returned_as_fp16(setup):
    truth, train_cams, train, _, _ = setup
    half = _perturbed(truth, 5).to(dtype=torch.float16)
    refined = refine_gaussians(half, train, train_cams, RefineSettings(steps=3))
    assert refined.dtype == torch.float16 and torch.isfinite(refined.means).all()
    assert not torch.equal(refined.means, half.means)


def test_bad_arguments_are_refused(setup):
    truth, train_cams, train, _, _ = setup
    with pytest.raises(ValueError, match="one camera per image"):
        refine_gaussians(truth, train, train_cams[:5])
    with pytest.raises(ValueError, match=r"\[\.\.\., V, 3, H, W\]"):
        refine_gaussians(truth, train[0], train_cams)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        RefineSettings(steps=-1)
    with pytest.raises(ValueError, match="final_lr_fraction"):
        RefineSettings(final_lr_fraction=0)
    assert refine_settings(None) is None and refine_settings(0) is None
    assert refine_settings(7) == RefineSettings(steps=7)
    assert refine_settings(RefineSettings(steps=0)) is None
    with pytest.raises(TypeError, match="number of steps"):
        refine_settings(True)


def test_refinement_moves_only_the_chosen_parameters(setup):
    truth, train_cams, train, held_out, test = setup
    start = _perturbed(truth, 7)
    appearance = refine_gaussians(start, train, train_cams, RefineSettings(steps=20, params="appearance"))
    for frozen in ("means", "scales", "quats"):  # exactly as given, not through the log / normalise round trip
        assert torch.equal(getattr(appearance, frozen), getattr(start, frozen)), frozen
    assert not torch.equal(appearance.sh, start.sh) and not torch.equal(appearance.opacities, start.opacities)
    assert _error(appearance, train_cams, train) < 0.9 * _error(start, train_cams, train)
    colour = refine_gaussians(start, train, train_cams, RefineSettings(steps=20, params=["sh"]))
    assert torch.equal(colour.opacities, start.opacities) and not torch.equal(colour.sh, start.sh)
    # Freezing is not a zero learning rate of the full optimisation: the geometry is what moves most otherwise.
    full = refine_gaussians(start, train, train_cams, RefineSettings(steps=20))
    assert (full.means - start.means).abs().amax() > 1e-3
    assert _error(full, train_cams, train) < _error(appearance, train_cams, train)


def test_refinement_parameter_names():
    assert parse_refine_params("all") == REFINE_PARAMS == RefineSettings().params
    assert parse_refine_params("appearance") == ("opacities", "sh")
    assert parse_refine_params("colour") == ("sh",)
    assert parse_refine_params("sh, means") == ("means", "sh")  # a comma list, in the canonical order
    assert parse_refine_params(["quats", "scales", "quats"]) == ("scales", "quats")
    assert RefineSettings(params="appearance") == RefineSettings(params=("sh", "opacities"))
    assert [refine_params_name(p) for p in (REFINE_PARAMS, ("sh", "opacities"), ("sh",), ("means", "sh"))] == ["all", "appearance", "colour", ["means", "sh"]]
    for bad in ("geometry", "means,colors", "", [], ","):
        with pytest.raises(ValueError, match="one of all, appearance, colour"):
            parse_refine_params(bad)
    with pytest.raises(ValueError, match="refinement parameters"):
        RefineSettings(params=("rotation",))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_refinement_on_cuda_matches_the_cpu(setup):
    # The auto backend is gsplat on CUDA when it is installed, the portable rasteriser otherwise: either way a few
    # steps from the same start land where the CPU's do (rasterisers agree to float32 rounding; Adam amplifies
    # tiny gradient differences only where a gradient is near zero, hence the loose tolerance on a few entries).
    truth, train_cams, train, held_out, test = setup
    start = _perturbed(truth, 6)
    settings = RefineSettings(steps=5)
    cpu = refine_gaussians(start, train, train_cams, settings)
    gpu = refine_gaussians(start.to("cuda"), train.cuda(), train_cams.to("cuda"), settings).to("cpu")
    assert gpu.device.type == "cpu" and gpu.shape == cpu.shape
    close = (gpu.means - cpu.means).abs().amax(dim=-1) < 1e-3
    assert close.float().mean() > 0.98
    assert abs(_error(gpu, held_out, test) - _error(cpu, held_out, test)) < 1e-3
