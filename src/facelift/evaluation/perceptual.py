"""Learned perceptual distances, used only when their weights are on the user's disk.

- :class:`LPIPS` (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
  Metric", v0.1): written here on :mod:`facelift.models.backbones`; needs the backbone's ImageNet weights
  (a torchvision ``vgg16``/``alexnet`` state dict) and the LPIPS linear layers (``vgg.pth``/``alex.pth`` of
  the ``lpips`` package, which are found automatically when that package is installed).
- :class:`DreamSim` (Fu et al. 2023): a thin adapter over the ``dreamsim`` package, given the folder its
  checkpoint was unpacked into; it refuses to run when the folder is incomplete, so nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from facelift.models.backbones import (
    alexnet_features,
    load_state_dict_file,
    vgg_features,
)

__all__ = ["LPIPS", "DreamSim", "lpips_package_weights"]

# LPIPS's input scaling layer, applied to images in [-1, 1] (the constants of the paper's release).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# Feature taps: (end index of each slice of ``features``) and channels, per backbone.
_TAPS = {"vgg": ((4, 9, 16, 23, 30), (64, 128, 256, 512, 512)), "alex": ((2, 5, 8, 10, 12), (64, 192, 384, 256, 256))}


def lpips_package_weights(net: str = "vgg") -> Path | None:
    """The linear-layer file shipped inside an installed ``lpips`` package (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    return path if path.is_file() else None


class LPIPS(nn.Module):
    """LPIPS v0.1 distance: unit-normalised deep features, squared differences weighted per channel by the
    learned linear layers, averaged over space and summed over five layers.

    Args:
        backbone_weights: local torchvision ``vgg16`` (``net="vgg"``) or ``alexnet`` (``net="alex"``) state
            dict, e.g. ``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth``.
        linear_weights: the LPIPS linear layers (``lin0.model.1.weight`` .. ``lin4.model.1.weight``); default:
            the file inside an installed ``lpips`` package.
        net: ``vgg`` or ``alex``.
        device: where the network runs.

    Raises:
        FileNotFoundError: a weights file is missing (nothing is downloaded).
        ValueError: a file holds other parameters.

    Example:
        >>> metric = LPIPS("weights/vgg16-397923af.pth")  # doctest: +SKIP
        >>> metric(pred, target)  # [N] distances, 0 for identical images  # doctest: +SKIP
    """

    def __init__(
        self,
        backbone_weights: str | os.PathLike,
        linear_weights: str | os.PathLike | None = None,
        *,
        net: Literal["vgg", "alex"] = "vgg",
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if net not in _TAPS:
            raise ValueError(f"net must be 'vgg' or 'alex', got {net!r}")
        ends, channels = _TAPS[net]
        features = (vgg_features(16) if net == "vgg" else alexnet_features())[: ends[-1]]
        load_state_dict_file(features, backbone_weights, what=f"torchvision {'vgg16' if net == 'vgg' else 'alexnet'}", prefix="features.")
        if linear_weights is None:
            linear_weights = lpips_package_weights(net)
            if linear_weights is None:
                raise FileNotFoundError(f"LPIPS needs its linear layers: pass the lpips package's weights/v0.1/{net}.pth or pip install lpips")
        self.linear = nn.ModuleDict({f"lin{i}": nn.Conv2d(c, 1, 1, bias=False) for i, c in enumerate(channels)})
        lin_file = _LinearFile(self.linear)
        load_state_dict_file(lin_file, linear_weights, what=f"LPIPS {net} linear layers")
        self.features = features
        self.ends = ends
        self.net = net
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.to(device).eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # always frozen

    def layer_features(self, images: Float[Tensor, "N 3 H W"]) -> list[Tensor]:
        """The five unit-normalised feature maps of ``images`` in [0, 1]."""
        x = ((images * 2 - 1) - self.shift) / self.scale
        out, start = [], 0
        for end in self.ends:
            x = self.features[start:end](x)
            start = end
            out.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    @torch.no_grad()
    def forward(self, pred: Float[Tensor, "N 3 H W"], target: Float[Tensor, "N 3 H W"]) -> Float[Tensor, "N"]:
        """``[N]`` distances between images in [0, 1]."""
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred and target must be [N, 3, H, W] of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
        dev = self.shift.device
        fa = self.layer_features(pred.float().clamp(0, 1).to(dev))
        fb = self.layer_features(target.float().clamp(0, 1).to(dev))
        total = torch.zeros(pred.shape[0], device=dev)
        for i, (a, b) in enumerate(zip(fa, fb)):
            total = total + self.linear[f"lin{i}"]((a - b).square()).mean(dim=(1, 2, 3))
        return total.cpu()


class _LinearFile(nn.Module):
    """The key layout of the lpips package's linear-layer files: ``lin{i}.model.1.weight``."""

    def __init__(self, linear: nn.ModuleDict) -> None:
        super().__init__()
        for name, conv in linear.items():
            # model.0 is a parameter-free dropout in the original; only model.1 holds weights.
            setattr(self, name, nn.Module())
            getattr(self, name).model = nn.Sequential(nn.Identity(), conv)


class DreamSim:
    """DreamSim distance through the ``dreamsim`` package, from an already unpacked checkpoint folder.

    Args:
        cache_dir: the folder holding dreamsim's unpacked checkpoint (for the default ensemble:
            ``ensemble_lora/`` and the three backbone files next to it).
        dreamsim_type: dreamsim's model type (``ensemble`` by default).
        device: where it runs.

    Raises:
        ImportError: the ``dreamsim`` package is not installed.
        FileNotFoundError: the folder lacks the checkpoint (dreamsim would download it; facelift never does).
    """

    def __init__(self, cache_dir: str | os.PathLike, *, dreamsim_type: str = "ensemble", device: torch.device | str = "cpu") -> None:
        cache = Path(cache_dir)
        if not (cache / f"{dreamsim_type}_lora").is_dir():
            raise FileNotFoundError(f"{cache} holds no unpacked DreamSim checkpoint ({dreamsim_type}_lora/ missing); nothing is downloaded")
        try:
            from dreamsim import dreamsim
        except ImportError as err:
            raise ImportError("DreamSim needs the dreamsim package: pip install dreamsim") from err
        self.device = torch.device(device)
        self.model, _ = dreamsim(pretrained=True, device=str(self.device), cache_dir=str(cache), dreamsim_type=dreamsim_type)
        self.model.eval()

    @torch.no_grad()
    def __call__(self, pred: Float[Tensor, "N 3 H W"], target: Float[Tensor, "N 3 H W"]) -> Float[Tensor, "N"]:
        """``[N]`` distances; images in [0, 1] are resized to DreamSim's 224 x 224 (bicubic)."""
        def prep(x: Tensor) -> Tensor:
            return F.interpolate(x.float().clamp(0, 1), size=(224, 224), mode="bicubic", align_corners=False).clamp(0, 1).to(self.device)

        return self.model(prep(pred), prep(target)).float().flatten().cpu()
