"""``facelift demo`` and ``facelift render``: Gaussians to the standard result files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from facelift.cli.common import OutPath, resolve_device, turntable_and_cameras
from facelift.gaussians.io import load_gaussians
from facelift.gaussians.procedural import demo_bust
from facelift.pipeline.export import ExportSettings, check_output_dir, export_gaussians, staged_output_dir


@dataclass
class DemoCommand:
    """Render the built-in procedural bust: six views, PLY, .splat and a turntable video."""

    out: OutPath = Path("outputs/demo")
    """Output folder (created; must be empty unless --overwrite)."""
    resolution: int = 256
    """Size of the renders and video frames in pixels."""
    frames: int = 150
    """Turntable frames (0: no video)."""
    fps: int = 30
    """Turntable frame rate."""
    seed: int = 0
    """Picks the bust's colours and sample positions."""
    num_gaussians: int = 30_000
    """Gaussians sampled for the bust (before hidden-surface removal)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    overwrite: bool = False
    """Replace a non-empty output folder."""

    def run(self) -> int:
        if self.resolution < 8 or self.frames < 0 or self.fps < 1 or self.num_gaussians < 100:
            raise ValueError("need --resolution >= 8, --frames >= 0, --fps >= 1 and --num-gaussians >= 100")
        device = resolve_device(self.device)
        check_output_dir(self.out, overwrite=self.overwrite)  # fail before the work, not after
        gaussians = demo_bust(self.num_gaussians, seed=self.seed).to(device)
        return _export(gaussians, self.out, ExportSettings(self.resolution, self.frames, self.fps), self.overwrite)


@dataclass
class RenderCommand:
    """Render a Gaussian PLY file (standard 3DGS layout) or a .splat file to the standard result files."""

    ply: Annotated[Path, tyro.conf.Positional]
    """Input .ply file (3DGS layout, any SH degree) or .splat file (antimatter15 layout: colours only)."""
    out: OutPath = Path("outputs/render")
    """Output folder (created; must be empty unless --overwrite)."""
    resolution: int = 512
    """Size of the renders and video frames in pixels."""
    frames: int = 150
    """Turntable frames (0: no video)."""
    fps: int = 30
    """Turntable frame rate."""
    turntable_elevation: float = 0.0
    """Turntable elevation in degrees, in (-90, 90); > 0 looks down."""
    turntable_radius: float = 2.7
    """Turntable camera distance from the head's centre (the FaceLift views' 2.7)."""
    cameras: Path | None = None
    """Also render from your own cameras: an opencv_cameras.json (the reference layout: frames with w, h, fx, fy,
    cx, cy, w2c and optionally file_path; facelift's world frame, z up, the head facing -y). Written to
    OUT/cameras/ as RGBA PNGs at each camera's size, named after the file_path entries, with their
    opencv_cameras.json."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    overwrite: bool = False
    """Replace a non-empty output folder."""

    def run(self) -> int:
        if self.resolution < 8 or self.frames < 0 or self.fps < 1:
            raise ValueError("need --resolution >= 8, --frames >= 0 and --fps >= 1")
        device = resolve_device(self.device)
        check_output_dir(self.out, overwrite=self.overwrite)  # fail before loading, not after
        cameras, file_paths = turntable_and_cameras(self.turntable_elevation, self.turntable_radius, self.cameras)
        gaussians = load_gaussians(self.ply, device=device)
        if gaussians.num == 0:
            raise ValueError(f"{self.ply} holds no Gaussians")
        settings = ExportSettings(
            self.resolution, self.frames, self.fps, turntable_elevation_deg=self.turntable_elevation,
            turntable_radius=self.turntable_radius,
        )  # fmt: skip
        return _export(gaussians, self.out, settings, self.overwrite, cameras=cameras, camera_files=file_paths)


def _export(gaussians, out: Path, settings: ExportSettings, overwrite: bool, **extra) -> int:
    start = time.perf_counter()
    with staged_output_dir(out, overwrite=overwrite) as staging:
        summary = export_gaussians(staging, gaussians, settings, **extra)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps({"out": str(out), **summary}))
    return 0
