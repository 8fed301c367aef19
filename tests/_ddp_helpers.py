"""Helpers for the two-process DDP trainer tests: a free port, rank environment, replica hashing."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_job(rank: int, world: int, port: int) -> None:
    """Set the torchrun environment of ``rank`` in a spawned process (one torch thread)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def capture_builds(module, name: str) -> dict:
    """Wrap ``module.name`` (a model builder) so the built model is kept in the returned dict's ``model``."""
    captured: dict = {}
    real: Callable = getattr(module, name)

    def build(*args, **kwargs):
        captured["model"] = real(*args, **kwargs)
        return captured["model"]

    setattr(module, name, build)
    return captured


def write_replica_hash(model: torch.nn.Module, out_dir: str, rank: int) -> None:
    """Hash a rank's in-memory replica (not the weights file rank 0 writes) into ``out_dir/rank{rank}.sha``."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().numpy().tobytes())
    (Path(out_dir) / f"rank{rank}.sha").write_text(digest.hexdigest())
