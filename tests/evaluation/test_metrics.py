"""PSNR, SSIM, LPIPS and the backbones against known values and independent computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facelift.evaluation.metrics import composite, psnr, ssim
from facelift.models.backbones import (
    IResNet,
    alexnet_features,
    load_state_dict_file,
    vgg_features,
)


def test_psnr_of_known_noise_levels():
    target = torch.full((2, 3, 32, 32), 0.5)
    sign = (torch.arange(32 * 32).reshape(32, 32) % 2 * 2 - 1).float()  # +-1 checkerboard
    pred = target + 0.1 * sign  # MSE exactly 0.01 -> 20 dB
    assert psnr(pred, target).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    gen = torch.Generator().manual_seed(0)
    noisy = target + 0.05 * torch.randn(target.shape, generator=gen)  # sigma 0.05 -> 26.02 dB
    assert psnr(noisy, target).mean().item() == pytest.approx(-10 * math.log10(0.05**2), abs=0.1)
    assert psnr(target, target).tolist() == [100.0, 100.0]
    # clamping: a render overshooting 1 where the target is 1 has no error
    assert psnr(torch.full((1, 3, 4, 4), 1.3), torch.ones(1, 3, 4, 4)).item() == 100.0


def test_psnr_mask_averages_inside_only():
    target = torch.zeros(1, 3, 8, 8)
    pred = target.clone()
    pred[..., :4] = 1.0  # wrong on the left half only
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1
    assert psnr(pred, target, mask=mask).item() == 100.0
    assert psnr(pred, target).item() == pytest.approx(10 * math.log10(2), abs=1e-4)  # MSE 0.5
    with pytest.raises(ValueError, match="mask"):
        psnr(pred, target, mask=mask[:, :, :4])


def test_ssim_matches_skimage_for_identical_and_shifted_images():
    metrics = pytest.importorskip("skimage.metrics")
    data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(data.astronaut()[100:228, 150:278]).permute(2, 0, 1).float()[None] / 255  # [1, 3, 128, 128]
    shifted = torch.roll(img, shifts=(3, -2), dims=(-2, -1))
    assert ssim(img, img).item() == pytest.approx(1.0, abs=1e-6)
    ours = ssim(shifted, img).item()
    ref = metrics.structural_similarity(
        shifted[0].numpy(), img[0].numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0
    )
    assert ours == pytest.approx(ref, abs=1e-4)
    assert ours < 0.9


def test_composite_on_white():
    rgba = torch.tensor([0.2, 0.4, 0.6, 0.5]).view(1, 4, 1, 1)
    assert composite(rgba).flatten().tolist() == pytest.approx([0.6, 0.7, 0.8])


def test_backbones_have_torchvision_and_arcface_key_layouts():
    vgg = vgg_features(16)
    assert vgg[28].weight.shape == (512, 512, 3, 3) and isinstance(vgg[29], torch.nn.ReLU) and len(vgg) == 31
    assert vgg_features(19)[34].weight.shape == (512, 512, 3, 3)
    alex = alexnet_features()
    assert alex[0].weight.shape == (64, 3, 11, 11) and alex[10].weight.shape == (256, 256, 3, 3)
    keys = IResNet().state_dict()
    assert keys["conv1.weight"].shape == (64, 3, 3, 3)
    assert keys["layer1.0.downsample.0.weight"].shape == (64, 64, 1, 1)
    assert keys["layer3.13.bn3.running_var"].shape == (256,)  # 14 blocks in stage 3: IResNet-50
    assert keys["fc.weight"].shape == (512, 512 * 7 * 7) and keys["features.weight"].shape == (512,)
    assert "layer4.3.conv1.weight" not in keys


def test_load_state_dict_file_names_mismatches(tmp_path):
    net = alexnet_features()
    torch.save({f"features.{k}": v for k, v in net.state_dict().items()}, tmp_path / "alex.pth")
    load_state_dict_file(alexnet_features(), tmp_path / "alex.pth", what="alexnet", prefix="features.")
    with pytest.raises(ValueError, match="wrong shape"):
        load_state_dict_file(vgg_features(16)[:2], tmp_path / "alex.pth", what="vgg", prefix="features.")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_state_dict_file(net, tmp_path / "junk.pth", what="alexnet")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_state_dict_file(net, tmp_path / "missing.pth", what="alexnet")


def _lpips_files(tmp_path, net: str):
    from facelift.evaluation.perceptual import _TAPS

    torch.manual_seed(0)
    feats = vgg_features(16) if net == "vgg" else alexnet_features()
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, tmp_path / f"{net}_backbone.pth")
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(_TAPS[net][1])}
    torch.save(lin, tmp_path / f"{net}_lin.pth")
    return feats, lin


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_a_hand_written_computation(tmp_path, net):
    from facelift.evaluation.perceptual import _TAPS, LPIPS

    feats, lin = _lpips_files(tmp_path, net)
    metric = LPIPS(tmp_path / f"{net}_backbone.pth", tmp_path / f"{net}_lin.pth", net=net)
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 64, 64, generator=gen)
    b = (a + 0.1 * torch.randn(a.shape, generator=gen)).clamp(0, 1)
    # Independent: run the backbone layer by layer and tap after the ReLUs at the documented indices.
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = [end - 1 for end in _TAPS[net][0]]

    def features(x):
        x, out = ((2 * x - 1) - shift) / scale, []
        for i, layer in enumerate(feats):
            x = layer(x)
            if i in taps:
                out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
        return out

    expected = sum(
        F.conv2d((fa - fb) ** 2, lin[f"lin{i}.model.1.weight"]).mean(dim=(1, 2, 3))
        for i, (fa, fb) in enumerate(zip(features(a), features(b)))
    )
    torch.testing.assert_close(metric(a, b), expected, rtol=1e-4, atol=1e-6)
    assert metric(a, a).abs().max().item() < 1e-6
    assert metric(a, (a + 0.3 * torch.randn(a.shape, generator=gen)).clamp(0, 1)).mean() > metric(a, b).mean()


def test_lpips_refuses_missing_weights(tmp_path, monkeypatch):
    from facelift.evaluation import perceptual

    _lpips_files(tmp_path, "alex")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        perceptual.LPIPS(tmp_path / "nope.pth", net="alex")
    monkeypatch.setattr(perceptual, "lpips_package_weights", lambda net: None)
    with pytest.raises(FileNotFoundError, match="linear layers"):
        perceptual.LPIPS(tmp_path / "alex_backbone.pth", net="alex")
    with pytest.raises(ValueError, match="missing"):
        perceptual.LPIPS(tmp_path / "alex_backbone.pth", tmp_path / "alex_backbone.pth", net="alex")


def test_dreamsim_refuses_an_empty_folder(tmp_path):
    from facelift.evaluation.perceptual import DreamSim

    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        DreamSim(tmp_path)
