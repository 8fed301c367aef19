"""Writing a result folder: six-view renders, PLY, .splat, turntable video, cameras.

A result folder appears complete or not at all: everything is written into a hidden staging folder
beside the target, which is renamed into place at the end.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from facelift.cameras.io import write_opencv_cameras
from facelift.cameras.orbits import FACELIFT_VIEW_NAMES, facelift_views
from facelift.gaussians.container import Gaussians
from facelift.gaussians.io import save_ply, save_splat
from facelift.rendering.media import (
    image_grid,
    render_turntable,
    save_image,
    write_video,
)
from facelift.rendering.rasterize import Backend, rasterize
from facelift.utils.io import atomic_write_text, check_output_dir, staged_output_dir

__all__ = ["ExportSettings", "check_output_dir", "export_gaussians", "staged_output_dir"]

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

    def __post_init__(self) -> None:
        if self.resolution < 1 or self.turntable_frames < 0 or self.fps <= 0 or self.ply_sh_degree < 0:
            raise ValueError(
                "ExportSettings needs resolution >= 1, turntable_frames >= 0, fps > 0 and ply_sh_degree >= 0, "
                f"got {self.resolution}, {self.turntable_frames}, {self.fps} and {self.ply_sh_degree}"
            )


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
    views.mkdir(exist_ok=True)
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
