"""Evaluate the full pipeline on held-out procedural heads: the front view in, the six generated views and
the Gaussians out, compared with the ground truth.

    python benchmarks/eval_pipeline.py [WEIGHTS] [--subjects 40 --novel 8 --solver dpmsolver++ --steps 20]

Subjects come from the heads ``test`` split (identities never used in training), rendered by the synthetic
engine at the diffusion model's resolution exactly as training renders them (supersample 1, shadows on,
composited on white). The front view (view 0) goes through the diffusion model (seed = subject index,
guidance 3) without photo preprocessing (it is already framed like the training data); the generated views
go through the reconstructor with the six FaceLift cameras; the Gaussians are rendered at the six
ground-truth views and at ``--novel`` random views. Reported: PSNR (per view from the MSE over the whole
image, averaged over views and subjects) and SSIM (11 x 11 Gaussian window) of the generated views, of the
renders at the six views, and at the novel views.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from facelift.pipeline.facelift import FaceLiftPipeline
from facelift.rendering import rasterize
from facelift.synthetic.dataset import render_subject
from facelift.training.losses import ssim


def _scores(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    mse = (pred.clamp(0, 1) - target).square().flatten(1).mean(1)
    return float((-10 * torch.log10(mse.clamp_min(1e-10))).mean()), float(ssim(pred.clamp(0, 1), target, reduction="none").mean())


@torch.no_grad()
def evaluate(pipe: FaceLiftPipeline, *, subjects: int = 40, novel: int = 8, steps: int = 20, solver: str = "dpmsolver++") -> dict:
    res = pipe.diffusion.image_size
    rows = []
    for index in range(subjects):
        r = render_subject("heads", index, "test", resolution=res, num_random=novel, supersample=1)
        rgb = r.rgba[:, :3] * r.rgba[:, 3:] + (1 - r.rgba[:, 3:])  # [6 + novel, 3, H, W]
        views = pipe.generate_views(rgb[:1], seed=index, steps=steps, solver=solver)[0]  # [V, 3, H, W]
        generated = list(pipe.diffusion.generated_views)
        cams = pipe.view_cameras(0.0, resolution=res)
        gaussians = pipe.reconstruct(views, cams, prune=True)
        pred = rasterize(gaussians.to(pipe.device), r.cameras.to(pipe.device), background=1.0).rgb.cpu()
        gen_psnr, gen_ssim = _scores(views, rgb[generated])
        six_psnr, six_ssim = _scores(pred[:6], rgb[:6])
        nov_psnr, nov_ssim = _scores(pred[6:], rgb[6:]) if novel else (float("nan"), float("nan"))
        rows.append({
            "subject": r.subject.name, "psnr_generated": gen_psnr, "ssim_generated": gen_ssim, "psnr_six": six_psnr,
            "ssim_six": six_ssim, "psnr_novel": nov_psnr, "ssim_novel": nov_ssim,
        })  # fmt: skip
    mean = {k: sum(row[k] for row in rows) / len(rows) for k in rows[0] if k != "subject"}
    return {"resolution": res, "subjects": subjects, "novel_views": novel, "steps": steps, "solver": solver, "mean": mean, "per_subject": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="?", default="default", help="weights spec (default, a folder, official:...)")
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--novel", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--solver", default="dpmsolver++", choices=["ddim", "dpmsolver++"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pipe = FaceLiftPipeline.from_pretrained(args.weights, device=args.device)
    start = time.perf_counter()
    result = evaluate(pipe, subjects=args.subjects, novel=args.novel, steps=args.steps, solver=args.solver)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["command"] = " ".join(sys.argv)
    m = result["mean"]
    print(
        f"heads/test: {args.subjects} subjects at {result['resolution']} px, front view in, {args.solver}-{args.steps} | "
        f"generated views PSNR {m['psnr_generated']:.2f} dB SSIM {m['ssim_generated']:.4f} | "
        f"Gaussians at the 6 views PSNR {m['psnr_six']:.2f} dB SSIM {m['ssim_six']:.4f} | "
        f"{args.novel} novel views PSNR {m['psnr_novel']:.2f} dB SSIM {m['ssim_novel']:.4f} ({result['seconds']} s)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
