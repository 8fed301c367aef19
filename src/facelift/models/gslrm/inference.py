"""Convenience inference: posed views in, (optionally pruned) Gaussians out."""

from __future__ import annotations

import contextlib

import torch
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.gaussians.container import Gaussians
from facelift.gaussians.ops import reference_prune
from facelift.models.gslrm.model import GSLRM

__all__ = ["reconstruct"]


def reconstruct(
    model: GSLRM,
    images: Float[Tensor, "*batch V 3 H W"],
    cameras: Cameras,
    *,
    prune: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> Gaussians | list[Gaussians]:
    """Run the reconstructor without gradients; optionally apply the reference release's pruning.

    Inputs are moved to the model's device. The model's train/eval mode is left as it is (it has no
    dropout or normalisation statistics, so the two agree).

    Args:
        model: a :class:`GSLRM`.
        images: ``[B, V, 3, H, W]`` (or one scene ``[V, 3, H, W]``) RGB in [0, 1].
        cameras: ``[B, V]`` (or ``[V]``) cameras of size ``W`` x ``H``.
        prune: keep only the Gaussians that pass :func:`facelift.gaussians.reference_prune`
            (opacity, size, floater and crop filters), scene by scene.
        autocast_dtype: run the network under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``
            on CUDA); the Gaussians are activated in fp32 either way.

    Returns:
        Batched input: ``Gaussians [B, N]`` without pruning, else a list of ``B`` pruned sets ``[N_i]``
        (counts differ). One scene: a single ``Gaussians [N]`` (``[M]`` when pruned).

    Example:
        >>> from facelift.cameras import facelift_views
        >>> from facelift.models.gslrm import GSLRMConfig
        >>> g = reconstruct(GSLRM(GSLRMConfig.tiny()), torch.rand(6, 3, 16, 16), facelift_views(resolution=16))
        >>> g.shape
        torch.Size([1538])
    """
    unbatched = images.ndim == 4
    if unbatched:
        images = images[None]
        cameras = cameras.reshape(1, *cameras.batch_shape)
    param = next(model.parameters())
    images, cameras = images.to(param.device), cameras.to(param.device)
    autocast = (
        torch.autocast(param.device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    with torch.no_grad(), autocast:
        gaussians = model(images, cameras)
    if not prune:
        return gaussians[0] if unbatched else gaussians
    pruned = [reference_prune(gaussians[b]) for b in range(gaussians.shape[0])]
    return pruned[0] if unbatched else pruned
