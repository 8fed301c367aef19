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

__all__ = ["ExportSettings", "check_output_dir", "staged_output_dir", "export_gaussians"]

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


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check that ``path`` can become a result folder, before any work is done; returns it made absolute.

    Raises:
        FileExistsError: ``path`` is a file, or a non-empty folder and ``overwrite`` is False.
        FileExistsError / PermissionError: the nearest existing parent is a file or not writable
            (missing parent folders are created when the output is written).
        ValueError: ``path`` is the file-system root, or an existing folder holding the working folder.

    Example:
        >>> check_output_dir("/tmp/facelift-result").name  # doctest: +SKIP
        'facelift-result'
    """
    # abspath (not resolve): "." and "a/.." become real names, and a symlinked target stays a symlink.
    path = Path(os.path.abspath(path))
    if not path.name:
        raise ValueError(f"cannot use {path} as an output folder")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"output {path} exists and is not a folder")
    if path.is_dir():
        if not overwrite and any(path.iterdir()):
            raise FileExistsError(f"output folder {path} is not empty (pass --overwrite to replace it)")
        cwd = Path(os.path.abspath(os.getcwd()))
        if cwd == path or path in cwd.parents:
            raise ValueError(f"refusing to replace {path}: it holds the current working folder")
    # Missing parent folders are created (like mkdir -p); the nearest existing one must be a writable folder.
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise FileExistsError(f"cannot create {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot create {path}: folder {parent} is not writable")
    return path


@contextlib.contextmanager
def staged_output_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder that becomes ``path`` when the block succeeds.

    The staging folder is a hidden sibling of ``path``; on any exception it is removed and ``path`` is left
    as it was. With ``overwrite``, an existing folder is replaced only once the new one is complete.

    Raises:
        FileExistsError: when ``path`` is a file, or a non-empty folder and ``overwrite`` is False.
        FileExistsError / PermissionError: when the nearest existing parent is a file or not writable.
        Missing parent folders are created, and removed again if the block fails.
        ValueError: when ``path`` is the file-system root, or an existing folder holding the working folder.

    Example:
        >>> with staged_output_dir("/tmp/facelift-result", overwrite=True) as tmp:  # doctest: +SKIP
        ...     (tmp / "a.txt").write_text("done")
    """
    path = check_output_dir(path, overwrite=overwrite)
    parent = path.parent
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield staging
        os.chmod(staging, default_mode(directory=True))  # mkdtemp makes it 0700
        if not path.exists():
            os.replace(staging, path)
            return
        # Move the old folder aside first (a rename cannot replace a non-empty folder), and put it back if
        # the new one cannot take its place.
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
        try:
            os.replace(path, old / "previous")
        except BaseException:
            shutil.rmtree(old, ignore_errors=True)
            raise
        try:
            os.replace(staging, path)
        except BaseException:
            os.replace(old / "previous", path)
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders this module created (deepest first) if they are still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


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
