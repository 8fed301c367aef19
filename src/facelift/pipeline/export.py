"""Writing a result folder: six-view renders, PLY, .splat, turntable video, cameras.

A result folder appears complete or not at all: everything is written into a hidden staging folder
beside the target, which is renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from facelift.cameras.io import write_opencv_cameras
from facelift.cameras.orbits import FACELIFT_VIEW_NAMES, facelift_views
from facelift.gaussians.container import Gaussians
from facelift.gaussians.io import save_ply, save_splat
from facelift.rendering.media import image_grid, render_turntable, save_image, write_video
from facelift.rendering.rasterize import Backend, rasterize
from facelift.utils.io import atomic_write_text, default_mode

__all__ = ["ExportSettings", "staged_output_dir", "export_gaussians"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportSettings:
    """What :func:`export_gaussians` writes."""

    resolution: int = 512
    """Size of the six renders and the turntable frames, in pixels."""
    turntable_frames: int = 150
    """Frames in the turntable (the reference: 150); 0 skips the video."""
    fps: int = 30
    """Turntable frame rate (the reference: 30)."""
    ply_sh_degree: int = 3
    """SH degree of the PLY file; the reference pads f_rest to degree 3."""


@contextlib.contextmanager
def staged_output_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder that becomes ``path`` when the block succeeds.

    Raises:
        FileExistsError: when ``path`` exists, is not empty and ``overwrite`` is False.
        FileNotFoundError / PermissionError: when the parent folder is missing or not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"output {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {path} is not empty (pass --overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot create {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot create {path}: folder {parent} is not writable")
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    try:
        yield staging
        os.chmod(staging, default_mode(directory=True))
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / "previous")
        os.replace(staging, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@torch.no_grad()
def export_gaussians(
    out_dir: str | os.PathLike,
    gaussians: Gaussians,
    settings: ExportSettings = ExportSettings(),
    *,
    backend: Backend = "auto",
) -> dict[str, float | int | str]:
    """Write the standard result files for an unbatched set of Gaussians into an existing folder.

    Files: ``gaussians.ply`` (3DGS layout), ``gaussians.splat``, ``multiview.png`` (six reference views side
    by side), ``views/<index>_<name>.png``, ``views/opencv_cameras.json`` and ``turntable.mp4``.

    Returns:
        A summary (number of Gaussians, files written).
    """
    out = Path(out_dir)
    if len(gaussians.shape) != 1:
        raise ValueError(f"export_gaussians takes one set of Gaussians [N], got {tuple(gaussians.shape)}")
    save_ply(out / "gaussians.ply", gaussians, sh_degree=settings.ply_sh_degree)
    save_splat(out / "gaussians.splat", gaussians)
    cams = facelift_views(resolution=settings.resolution, device=gaussians.device, dtype=gaussians.dtype)
    renders = rasterize(gaussians, cams, backend=backend).rgb  # [6, 3, H, W]
    save_image(out / "multiview.png", image_grid(renders))
    views = out / "views"
    views.mkdir()
    names = []
    for i, (name, img) in enumerate(zip(FACELIFT_VIEW_NAMES, renders)):
        names.append(f"{i:03d}_{name}.png")
        save_image(views / names[-1], img)
    write_opencv_cameras(views / "opencv_cameras.json", cams.to("cpu"), file_paths=names, id="facelift_views")
    files = ["gaussians.ply", "gaussians.splat", "multiview.png", "views/"]
    if settings.turntable_frames > 0:
        frames = render_turntable(gaussians, settings.turntable_frames, settings.resolution, backend=backend)
        write_video(out / "turntable.mp4", frames, fps=settings.fps)
        files.append("turntable.mp4")
    summary = {"num_gaussians": gaussians.num, "resolution": settings.resolution, "files": ", ".join(files)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
