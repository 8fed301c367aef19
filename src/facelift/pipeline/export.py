"""Writing a result folder: six-view renders, PLY, .splat, turntable video, cameras.

A result folder appears complete or not at all: everything is written into a hidden staging folder
beside the target, which is renamed into place at the end.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
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

__all__ = ["ExportSettings", "ResultSettings", "check_output_dir", "export_gaussians", "export_result", "staged_output_dir"]

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


@dataclass(frozen=True)
class ResultSettings:
    """What :func:`export_result` writes besides the always-written files."""

    resolution: int = 512
    """Size of the six renders and the turntable frames, in pixels."""
    turntable_frames: int = 150
    """Turntable frames (the reference: 150 at 30 fps); 0 skips the video."""
    fps: int = 30
    """Turntable frame rate."""
    mesh_format: str = "glb"
    """``glb``, ``obj``, ``ply`` or ``none``."""
    mesh_resolution: int = 160
    """Voxels along the longest side for the mesh's opacity field."""

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.turntable_frames < 0 or self.fps < 1 or self.mesh_resolution < 8:
            raise ValueError("need resolution >= 8, turntable_frames >= 0, fps >= 1 and mesh_resolution >= 8")
        if self.mesh_format not in ("glb", "obj", "ply", "none"):
            raise ValueError(f"mesh_format must be glb, obj, ply or none, got {self.mesh_format!r}")


@torch.no_grad()
def export_result(
    out_dir: str | os.PathLike,
    result,
    settings: ResultSettings = ResultSettings(),
    *,
    info: dict | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Write everything a photo produced into an existing (staging) folder.

    Files: ``input.png`` (the preprocessed input), ``multiview.png`` (the generated views side by side),
    ``views/<i>_<name>.png`` + ``views/opencv_cameras.json`` (generated views and their cameras),
    ``renders/<i>_<name>.png`` + ``renders/opencv_cameras.json`` (the Gaussians rendered at the six reference
    cameras), ``gaussians.ply`` (3DGS layout, SH padded to degree 3), ``gaussians.splat``, ``turntable.mp4``,
    ``mesh.glb`` (or ``.obj``/``.ply``), ``timings.json`` and ``result.json``.

    Args:
        out_dir: the folder (exists, normally a staging folder of :func:`staged_output_dir`).
        result: a :class:`facelift.pipeline.facelift.FaceLiftResult`.
        settings: render, video and mesh settings.
        info: extra fields for ``result.json`` (source file, seed, weights, ...).
        on_stage: called with ``"rendering"`` and then ``"export"`` as each part starts (for profilers such
            as ``facelift bench``).

    Returns:
        The ``result.json`` content.
    """
    import time

    from facelift.pipeline.mesh import MeshSettings, gaussians_to_mesh, save_mesh

    out = Path(out_dir)
    timings = dict(result.timings)
    notify = on_stage or (lambda name: None)
    notify("rendering")
    start = time.perf_counter()
    save_image(out / "input.png", result.input.image)
    save_image(out / "multiview.png", image_grid(result.views))
    views = out / "views"
    views.mkdir(exist_ok=True)
    names = [f"{i:03d}_{name}.png" for i, name in enumerate(result.view_names)]
    for name, img in zip(names, result.views):
        save_image(views / name, img)
    write_opencv_cameras(views / "opencv_cameras.json", result.cameras.to("cpu"), file_paths=names, id="generated_views")
    gaussians = result.gaussians
    if gaussians.num == 0:
        raise ValueError("the reconstruction kept no Gaussians after pruning")
    cams = facelift_views(resolution=settings.resolution, device=gaussians.device, dtype=gaussians.dtype)
    renders = rasterize(gaussians, cams).rgb  # [6, 3, H, W]
    (out / "renders").mkdir(exist_ok=True)
    render_names = [f"{i:03d}_{name}.png" for i, name in enumerate(FACELIFT_VIEW_NAMES)]
    for name, img in zip(render_names, renders):
        save_image(out / "renders" / name, img)
    write_opencv_cameras(out / "renders" / "opencv_cameras.json", cams.to("cpu"), file_paths=render_names, id="facelift_views")
    if settings.turntable_frames > 0:
        frames = render_turntable(gaussians, settings.turntable_frames, settings.resolution)
        write_video(out / "turntable.mp4", frames, fps=settings.fps)
    timings["rendering"] = time.perf_counter() - start
    notify("export")
    start = time.perf_counter()
    save_ply(out / "gaussians.ply", gaussians, sh_degree=3)
    save_splat(out / "gaussians.splat", gaussians)
    mesh_file, notes = None, list(result.input.notes)
    if settings.mesh_format != "none":
        try:
            mesh = gaussians_to_mesh(gaussians, MeshSettings(resolution=settings.mesh_resolution))
        except ValueError as err:  # nothing solid enough to mesh: the rest of the result still stands
            notes.append(f"no mesh written: {err}")
            logger.warning("no mesh written: %s", err)
        else:
            mesh_file = f"mesh.{settings.mesh_format}"
            save_mesh(out / mesh_file, mesh)
    timings["export"] = time.perf_counter() - start
    timings = {k: round(v, 3) for k, v in timings.items()}
    atomic_write_text(out / "timings.json", json.dumps(timings, indent=2) + "\n")
    pre = result.input
    summary = {
        **(info or {}),
        "input_azimuth_deg": round(float(pre.azimuth_deg), 2),
        "face_box": [round(v, 1) for v in pre.face.box] if pre.face is not None else None,
        "faces_found": pre.num_faces,
        "notes": notes,
        "view_names": list(result.view_names),
        "num_gaussians": gaussians.num,
        "mesh": mesh_file,
        "turntable": "turntable.mp4" if settings.turntable_frames > 0 else None,
        "timings": timings,
    }  # fmt: skip
    atomic_write_text(out / "result.json", json.dumps(summary, indent=2) + "\n")
    return summary
