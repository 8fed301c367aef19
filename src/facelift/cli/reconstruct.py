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

from facelift.cli.common import resolve_device

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
    out: Annotated[Path, tyro.conf.arg(aliases=["-o"])] = Path("outputs/reconstruct")
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

        if self.steps < 1 or self.guidance < 1 or self.refine_steps < 0 or (self.resolution is not None and self.resolution < 8):
            raise ValueError("need --steps >= 1, --guidance >= 1, --refine-steps >= 0 and --resolution >= 8")
        inputs = expand_inputs(self.inputs) + ([SAMPLE_PHOTO] if self.sample else [])
        if not inputs:
            raise ValueError(f"no images found in {' '.join(self.inputs)}" if self.inputs else "give one or more images (or --sample)")
        targets = _result_dirs(inputs, Path(self.out))
        for target in targets:  # refuse before loading the models, not after
            check_output_dir(target, overwrite=self.overwrite)
        device = resolve_device(self.device)
        start = time.perf_counter()
        pipe = FaceLiftPipeline.from_pretrained(self.weights, device=device)
        load_seconds = time.perf_counter() - start
        resolution = self.resolution or min(512, 2 * pipe.diffusion.image_size)
        settings = ResultSettings(resolution, self.frames, mesh_format=self.mesh_format)
        failures: list[tuple[Path, str]] = []
        bar = None
        if self.progress and len(inputs) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(inputs), desc="reconstruct", unit="image", file=sys.stderr)
        for path, target in zip(inputs, targets):
            try:
                result = pipe(path, seed=self.seed, steps=self.steps, guidance=self.guidance, solver=self.solver, refine=self.refine_steps, crop=self.crop, matting=self.matting, estimate_yaw=self.yaw)
                info = {
                    "source": str(path), "weights": self.weights, "seed": self.seed, "steps": self.steps,
                    "guidance": self.guidance, "solver": self.solver, "refine_steps": self.refine_steps, "device": str(device),
                }  # fmt: skip
                with staged_output_dir(target, overwrite=self.overwrite) as staging:
                    summary = export_result(staging, result, settings, info=info)
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
