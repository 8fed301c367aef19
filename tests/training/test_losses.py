"""SSIM against closed forms (and scikit-image when installed); the reconstruction loss."""

from __future__ import annotations

import pytest
import torch

from facelift.training.losses import VGGPerceptualLoss, chroma_of, reconstruction_loss, ssim

C1, C2 = 0.01**2, 0.03**2


def test_ssim_identical_is_one_and_noise_lowers_it():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    s1, s2 = float(ssim(x, noisy)), float(ssim(x, noisier))
    assert 1.0 > s1 > s2


def test_ssim_constant_images_closed_form():
    # Constant images: every variance and covariance is 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.2, 0.7
    got = ssim(torch.full((1, 1, 16, 16), a, dtype=torch.float64), torch.full((1, 1, 16, 16), b, dtype=torch.float64))
    assert float(got) == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1), rel=1e-5)


def test_ssim_hand_computed_tiny_window():
    # A 3x3 image and a 3x3 window: one valid position; the weights are the normalised Gaussian.
    x = torch.tensor([[0.0, 0.5, 1.0], [0.2, 0.4, 0.6], [1.0, 0.0, 0.3]], dtype=torch.float64)
    y = torch.tensor([[0.1, 0.5, 0.9], [0.3, 0.3, 0.6], [0.8, 0.2, 0.3]], dtype=torch.float64)
    g1 = torch.exp(-torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) / (2 * 1.5**2))
    w = torch.outer(g1, g1) / g1.sum() ** 2
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx**2, (w * y * y).sum() - my**2
    cxy = (w * x * y).sum() - mx * my
    expected = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    assert float(ssim(x[None, None], y[None, None])) == pytest.approx(float(expected), rel=1e-10)


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 24, 24, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ref = metrics.structural_similarity(
        x.numpy(), y.numpy(), channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert float(ssim(x[None], y[None])) == pytest.approx(ref, abs=1e-6)


def test_ssim_reduction_and_shape_errors():
    x = torch.rand(2, 4, 3, 16, 16)
    assert ssim(x, x, reduction="none").shape == (2, 4)
    with pytest.raises(ValueError, match="equal shape"):
        ssim(x, x[..., :8])


def test_reconstruction_loss_terms_and_gradient():
    g = torch.Generator().manual_seed(2)
    target = torch.rand(1, 4, 3, 16, 16, generator=g)
    pred = torch.rand(1, 4, 3, 16, 16, generator=g).requires_grad_(True)
    out = reconstruction_loss(pred, target)
    mse = torch.mean((pred - target) ** 2).detach()
    assert float(out.mse) == pytest.approx(float(mse))
    assert float(out.total.detach()) == pytest.approx(float(mse + 0.5 * (1 - ssim(pred.detach(), target))))
    out.total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert float(reconstruction_loss(pred, target, 0.0).total.detach()) == pytest.approx(float(mse))
    custom = reconstruction_loss(pred, target, 2.0, perceptual=lambda a, b: (a - b).abs().mean())
    assert float(custom.total.detach()) == pytest.approx(float(mse + 2.0 * (pred.detach() - target).abs().mean()))


def test_vgg_loss_loads_a_local_torchvision_layout_file_strictly(tmp_path):
    from facelift.models.backbones import vgg_features

    with pytest.raises(FileNotFoundError, match="never downloaded"):
        VGGPerceptualLoss(tmp_path / "vgg19.pth")
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg_features(19).state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # ignored, as in a whole torchvision file
    torch.save(state, tmp_path / "vgg19.pth")
    loss = VGGPerceptualLoss(tmp_path / "vgg19.pth")
    x = torch.rand(2, 3, 32, 32)
    assert float(loss(x, x)) == 0.0
    assert float(loss(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1))) > 0
    del state["features.34.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="missing.*34.bias"):
        VGGPerceptualLoss(tmp_path / "bad.pth")


def test_chroma_is_zero_for_grey_and_ignores_brightness():
    grey = torch.rand(2, 1, 5, 5).expand(2, 3, 5, 5)
    assert chroma_of(grey).abs().max() < 1e-6
    colour = torch.tensor([0.9, 0.3, 0.3]).view(3, 1, 1).expand(3, 4, 4)
    assert torch.allclose(chroma_of(colour)[:, 0, 0], torch.tensor([0.4, -0.2, -0.2]))
    assert torch.allclose(chroma_of(colour + 0.05), chroma_of(colour))  # a brighter red has the same chroma
