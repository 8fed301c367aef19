"""``facelift reconstruct IMG|DIR|GLOB ... -o OUT``: photos to 3D heads, one result folder per photo."""

from __future__ import annotations

import glob
import json
import logging
import sys
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from facelift.cli.common import OutPath, resolve_device, turntable_and_cameras

logger = logging.getLogger(__name__)

SAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.png"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> the list of inputs, in order, without repeats.

    A name that matches nothing is kept, so that it is reported as a failed input.
    """
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif not path.exists() and glob.has_magic(item):
            found += sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        else:
            found.append(path)
    seen, unique = set(), []
    for p in found:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def _result_dirs(inputs: list[Path], out: Path) -> list[Path]:
    """One input writes into OUT itself; several write into OUT/<stem> (with a suffix for repeated stems)."""
    if len(inputs) == 1:
        return [out]
    used: dict[str, int] = {}
    dirs = []
    for p in inputs:
        stem = p.stem or "image"
        n = used.get(stem, 0)
        used[stem] = n + 1
        dirs.append(out / (stem if n == 0 else f"{stem}_{n}"))
    return dirs


@dataclass
class ReconstructCommand:
    """Photo(s) to 3D Gaussian heads: input.png, multiview.png, views/, renders/, gaussians.ply/.splat,
    turntable.mp4, mesh.glb, timings.json and result.json per photo. Several inputs (files, folders, globs)
    run as a batch that continues past failures and exits non-zero if any failed."""

    inputs: Annotated[list[str], tyro.conf.Positional] = dataclasses.field(default_factory=list)
    """Image files, folders of images, or glob patterns (quoted)."""
    sample: bool = False
    """Also reconstruct the bundled sample photo (scikit-image's astronaut, NASA, public domain)."""
    out: OutPath = Path("outputs/reconstruct")
    """Output folder (one input) or parent of one folder per input."""
    weights: str = "default"
    """default, a weights folder, or official:GSLRM_CKPT,DIFFUSION_FOLDER (the authors' released files)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    seed: int = 0
    """Diffusion seed (the same seed gives the same result)."""
    steps: int = 50
    """Denoising steps (the reference: 50 DDIM steps; about 20 with dpmsolver++)."""
    guidance: float = 3.0
    """Classifier-free guidance scale (the reference: 3.0)."""
    solver: Literal["ddim", "dpmsolver++"] = "ddim"
    """Sampler: ddim (the reference) or dpmsolver++ (faster at fewer steps)."""
    refine_steps: int = 0
    """Test-time refinement: fit the Gaussians to the generated views by gradient descent for this many steps
    after the reconstructor (0: none; the default weights: about 0.4 s per step on one CPU thread)."""
    fit_input_steps: int | None = None
    """Then fit the Gaussians to the photo itself, at its camera, for this many steps (0: none; default: the
    weights' own setting, 50 for the bundled weights, about 2 s at two CPU threads)."""
    fit_input_params: str | None = None
    """Which Gaussian parameters that fit moves: all, appearance (opacities and colours, the geometry frozen),
    colour, or a comma list of means, scales, opacities, quats, sh (default: the weights' own setting, appearance
    for the bundled weights)."""
    num_samples: int | None = None
    """Diffusion samples per photo (seeds derived from --seed), each reconstructed and the Gaussians averaged;
    each costs one more diffusion run (default: the weights' own setting, 2 for the bundled weights)."""
    crop: bool = True
    """Detect the face and centre it like the reference (--no-crop for already-prepared inputs)."""
    matting: bool = True
    """Remove the background (RGBA inputs keep their alpha)."""
    yaw: bool = True
    """Estimate the head's yaw and use it as the input azimuth (--no-yaw: azimuth 0, as the reference)."""
    resolution: int | None = None
    """Size of the renders and turntable frames (default: twice the model's view size, at most 512; the
    reference: 512)."""
    frames: int = 150
    """Turntable frames (0: no video)."""
    turntable_elevation: float = 0.0
    """Turntable elevation in degrees, in (-90, 90); > 0 looks down."""
    turntable_radius: float = 2.7
    """Turntable camera distance from the head's centre (the FaceLift views' 2.7)."""
    cameras: Path | None = None
    """Also render each result from your own cameras: an opencv_cameras.json (facelift's world frame, z up, the
    head facing -y), written to cameras/ as RGBA PNGs named after its file_path entries."""
    mesh_format: Literal["glb", "obj", "ply", "none"] = "glb"
    """Mesh file format (none: no mesh)."""
    overwrite: bool = False
    """Replace existing result folders."""
    json: bool = False
    """Print one JSON line per input to stdout."""
    progress: bool = True
    """Show a progress bar over the inputs."""

    def run(self) -> int:
        from facelift.pipeline.export import (
            ResultSettings,
            check_output_dir,
            export_result,
            staged_output_dir,
        )
        from facelift.pipeline.facelift import FaceLiftPipeline
        from facelift.pipeline.refine import parse_refine_params

        fit_ok = self.fit_input_steps is None or self.fit_input_steps >= 0
        samples_ok = self.num_samples is None or self.num_samples >= 1
        resolution_ok = self.resolution is None or self.resolution >= 8
        if self.steps < 1 or self.guidance < 1 or self.refine_steps < 0 or not (fit_ok and samples_ok and resolution_ok):
            raise ValueError(
                "need --steps >= 1, --guidance >= 1, --refine-steps >= 0, --fit-input-steps >= 0, --num-samples >= 1 and --resolution >= 8"
            )
        if self.fit_input_params is not None:
            parse_refine_params(self.fit_input_params)  # fails before any model is loaded
        inputs = expand_inputs(self.inputs) + ([SAMPLE_PHOTO] if self.sample else [])
        if not inputs:
            raise ValueError(f"no images found in {' '.join(self.inputs)}" if self.inputs else "give one or more images (or --sample)")
        targets = _result_dirs(inputs, Path(self.out))
        for target in targets:  # refuse before loading the models, not after
            check_output_dir(target, overwrite=self.overwrite)
        cameras, camera_files = turntable_and_cameras(self.turntable_elevation, self.turntable_radius, self.cameras)
        device = resolve_device(self.device)
        start = time.perf_counter()
        pipe = FaceLiftPipeline.from_pretrained(self.weights, device=device)
        load_seconds = time.perf_counter() - start
        fit_steps, num_samples = pipe.resolve_settings(fit_input_steps=self.fit_input_steps, num_samples=self.num_samples)
        fit = pipe.fit_settings(fit_steps, self.fit_input_params)
        resolution = self.resolution or min(512, 2 * pipe.diffusion.image_size)
        settings = ResultSettings(
            resolution, self.frames, mesh_format=self.mesh_format, turntable_elevation_deg=self.turntable_elevation,
            turntable_radius=self.turntable_radius,
        )  # fmt: skip
        failures: list[tuple[Path, str]] = []
        bar = None
        if self.progress and len(inputs) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(inputs), desc="reconstruct", unit="image", file=sys.stderr)
        for path, target in zip(inputs, targets):
            try:
                result = pipe(
                    path, seed=self.seed, steps=self.steps, guidance=self.guidance, solver=self.solver, refine=self.refine_steps,
                    fit_input=fit or 0, num_samples=num_samples, crop=self.crop, matting=self.matting, estimate_yaw=self.yaw,
                )  # fmt: skip
                info = {
                    "source": str(path), "weights": self.weights, "seed": self.seed, "steps": self.steps,
                    "guidance": self.guidance, "solver": self.solver, "refine_steps": self.refine_steps,
                    "fit_input_steps": fit_steps, "fit_input_params": list(fit.params) if fit else None,
                    "num_samples": num_samples, "device": str(device),
                }  # fmt: skip
                with staged_output_dir(target, overwrite=self.overwrite) as staging:
                    summary = export_result(staging, result, settings, info=info, cameras=cameras, camera_files=camera_files)
                if self.json:
                    print(json.dumps({"out": str(target), **summary, "model_load_seconds": round(load_seconds, 3)}))
            except (ValueError, OSError, RuntimeError) as err:
                message = str(err) or type(err).__name__
                if str(path) not in message:
                    message = f"{path}: {message}"
                failures.append((path, message))
                print(f"facelift: error: {message}", file=sys.stderr)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        if failures:
            if len(inputs) > 1:
                print(f"facelift: {len(failures)} of {len(inputs)} inputs failed: " + ", ".join(str(p) for p, _ in failures), file=sys.stderr)
            return 1
        return 0


@dataclass
class ReconstructViewsCommand:
    """Posed views to 3D Gaussians, without the diffusion model: your own multi-view captures (or any views with
    known cameras) straight into the reconstructor, then refined against them. Writes gaussians.ply/.splat,
    multiview.png and views/ (the Gaussians at the six FaceLift views), turntable.mp4 and summary.json, atomically."""

    folder: Annotated[Path, tyro.conf.Positional]
    """A folder in the reference layout: opencv_cameras.json (frames with w, h, fx, fy, cx, cy, w2c, file_path)
    and the images it names, on a white background or with alpha. Cameras in facelift's world frame (z up, the
    head at the origin facing -y, cameras about 2.7 away, like the FaceLift views)."""
    out: OutPath = Path("outputs/views")
    """Output folder (created; must be empty unless --overwrite)."""
    weights: str = "default"
    """default, a weights folder, a bare GS-LRM folder (a training run's final/), the authors' GS-LRM checkpoint
    alone (ckpt_*.pt) or official:GSLRM_CKPT,DIFFUSION_FOLDER; only the reconstructor is loaded."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    refine_steps: int = 50
    """Test-time refinement steps against the given views, at the reconstructor's view size (0: the feed-forward
    prediction as it is). From the ground-truth views of held-out heads, 50 steps took the bundled reconstructor
    from 23.9 to 26.1 dB at views it was not given, in about 25 s on one CPU thread (64 px views); the authors'
    512 px reconstructor predicts 64 times as many Gaussians, so refine those on a GPU (gsplat) or pass 0."""
    prune: bool = True
    """Prune with the weights' rules (--no-prune keeps every predicted Gaussian)."""
    resolution: int = 256
    """Size of the renders and turntable frames."""
    frames: int = 150
    """Turntable frames (0: no video)."""
    overwrite: bool = False
    """Replace a non-empty output folder."""

    def run(self) -> int:
        import torch

        from facelift.cameras.io import read_opencv_cameras
        from facelift.pipeline.export import ExportSettings, check_output_dir, export_gaussians, staged_output_dir
        from facelift.pipeline.facelift import ReconstructorOnly
        from facelift.preprocess.image import load_image
        from facelift.utils.io import atomic_write_text

        if self.refine_steps < 0 or self.resolution < 8 or self.frames < 0:
            raise ValueError("need --refine-steps >= 0, --resolution >= 8 and --frames >= 0")
        folder = Path(self.folder)
        if not (folder / "opencv_cameras.json").is_file():
            raise FileNotFoundError(f"{folder} has no opencv_cameras.json (the reference layout: images + their cameras)")
        cameras, file_paths, _ = read_opencv_cameras(folder / "opencv_cameras.json")
        if any(not p for p in file_paths):
            raise ValueError(f"{folder / 'opencv_cameras.json'}: every frame needs a file_path")
        check_output_dir(self.out, overwrite=self.overwrite)  # refuse before the work, not after
        images = []
        for path in file_paths:
            loaded = load_image(folder / path)
            size = (loaded.rgb.shape[-1], loaded.rgb.shape[-2])
            if size != (cameras.width, cameras.height):
                raise ValueError(f"{folder / path} is {size[0]}x{size[1]} but its camera is {cameras.width}x{cameras.height}")
            alpha = loaded.alpha if loaded.alpha is not None else 1.0
            images.append(loaded.rgb * alpha + (1 - alpha))  # on white, as the reconstructor was trained
        device = resolve_device(self.device)
        start = time.perf_counter()
        pipe = ReconstructorOnly.load(self.weights, device=device)
        timings = {"load": time.perf_counter() - start}
        start = time.perf_counter()
        # Resized to the reconstructor's view size (cameras rescaled), predicted, pruned, then refined at that size.
        size = pipe.reconstructor.config.image_size
        gaussians = pipe.reconstruct(torch.stack(images), cameras, prune=self.prune, resolution=size, refine=self.refine_steps)
        timings["reconstruction_and_refinement"] = time.perf_counter() - start
        if gaussians.num == 0:
            raise ValueError("the reconstruction kept no Gaussians after pruning (try --no-prune)")
        with staged_output_dir(self.out, overwrite=self.overwrite) as staging:
            summary = export_gaussians(staging, gaussians, ExportSettings(self.resolution, self.frames))
            summary.update(
                source=str(folder), views=len(file_paths), weights=self.weights, refine_steps=self.refine_steps,
                prune=pipe.prune_settings.to_dict() if self.prune else None, timings={k: round(v, 3) for k, v in timings.items()},
            )  # fmt: skip
            atomic_write_text(staging / "summary.json", json.dumps(summary, indent=2) + "\n")
        print(json.dumps({"out": str(self.out), **summary}))
        return 0
