"""Frozen image backbones of the perceptual losses and metrics, written without torchvision.

Their parameter names follow the usual public checkpoints, so that a user's local weights files load
strictly (nothing is ever downloaded):

- :func:`vgg_features` (VGG16 / VGG19) and :func:`alexnet_features`: ``features.<index>.weight|bias`` of
  torchvision's ``vgg16``, ``vgg19`` and ``alexnet`` state dicts (e.g. ``vgg16-397923af.pth``);
- :class:`IResNet`: the ArcFace backbones of InsightFace's ``arcface_torch`` (``backbone.pth`` of
  ``ms1mv3_arcface_r50_fp16``/``glint360k_cosface_r50_fp16_0.1``: ``conv1``, ``layer1.0.bn1``, ..., ``fc``,
  ``features``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["IResNet", "alexnet_features", "load_state_dict_file", "vgg_features"]

_VGG_LAYOUTS: dict[int, tuple[int | str, ...]] = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def vgg_features(depth: int = 16) -> nn.Sequential:
    """The convolutional part of VGG ``depth`` (16 or 19), indexed like torchvision's ``vgg*().features``.

    Example:
        >>> vgg_features(16)[28]  # relu5_3 follows at index 29
        Conv2d(512, 512, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    if depth not in _VGG_LAYOUTS:
        raise ValueError(f"VGG depth must be one of {sorted(_VGG_LAYOUTS)}, got {depth!r}")
    layers: list[nn.Module] = []
    cin = 3
    for item in _VGG_LAYOUTS[depth]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU()]
            cin = int(item)
    return nn.Sequential(*layers)


def alexnet_features() -> nn.Sequential:
    """The convolutional part of AlexNet, indexed like torchvision's ``alexnet().features``."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )  # fmt: skip


def load_state_dict_file(module: nn.Module, path: str | os.PathLike, *, what: str, prefix: str = "") -> nn.Module:
    """Load a local ``.pth``/``.pt``/``.safetensors`` state dict into ``module`` strictly.

    Only keys starting with ``prefix`` are used (the prefix is stripped), so e.g. a whole torchvision VGG
    state dict loads into its ``features``. Pickled files load with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file (weights are never downloaded).
        ValueError: the file does not hold ``what``'s parameters (the message names the mismatched keys).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} weights file {path} does not exist (weights are never downloaded; point to a local copy)")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
            raise ValueError(f"{path} is not a readable PyTorch state dict ({type(err).__name__}: {err})") from err
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{name}: {keys[:5]}{' ...' if len(keys) > 5 else ''}" for name, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]  # fmt: skip
        raise ValueError(f"{path} is not a {what} state dict ({'; '.join(parts)})")
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module


class _IBasicBlock(nn.Module):
    """Pre-activation residual block of IResNet: BN, conv3x3, BN, PReLU, conv3x3 (stride), BN."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """ArcFace's IResNet backbone: ``[B, 3, 112, 112]`` aligned faces in [-1, 1] -> ``[B, D]`` embeddings.

    Args:
        layers: residual blocks per stage; ``(3, 4, 14, 3)`` is IResNet-50, ``(2, 2, 2, 2)`` IResNet-18,
            ``(3, 13, 30, 3)`` IResNet-100.
        widths: channels per stage.
        embed_dim: embedding width (512 for the public models).
        input_size: input side (112); the last stage is ``input_size / 16`` pixels wide.

    Example:
        >>> net = IResNet((1, 1, 1, 1), widths=(8, 8, 8, 8), embed_dim=16).eval()
        >>> net(torch.zeros(2, 3, 112, 112)).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 14, 3),
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
        embed_dim: int = 512,
        input_size: int = 112,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4 or input_size % 16:
            raise ValueError(f"need 4 stages and an input size divisible by 16, got layers={layers}, widths={widths}, input_size={input_size}")
        self.input_size = int(input_size)
        stem = widths[0]
        self.conv1 = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-5)
        self.prelu = nn.PReLU(stem)
        cin = stem
        for i, (n, width) in enumerate(zip(layers, widths), start=1):
            blocks = [_IBasicBlock(cin, width, 2)] + [_IBasicBlock(width, width, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = width
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        side = input_size // 16
        self.fc = nn.Linear(cin * side * side, embed_dim)
        self.features = nn.BatchNorm1d(embed_dim, eps=1e-5)

    def forward(self, x: Float[Tensor, "B 3 S S"]) -> Float[Tensor, "B D"]:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"IResNet takes [B, 3, {self.input_size}, {self.input_size}], got {tuple(x.shape)}")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.bn2(x).flatten(1)))
