"""Shared CLI plumbing: device choice, logging, and turning expected failures into one-line errors."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Callable, NoReturn

import torch
import tyro

EXPECTED_ERRORS = (ValueError, OSError, ImportError, RuntimeError)

OutPath = Annotated[Path, tyro.conf.arg(aliases=["-o"])]
"""The type of every command's output option: ``--out PATH`` or ``-o PATH``."""


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; anything else must name a usable device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from err
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) are present")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev


MAX_CAMERA_SIZE = 8192
"""The largest image side ``--cameras`` may ask for (a typo of a few zeros should not exhaust the memory)."""


def turntable_and_cameras(elevation: float, radius: float, cameras: Path | None):
    """Check ``--turntable-elevation``/``--turntable-radius`` and read ``--cameras`` (an opencv_cameras.json)
    before any work; returns ``(cameras [C] or None, their file_path entries or None)``."""
    from facelift.pipeline.export import check_turntable

    try:
        check_turntable(elevation, radius)
    except ValueError as err:
        raise ValueError(f"--turntable-elevation / --turntable-radius: {err}") from None
    if cameras is None:
        return None, None
    if not Path(cameras).is_file():
        raise FileNotFoundError(f"camera file not found: {cameras}")
    from facelift.cameras.io import read_opencv_cameras

    cams, file_paths, _ = read_opencv_cameras(cameras)
    if max(cams.width, cams.height) > MAX_CAMERA_SIZE:
        raise ValueError(f"{cameras}: images of {cams.width}x{cams.height} px are larger than {MAX_CAMERA_SIZE} px a side")
    return cams, file_paths


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"facelift: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def run_command(fn: Callable[[], int | None]) -> int:
    """Run a command body; expected failures become ``facelift: error: ...`` and exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(fn() or 0)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (facelift eval --compare ... | head): not an error of ours
        sys.stderr.close()
        return 0
    except EXPECTED_ERRORS as err:
        fail(str(err) or type(err).__name__)
