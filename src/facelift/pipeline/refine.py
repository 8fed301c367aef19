"""Test-time refinement: a few steps of gradient descent on the Gaussians against the views they came from.

The reconstructor predicts Gaussians in one forward pass; the views it was given are then fitted a little
better by optimising every Gaussian parameter through the differentiable rasteriser (3DGS-style photometric
loss ``(1 - w) L1 + w (1 - SSIM)``, Adam, one group per parameter kind, exponential learning-rate decay). The
feed-forward prediction is the initialisation, so a few dozen steps suffice; no Gaussians are added or
removed (no densification). ``RefineSettings.params`` chooses which parameter kinds move (all of them by default;
``"appearance"``, opacities and colours with the geometry frozen, is what the bundled weights' photo fit uses).

Optimisation runs on the Gaussians' device with the ``auto`` rasteriser backend (gsplat on CUDA when it is
installed, the portable PyTorch rasteriser elsewhere). The result is deterministic on the CPU.

Example:
    >>> import torch
    >>> from facelift.cameras import facelift_views
    >>> from facelift.gaussians import Gaussians
    >>> g = Gaussians.from_rgb(torch.randn(200, 3) * 0.2, torch.full((200, 3), 0.05), torch.full((200,), 0.5), torch.rand(200, 3))
    >>> views = torch.ones(6, 3, 16, 16)
    >>> refined = refine_gaussians(g, views, facelift_views(resolution=16), RefineSettings(steps=2))
    >>> refined.shape
    torch.Size([200])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.gaussians.container import Gaussians
from facelift.rendering.rasterize import Backend, rasterize
from facelift.training.losses import ssim

__all__ = ["PARAM_PRESETS", "REFINE_PARAMS", "RefineSettings", "parse_refine_params", "refine_gaussians", "refine_params_name", "refine_settings"]

REFINE_PARAMS: tuple[str, ...] = ("means", "scales", "opacities", "quats", "sh")
"""The Gaussian parameter kinds refinement can optimise (centres, scales, opacities, rotations, SH colours)."""

PARAM_PRESETS: dict[str, tuple[str, ...]] = {
    "all": REFINE_PARAMS,
    "appearance": ("opacities", "sh"),  # the geometry (centres, scales, rotations) frozen
    "colour": ("sh",),
}
"""Named subsets of :data:`REFINE_PARAMS` (``--fit-input-params all|appearance|colour``)."""


def parse_refine_params(spec: str | Sequence[str]) -> tuple[str, ...]:
    """A preset name (``all``, ``appearance``, ``colour``), a comma-separated list or a sequence of parameter
    kinds -> the kinds in :data:`REFINE_PARAMS` order.

    Raises:
        ValueError: an unknown name, or no kind at all.
    """
    if isinstance(spec, str):
        spec = PARAM_PRESETS.get(spec.strip(), spec.split(","))
    names = {str(name).strip() for name in spec} - {""}
    unknown = sorted(names - set(REFINE_PARAMS))
    if unknown or not names:
        presets = ", ".join(PARAM_PRESETS)
        raise ValueError(f"refinement parameters must be one of {presets} or a comma list of {', '.join(REFINE_PARAMS)}; got {spec!r}")
    return tuple(name for name in REFINE_PARAMS if name in names)


def refine_params_name(params: Sequence[str]) -> str | list[str]:
    """The preset name of ``params`` when one matches (``"appearance"``), else the kinds as a list (for JSON)."""
    params = parse_refine_params(params)
    return next((name for name, kinds in PARAM_PRESETS.items() if kinds == params), list(params))


@dataclass(frozen=True)
class RefineSettings:
    """How :func:`refine_gaussians` optimises (learning rates are Adam's, per parameter kind)."""

    steps: int = 50
    """Optimisation steps (each renders every view once); 0 returns the Gaussians unchanged."""
    lr_means: float = 2e-3
    """Centres, in world units (the head spans about 1)."""
    lr_scales: float = 1e-2
    """Log standard deviations."""
    lr_opacities: float = 5e-2
    """Opacity logits."""
    lr_quats: float = 2e-3
    """Rotation quaternions (unnormalised)."""
    lr_sh: float = 1e-2
    """Spherical-harmonic colour coefficients."""
    final_lr_fraction: float = 0.1
    """Every learning rate decays exponentially to this fraction of its start at the last step."""
    ssim_weight: float = 0.2
    """``w`` in the loss ``(1 - w) L1 + w (1 - SSIM)`` (3DGS's 0.2)."""
    background: float = 1.0
    """Background the views are composited on (white, as the reconstructor's inputs)."""
    backend: Backend = "auto"
    """Rasteriser backend (see :func:`facelift.rendering.rasterize`)."""
    params: tuple[str, ...] = REFINE_PARAMS
    """Which parameter kinds are optimised (see :func:`parse_refine_params`; a preset name is accepted too);
    the others keep their values."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", parse_refine_params(self.params))
        if self.steps < 0:
            raise ValueError(f"refinement steps must be >= 0, got {self.steps}")
        rates = (self.lr_means, self.lr_scales, self.lr_opacities, self.lr_quats, self.lr_sh)
        if min(rates) < 0 or not 0 < self.final_lr_fraction <= 1 or not 0 <= self.ssim_weight <= 1:
            raise ValueError("need learning rates >= 0, 0 < final_lr_fraction <= 1 and 0 <= ssim_weight <= 1")


def refine_settings(refine: RefineSettings | int | None) -> RefineSettings | None:
    """Normalise the ``refine`` argument of the pipeline: settings as given, a step count with the default
    settings, ``None`` (or 0 steps) for no refinement."""
    if refine is None or isinstance(refine, RefineSettings):
        return refine if refine is None or refine.steps else None
    if isinstance(refine, bool) or not isinstance(refine, int):
        raise TypeError(f"refine must be RefineSettings, a number of steps or None, got {refine!r}")
    return RefineSettings(steps=refine) if refine else None


def refine_gaussians(
    gaussians: Gaussians,
    images: Float[Tensor, "*batch V 3 H W"],
    cameras: Cameras,
    settings: RefineSettings = RefineSettings(),
    *,
    callback: Callable[[int, float], None] | None = None,
) -> Gaussians:
    """Fit Gaussians to posed views by gradient descent, starting from the given ones.

    Args:
        gaussians: ``[..., N]`` Gaussians (e.g. a reconstructor's prediction, pruned or not).
        images: ``[..., V, 3, H, W]`` target views in [0, 1], composited on ``settings.background``.
        cameras: ``[..., V]`` their cameras (rendered at the images' size).
        settings: :class:`RefineSettings`.
        callback: called after every step with ``(step, loss)`` (e.g. a progress bar).

    Returns:
        ``[..., N]`` refined Gaussians (detached, same dtype and device as the input, optimised in fp32;
        quaternions are returned normalised).

    Raises:
        ValueError: images, cameras and Gaussians disagree in batch shape or size.
    """
    batch = gaussians.shape[:-1]
    if images.ndim != len(batch) + 4 or images.shape[-3] != 3 or tuple(images.shape[:-4]) != tuple(batch):
        raise ValueError(f"images must be [..., V, 3, H, W] with the Gaussians' batch shape {tuple(batch)}, got {tuple(images.shape)}")
    if tuple(cameras.batch_shape) != tuple(images.shape[:-3]):
        raise ValueError(f"need one camera per image: images {tuple(images.shape)}, cameras {tuple(cameras.batch_shape)}")
    if settings.steps == 0 or gaussians.num == 0:
        return gaussians
    height, width = images.shape[-2:]
    dtype, device = gaussians.dtype, gaussians.device
    start = gaussians.detach().to(dtype=torch.float32)  # optimised in fp32 whatever the storage
    target = images.to(device=device, dtype=torch.float32)
    cameras = cameras.to(device)
    eps = 1e-6
    params = {
        "means": start.means.clone(),
        "scales": start.scales.clamp_min(eps).log(),
        "opacities": torch.logit(start.opacities.clamp(eps, 1 - eps)),
        "quats": F.normalize(start.quats, dim=-1),
        "sh": start.sh.clone(),
    }
    rates = {"means": settings.lr_means, "scales": settings.lr_scales, "opacities": settings.lr_opacities, "quats": settings.lr_quats, "sh": settings.lr_sh}
    for name in settings.params:  # the other kinds stay constants: no gradient, no optimiser state
        params[name].requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": [params[k]], "lr": rates[k]} for k in settings.params], eps=1e-15)
    gamma = math.exp(math.log(settings.final_lr_fraction) / max(settings.steps - 1, 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)

    def assemble() -> Gaussians:
        return Gaussians(params["means"], params["quats"], params["scales"].exp(), torch.sigmoid(params["opacities"]), params["sh"])

    with torch.enable_grad():
        for step in range(settings.steps):
            rendered = rasterize(assemble(), cameras, width, height, settings.background, backend=settings.backend).rgb
            loss = (1 - settings.ssim_weight) * F.l1_loss(rendered, target)
            if settings.ssim_weight > 0:
                loss = loss + settings.ssim_weight * (1 - ssim(rendered, target))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if callback is not None:
                callback(step + 1, float(loss.detach()))
    with torch.no_grad():
        params["quats"] = F.normalize(params["quats"], dim=-1)
        out = assemble().detach()
        frozen = {name: getattr(start, name) for name in REFINE_PARAMS if name not in settings.params}
        if frozen:  # exactly as given, not through the log / logit round trip
            out = Gaussians(**{name: frozen.get(name, getattr(out, name)) for name in REFINE_PARAMS})
        return out.to(dtype=dtype)
