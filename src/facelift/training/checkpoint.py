"""Atomic, resumable training checkpoints: model, optimiser, scheduler, step and every RNG state in one file."""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facelift.utils.io import atomic_path

__all__ = ["checkpoint_name", "latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d+)\.pt$")
FORMAT_VERSION = 1


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint after ``step`` updates, ``step_00001234.pt`` (sorts by step)."""
    return f"step_{int(step):08d}.pt"


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def rng_state() -> dict[str, Any]:
    """The global RNG states: torch CPU, every CUDA device (if initialised), Python ``random`` and NumPy."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where the device count matches)."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            logger.warning("checkpoint holds %d CUDA RNG states but %d devices are visible; not restored", len(cuda), torch.cuda.device_count())


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    step: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a resumable checkpoint atomically (a reader never sees a half-written file).

    Holds ``model`` (DDP wrappers unwrapped), ``optimizer``, ``scheduler`` (``state_dict()`` of each),
    ``step``, ``rng`` (:func:`rng_state`) and ``extra`` (anything picklable by ``torch.save`` with
    ``weights_only`` loading: tensors, numbers, strings, lists, dicts).

    Args:
        path: the file; its folder must exist.
        model, optimizer, scheduler: training state (optimizer/scheduler may be None).
        step: completed optimiser steps.
        extra: additional state (config, data position, ...).

    Returns:
        ``path``.

    Example:
        >>> save_checkpoint("run/step_00000010.pt", model=model, optimizer=opt, scheduler=sched, step=10)  # doctest: +SKIP
    """
    path = Path(path)
    payload = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    restore_rng: bool = True,
    map_location: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` into the given objects (strictly).

    Args:
        path: the checkpoint file.
        model, optimizer, scheduler: objects to restore into (each optional).
        restore_rng: also restore the global RNG states.
        map_location: where tensors are loaded before being copied into the objects.

    Returns:
        The raw payload (``step``, ``extra``, ...).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a facelift training checkpoint.

    Example:
        >>> state = load_checkpoint(latest_checkpoint("run"), model=model, optimizer=opt)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    # weights_only=False: RNG states hold numpy arrays and tuples; only load checkpoints you wrote.
    payload = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a facelift training checkpoint (format version {FORMAT_VERSION})")
    if model is not None:
        _unwrap(model).load_state_dict(payload["model"], strict=True)
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise ValueError(f"{path} holds no optimizer state")
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        if payload["scheduler"] is None:
            raise ValueError(f"{path} holds no scheduler state")
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        set_rng_state(payload["rng"])
    return payload


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The ``step_*.pt`` file with the highest step in ``directory``, or None (also when it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return max(found)[1] if found else None
