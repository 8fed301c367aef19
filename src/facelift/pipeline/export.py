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

from facelift.cameras.cameras import Cameras
from facelift.cameras.io import write_opencv_cameras
from facelift.cameras.orbits import FACELIFT_VIEW_NAMES, REFERENCE_RADIUS, facelift_views
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

__all__ = [
    "ExportSettings", "ResultSettings", "check_output_dir", "export_gaussians", "export_result", "render_cameras",
    "staged_output_dir",
]  # fmt: skip

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
    turntable_elevation_deg: float = 0.0
    """Turntable elevation in degrees, in (-90, 90); > 0 looks down (the reference: 0)."""
    turntable_radius: float = REFERENCE_RADIUS
    """Turntable camera distance from the origin (the reference: 2.7)."""

    def __post_init__(self) -> None:
        if self.resolution < 1 or self.turntable_frames < 0 or self.fps <= 0 or self.ply_sh_degree < 0:
            raise ValueError(
                "ExportSettings needs resolution >= 1, turntable_frames >= 0, fps > 0 and ply_sh_degree >= 0, "
                f"got {self.resolution}, {self.turntable_frames}, {self.fps} and {self.ply_sh_degree}"
            )
        check_turntable(self.turntable_elevation_deg, self.turntable_radius)


def check_turntable(elevation_deg: float, radius: float) -> None:
    """The turntable's rule (elevation in (-90, 90) degrees, radius > 0): raises ``ValueError`` otherwise."""
    if not (-90.0 < elevation_deg < 90.0 and radius > 0.0):
        raise ValueError(f"need a turntable elevation in (-90, 90) degrees and a radius > 0, got {elevation_deg} and {radius}")


@torch.no_grad()
def export_gaussians(
    out_dir: str | os.PathLike,
    gaussians: Gaussians,
    settings: ExportSettings = ExportSettings(),
    *,
    cameras: Cameras | None = None,
    camera_files: list[str] | None = None,
    backend: Backend = "auto",
) -> dict[str, float | int | str]:
    """Write the standard result files for an unbatched set of Gaussians into an existing folder.

    Files: ``gaussians.ply`` (3DGS layout), ``gaussians.splat``, ``multiview.png`` (six reference views side
    by side), ``views/<index>_<name>.png``, ``views/opencv_cameras.json`` and ``turntable.mp4``; with
    ``cameras``, also ``cameras/`` (:func:`render_cameras`).

    Args:
        cameras: ``[C]`` extra cameras to render from (at their own image size), e.g. from
            :func:`facelift.cameras.read_opencv_cameras`.
        camera_files: their ``file_path`` entries, used to name the images (see :func:`render_cameras`).

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
        frames = render_turntable(
            gaussians, settings.turntable_frames, settings.resolution, radius=settings.turntable_radius,
            elevation_deg=settings.turntable_elevation_deg, backend=backend,
        )  # fmt: skip
        write_video(out / "turntable.mp4", frames, fps=settings.fps)
        files.append("turntable.mp4")
    if cameras is not None:
        render_cameras(out / "cameras", gaussians, cameras, camera_files, backend=backend)
        files.append("cameras/")
    summary = {"num_gaussians": gaussians.num, "resolution": settings.resolution, "files": ", ".join(files)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def camera_image_names(file_paths: list[str] | None, count: int) -> list[str]:
    """PNG names for ``count`` rendered cameras: the ``file_path`` entries' base names (``images/cam_003.jpg`` ->
    ``cam_003.png``) when every camera has one and they are distinct, else ``000.png``, ``001.png``, ..."""
    if file_paths is not None and len(file_paths) == count and all(file_paths):
        names = [Path(p).with_suffix(".png").name for p in file_paths]
        if len(set(names)) == count:
            return names
    return [f"{i:03d}.png" for i in range(count)]


@torch.no_grad()
def render_cameras(
    out_dir: str | os.PathLike,
    gaussians: Gaussians,
    cameras: Cameras,
    file_paths: list[str] | None = None,
    *,
    chunk: int = 8,
    backend: Backend = "auto",
) -> list[str]:
    """Render an unbatched set of Gaussians from any cameras into ``out_dir`` (created): one RGBA PNG per camera
    (straight alpha: colour divided by the accumulated opacity, so it composites onto any background) and an
    ``opencv_cameras.json`` naming them, the reference layout (it loads back with
    :func:`facelift.cameras.read_opencv_cameras`).

    Args:
        gaussians: ``[N]`` Gaussians.
        cameras: ``[C]`` cameras, rendered at their own ``width x height``.
        file_paths: names to follow (see :func:`camera_image_names`).
        chunk: cameras per rasteriser call (bounds memory).

    Returns:
        The image names, in camera order.
    """
    if len(gaussians.shape) != 1 or len(cameras.batch_shape) != 1:
        raise ValueError(
            f"render_cameras takes Gaussians [N] and cameras [C], got {tuple(gaussians.shape)} and {tuple(cameras.batch_shape)}"
        )
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    count = cameras.batch_shape[0]
    names = camera_image_names(file_paths, count)
    cams = cameras.to(device=gaussians.device, dtype=gaussians.dtype)
    for start in range(0, count, chunk):
        rendered = rasterize(gaussians, cams[start : start + chunk], background=None, backend=backend)
        rgb = (rendered.rgb / rendered.alpha.clamp_min(1e-6)).clamp(0, 1)  # black background: premultiplied
        for name, image in zip(names[start : start + chunk], torch.cat([rgb, rendered.alpha.clamp(0, 1)], 1)):
            save_image(out / name, image)
    write_opencv_cameras(out / "opencv_cameras.json", cameras.to("cpu"), file_paths=names, id="custom_cameras")
    return names


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
    turntable_elevation_deg: float = 0.0
    """Turntable elevation in degrees, in (-90, 90); > 0 looks down (the reference: 0)."""
    turntable_radius: float = REFERENCE_RADIUS
    """Turntable camera distance from the origin (the reference: 2.7)."""

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.turntable_frames < 0 or self.fps < 1 or self.mesh_resolution < 8:
            raise ValueError("need resolution >= 8, turntable_frames >= 0, fps >= 1 and mesh_resolution >= 8")
        check_turntable(self.turntable_elevation_deg, self.turntable_radius)
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
    cameras: Cameras | None = None,
    camera_files: list[str] | None = None,
) -> dict:
    """Write everything a photo produced into an existing (staging) folder.

    Files: ``input.png`` (the preprocessed input), ``multiview.png`` (the generated views side by side),
    ``views/<i>_<name>.png`` + ``views/opencv_cameras.json`` (generated views and their cameras),
    ``renders/<i>_<name>.png`` + ``renders/opencv_cameras.json`` (the Gaussians rendered at the six reference
    cameras), ``gaussians.ply`` (3DGS layout, SH padded to degree 3), ``gaussians.splat``, ``turntable.mp4``,
    ``mesh.glb`` (or ``.obj``/``.ply``), ``timings.json`` and ``result.json``; with ``cameras``, also ``cameras/``.

    Args:
        out_dir: the folder (exists, normally a staging folder of :func:`staged_output_dir`).
        result: a :class:`facelift.pipeline.facelift.FaceLiftResult`.
        settings: render, video and mesh settings.
        info: extra fields for ``result.json`` (source file, seed, weights, ...).
        on_stage: called with ``"rendering"`` and then ``"export"`` as each part starts (for profilers such
            as ``facelift bench``).
        cameras: ``[C]`` extra cameras to render the Gaussians from into ``cameras/`` (:func:`render_cameras`).
        camera_files: their ``file_path`` entries, used to name the images.

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
        frames = render_turntable(
            gaussians, settings.turntable_frames, settings.resolution, radius=settings.turntable_radius,
            elevation_deg=settings.turntable_elevation_deg,
        )  # fmt: skip
        write_video(out / "turntable.mp4", frames, fps=settings.fps)
    if cameras is not None:
        render_cameras(out / "cameras", gaussians, cameras, camera_files)
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
