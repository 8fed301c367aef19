"""Regenerate the pictures of the default weights under ``docs/images/`` (shown in README and the model card).

Usage::

    python scripts/make_default_weights_figures.py [--weights default] [--data data/eval64] [--subjects 0 7 19 33]

Writes two images:

* ``default_weights_astronaut.png``: the bundled sample photo. Rows: the preprocessed input and the six generated
  views; the Gaussians rendered at the six FaceLift views; turntable frames at 10 deg elevation.
* ``default_weights_heldout.png``: held-out procedural heads (the evaluation set's ``test`` identities, never seen
  in training). Three rows per subject: the input (ground-truth front view) and the six generated views; the
  ground truth at the six views; the Gaussians rendered as turntable frames at 10 deg elevation.

Sampling settings are those of ``facelift eval`` (DPM-Solver++ 20 steps, guidance 3, seed = subject index) for the
held-out heads and those of ``facelift reconstruct`` (DDIM 50, guidance 3, seed 0) for the photo.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from facelift.cameras.orbits import facelift_views, turntable_cameras
from facelift.evaluation.evalset import NUM_FIXED, EvalSet, resize_views
from facelift.pipeline.facelift import FaceLiftPipeline
from facelift.rendering.media import image_grid, save_image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src" / "facelift" / "assets" / "astronaut.png"
TILE = 128
FRAMES = 7


def _tile(images: torch.Tensor) -> torch.Tensor:
    """``[V, 3, h, w]`` -> ``[V, 3, TILE, TILE]`` in [0, 1] (bilinear, antialiased)."""
    return resize_views(images.float().clamp(0, 1), TILE)


def _turntable(pipe: FaceLiftPipeline, gaussians, azimuth: float = 0.0) -> torch.Tensor:
    """``[FRAMES, 3, TILE, TILE]`` renders on a full turn, slightly from above."""
    cams = turntable_cameras(FRAMES, elevation_deg=10.0, start_azimuth_deg=azimuth, resolution=TILE)
    return pipe.render(gaussians, cams)


def astronaut_figure(pipe: FaceLiftPipeline, path: Path) -> None:
    result = pipe(SAMPLE, seed=0, steps=50, guidance=3.0, solver="ddim")
    blank = torch.ones(1, 3, TILE, TILE)
    rendered = pipe.render(result.gaussians, facelift_views(result.input.azimuth_deg, resolution=TILE))
    rows = [
        torch.cat([_tile(result.input.image[None]), _tile(result.views)]),
        torch.cat([blank, _tile(rendered)]),
        _turntable(pipe, result.gaussians, result.input.azimuth_deg),
    ]
    save_image(path, image_grid(torch.cat(rows), rows=len(rows), pad=2))


def heldout_figure(pipe: FaceLiftPipeline, evalset: EvalSet, subjects: list[int], path: Path) -> None:
    size = pipe.diffusion.image_size
    blank = torch.ones(1, 3, TILE, TILE)
    tiles = []
    for index in subjects:
        subject = evalset[index]
        inp = resize_views(subject.input_image[None], size)
        samples = pipe.generate_samples(inp, seed=index, steps=20, guidance=3.0, solver="dpmsolver++")[0]
        generated = samples.mean(0)  # shown: the one sample, or the mean of the weights' num_samples
        gaussians = pipe.fit_input(pipe.reconstruct(*pipe.reconstructor_inputs(inp[0], samples, 0.0)), inp[0], 0.0)  # as a pipeline call
        six = torch.ones(NUM_FIXED, 3, TILE, TILE)
        six[list(pipe.diffusion.generated_views)] = _tile(generated)
        tiles += [_tile(subject.input_image[None]), six, blank, _tile(subject.images[:NUM_FIXED]), _turntable(pipe, gaussians)]
    save_image(path, image_grid(torch.cat(tiles), rows=3 * len(subjects), pad=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="default", help="pipeline weights (default: the bundled ones)")
    parser.add_argument("--data", type=Path, default=None, help="evaluation set folder (default: render on the fly)")
    parser.add_argument("--subjects", type=int, nargs="+", default=[0, 7, 19, 33], help="held-out subject indices")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    torch.manual_seed(0)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    pipe = FaceLiftPipeline.from_pretrained(args.weights)
    start = time.perf_counter()
    astronaut_figure(pipe, args.out_dir / "default_weights_astronaut.png")
    evalset = EvalSet(subjects=max(args.subjects) + 1, num_random=0, folder=args.data)
    heldout_figure(pipe, evalset, args.subjects, args.out_dir / "default_weights_heldout.png")
    print(f"wrote {args.out_dir}/default_weights_astronaut.png and default_weights_heldout.png in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
