"""Evaluate a GS-LRM on held-out procedural subjects: the six ground-truth FaceLift views in, Gaussians
out, rendered at the six input views and at random novel views; PSNR and SSIM on white background.

    python benchmarks/eval_gslrm.py RUN/final [--subjects 40 --novel 8 --kind heads --split test]

Subjects come from the ``test`` split (identities never used in training), rendered by the synthetic
engine at the model's resolution exactly as training renders them (supersample 1, shadows on,
composited on white). PSNR is computed per view from the MSE over the whole image and averaged over
views and subjects; SSIM uses an 11x11 Gaussian window (``facelift.training.losses.ssim``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from facelift.cameras import Cameras
from facelift.models.gslrm import GSLRM
from facelift.rendering import rasterize
from facelift.synthetic.dataset import render_subject
from facelift.training.losses import ssim


@torch.no_grad()
def evaluate(model: GSLRM, *, kind: str = "heads", split: str = "test", subjects: int = 40, novel: int = 8, resolution: int | None = None) -> dict:
    """Mean PSNR/SSIM over ``subjects`` held-out subjects, for the 6 input views and ``novel`` random views."""
    res = resolution or model.config.image_size
    rows = []
    for index in range(subjects):
        r = render_subject(kind, index, split, resolution=res, num_random=novel, supersample=1)
        rgb = r.rgba[:, :3] * r.rgba[:, 3:] + (1 - r.rgba[:, 3:])  # [6 + novel, 3, H, W] on white
        cams: Cameras = r.cameras
        gaussians = model(rgb[None, :6], cams[:6].reshape(1, 6))
        pred = rasterize(gaussians, cams.reshape(1, -1), background=1.0).rgb[0].clamp(0, 1)
        mse = (pred - rgb).square().flatten(1).mean(1)
        psnr = -10 * torch.log10(mse.clamp_min(1e-10))
        s = ssim(pred, rgb, reduction="none")
        rows.append({"subject": r.subject.name, "psnr_inputs": psnr[:6].mean().item(), "psnr_novel": psnr[6:].mean().item(),
                     "ssim_inputs": s[:6].mean().item(), "ssim_novel": s[6:].mean().item()})
    mean = {k: sum(row[k] for row in rows) / len(rows) for k in rows[0] if k != "subject"}
    return {"resolution": res, "subjects": subjects, "novel_views": novel, "kind": kind, "split": split, "mean": mean, "per_subject": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="a save_pretrained folder (config.json + model.safetensors)")
    parser.add_argument("--kind", default="heads", choices=["heads", "objects"])
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--novel", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = GSLRM.from_pretrained(args.weights).eval()
    start = time.perf_counter()
    result = evaluate(model, kind=args.kind, split=args.split, subjects=args.subjects, novel=args.novel)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["command"] = " ".join(sys.argv)
    m = result["mean"]
    print(f"{args.kind}/{args.split}: {args.subjects} subjects at {result['resolution']} px, 6 GT views in | "
          f"inputs PSNR {m['psnr_inputs']:.2f} dB SSIM {m['ssim_inputs']:.4f} | "
          f"{args.novel} novel views PSNR {m['psnr_novel']:.2f} dB SSIM {m['ssim_novel']:.4f} ({result['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
