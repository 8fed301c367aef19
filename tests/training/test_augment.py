"""Input degradation of the reconstructor's training views, and the fixed-input sampling it pairs with."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from facelift.cameras import facelift_views
from facelift.training.augment import InputDegradation, degrade_views
from facelift.training.gslrm_trainer import GSLRM_PRESETS, _ReconstructorSamples

NONE = InputDegradation(blur=0, shift=0, colour=0, noise=0)


def _views() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 24, 24, generator=g) * 0.6 + 0.2


def test_zero_bounds_leave_views_unchanged_and_seeds_reproduce():
    x = _views()
    torch.testing.assert_close(degrade_views(x, torch.Generator().manual_seed(1), NONE), x)
    a = degrade_views(x, torch.Generator().manual_seed(1))
    b = degrade_views(x, torch.Generator().manual_seed(1))
    c = degrade_views(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    with pytest.raises(ValueError, match=">= 0"):
        InputDegradation(blur=-1)
    with pytest.raises(ValueError, match=r"\[V, 3, H, W\]"):
        degrade_views(torch.rand(3, 24, 24), torch.Generator())


def test_each_degradation_does_what_it_says():
    x = _views()
    g = torch.Generator().manual_seed(3)
    blurred = degrade_views(x, g, replace(NONE, blur=2.0))
    rough = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean((1, 2, 3))  # noqa: E731
    assert torch.all(rough(blurred) <= rough(x) + 1e-6) and rough(blurred).min() < 0.6 * rough(x).min()  # per-view sigmas
    torch.testing.assert_close(blurred.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.01, rtol=0)  # brightness kept
    # A shift moves a bright dot's centre of mass by at most the bound, and moves it.
    dot = torch.zeros(1, 3, 24, 24)
    dot[..., 12, 12] = 1
    moved = degrade_views(dot, torch.Generator().manual_seed(4), replace(NONE, shift=1.0))[0, 0]
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    centre = torch.stack([(moved * ys).sum(), (moved * xs).sum()]) / moved.sum()
    offset = (centre - 12).abs()
    assert offset.max() <= 1.0 + 1e-4 and offset.max() > 1e-3
    # Colour: one affine map per view and channel.
    tinted = degrade_views(x, torch.Generator().manual_seed(5), replace(NONE, colour=0.1))
    for v in range(3):
        for c in range(3):
            a, b = x[v, c].flatten(), tinted[v, c].flatten()
            fit = torch.linalg.lstsq(torch.stack([a, torch.ones_like(a)], 1), b[:, None]).solution
            torch.testing.assert_close(fit[0, 0] * a + fit[1, 0], b, atol=1e-5, rtol=0)
    noisy = degrade_views(x, torch.Generator().manual_seed(6), replace(NONE, noise=0.05))
    assert 0 < (noisy - x).std() < 0.05


def test_fixed_inputs_feed_the_six_views_and_degraded_copies(tmp_path):
    config = replace(
        GSLRM_PRESETS["tiny"], num_random=4, views_per_sample=8, input_views=6, inputs="fixed", degrade_inputs=1.0, out_dir=tmp_path,
    )  # fmt: skip
    item = _ReconstructorSamples(config)[0]
    assert item["input_index"].tolist() == list(range(6))
    torch.testing.assert_close(item["c2w"][:6], facelift_views(0.0, resolution=16).c2w, atol=1e-6, rtol=0)
    assert item["images"].shape[0] == 8 and item["input_images"].shape == (6, 3, 16, 16)
    assert not torch.equal(item["input_images"], item["images"][:6])  # degraded inputs, clean targets
    clean = _ReconstructorSamples(replace(config, degrade_inputs=0.0))[0]
    assert "input_images" not in clean and torch.equal(clean["images"], item["images"])
    with pytest.raises(ValueError, match="input_views=6"):
        replace(config, input_views=4)
    with pytest.raises(ValueError, match="probability"):
        replace(config, degrade_inputs=1.5)
