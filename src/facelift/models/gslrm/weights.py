"""State-dict plumbing for GS-LRM: the official-checkpoint filter and strict, named key checks."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

__all__ = [
    "OFFICIAL_IGNORED_PREFIXES",
    "remap_official_state_dict",
    "check_state_dict",
    "read_official_checkpoint",
]

logger = logging.getLogger(__name__)

OFFICIAL_IGNORED_PREFIXES = ("loss_calculator.",)
"""Keys of the authors' ``"model"`` dict that are not part of the reconstructor (the frozen VGG19 of
their perceptual loss)."""

_MAX_LISTED = 40


def remap_official_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The authors' ``"model"`` state dict as this implementation's ``GSLRM`` state dict.

    Their module names already equal ours, so the only change is dropping the keys under
    :data:`OFFICIAL_IGNORED_PREFIXES` (``loss_calculator.*``, the frozen perceptual-loss network). Nothing
    else is renamed or dropped, so a foreign key still fails the strict load that follows.

    Args:
        state_dict: the ``"model"`` entry of the authors' checkpoint.

    Returns:
        A new dict (tensors shared, not copied).

    Example:
        >>> sd = {"input_layer_norm.weight": torch.ones(4), "loss_calculator.vgg.0.weight": torch.ones(1)}
        >>> list(remap_official_state_dict(sd))
        ['input_layer_norm.weight']
    """
    return {k: v for k, v in state_dict.items() if not k.startswith(OFFICIAL_IGNORED_PREFIXES)}


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def check_state_dict(
    state_dict: Mapping[str, Tensor],
    expected_shapes: Mapping[str, tuple[int, ...] | torch.Size],
    *,
    source: str = "state dict",
) -> None:
    """Raise a ``ValueError`` naming every missing key, unexpected key and shape mismatch.

    Args:
        state_dict: tensors to load.
        expected_shapes: the model's key -> shape.
        source: what ``state_dict`` came from, for the message (a path, "checkpoint").

    Raises:
        ValueError: if the keys or shapes differ in any way.

    Example:
        >>> check_state_dict({"a": torch.zeros(2)}, {"a": (2,)})
        >>> check_state_dict({"b": torch.zeros(2)}, {"a": (2,)})
        Traceback (most recent call last):
        ...
        ValueError: state dict does not match the model: missing keys [a]; unexpected keys [b]
    """
    missing = sorted(set(expected_shapes) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected_shapes))
    mismatched = sorted(
        f"{k}: {tuple(state_dict[k].shape)} vs model {tuple(expected_shapes[k])}"
        for k in set(state_dict) & set(expected_shapes)
        if tuple(state_dict[k].shape) != tuple(expected_shapes[k])
    )
    problems = []
    if missing:
        problems.append(f"missing keys [{_listing(missing)}]")
    if unexpected:
        problems.append(f"unexpected keys [{_listing(unexpected)}]")
    if mismatched:
        problems.append(f"shape mismatches [{_listing(mismatched)}]")
    if problems:
        raise ValueError(f"{source} does not match the model: " + "; ".join(problems))


def read_official_checkpoint(path: str | os.PathLike, *, weights_only: bool = True) -> dict[str, Tensor]:
    """Read the reconstructor weights out of the authors' training checkpoint (a torch pickle).

    The file holds ``{"model", "optimizer", "lr_scheduler", "fwdbwd_pass_step", "param_update_step"}``;
    only ``"model"`` is kept, filtered by :func:`remap_official_state_dict`. A bare state dict (the
    ``"model"`` entry saved on its own) is accepted too. Zip-format files are memory-mapped, so the
    optimizer state is never read into memory.

    Args:
        path: the ``.pt`` file.
        weights_only: unpickle with ``torch.load(..., weights_only=True)`` (tensors and plain containers
            only). Pass ``False`` only for a file you trust: a pickle can run arbitrary code.

    Returns:
        The filtered state dict, tensors on the CPU (memory-mapped when possible).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file holds no state dict.

    Example:
        >>> sd = read_official_checkpoint("ckpt_0000000000021125.pt")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not weights_only:
        logger.warning("unpickling %s with weights_only=False: only do this for files you trust", path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only, mmap=zipfile.is_zipfile(path))
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    if "model" in checkpoint:
        state_dict = checkpoint["model"]
    elif checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
        state_dict = checkpoint
    else:
        raise ValueError(f"{path} has no 'model' entry; its top-level keys are {sorted(map(str, checkpoint))}")
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise ValueError(f"the 'model' entry of {path} is not a state dict of tensors")
    return remap_official_state_dict(state_dict)
