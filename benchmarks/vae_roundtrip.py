"""How much of a held-out view survives the diffusion model's autoencoder (encode, then decode the posterior mean).

Usage::

    python benchmarks/vae_roundtrip.py [--vae FOLDER ...] [--baseline default] [--data data/eval64] [--subjects 12]

Prints, per autoencoder, over the six FaceLift views of the first ``--subjects`` held-out heads (the ``test``
identities; ``--data`` reads ``facelift synth heads --split test`` output, otherwise they are rendered on the fly):
PSNR and SSIM of the round trip, and the **chroma ratio**: mean |chroma| of the reconstruction over that of the
ground truth (chroma = pixel minus its grey value; 1.0 keeps the colour saturation, 0 turns everything grey) and the
chroma error (mean |chroma difference|, in [0, 1] units). The baseline (default: the bundled weights' VAE) runs in
the same process and each row gives its PSNR difference to it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from facelift.evaluation.evalset import NUM_FIXED, EvalSet, resize_views
from facelift.evaluation.metrics import psnr, ssim
from facelift.training.losses import chroma_of


def load_vae(spec: str):
    """``default`` (the bundled pipeline's VAE) or an ``AutoencoderKL`` folder."""
    from facelift.pipeline.facelift import DEFAULT_WEIGHTS
    from facelift.training.mvdiff_trainer import load_vae_folder

    try:
        return load_vae_folder(DEFAULT_WEIGHTS / "mvdiffusion" / "vae" if spec == "default" else spec).float().eval()
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}") from None


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor) -> torch.Tensor:
    """``decode(encode(x).mode)`` of ``[N, 3, H, W]`` images in [0, 1] (what the diffusion model's latents decode to)."""
    return ((vae.decode(vae.encode(images * 2 - 1).latent_dist.mode()).sample + 1) / 2).clamp(0, 1)


def roundtrip(vae, images: torch.Tensor) -> dict[str, float]:
    """Metrics of the round trip against ``images``."""
    recon = reconstruct(vae, images)
    truth, got = chroma_of(images), chroma_of(recon)
    return {
        "psnr": float(psnr(recon, images).mean()),
        "ssim": float(ssim(recon, images).mean()),
        "chroma_ratio": float(got.abs().mean() / truth.abs().mean()),
        "chroma_error": float((got - truth).abs().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", nargs="*", default=[], help="AutoencoderKL folders to measure")
    parser.add_argument("--baseline", default="default", help="baseline VAE (default: the bundled one)")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--sheet", type=Path, default=None, help="also write a PNG: ground truth, then one row per VAE")
    args = parser.parse_args()
    evalset = EvalSet(subjects=args.subjects, num_random=0, resolution=args.resolution, folder=args.data)
    images = resize_views(torch.cat([evalset[i].images[:NUM_FIXED] for i in range(len(evalset))]), args.resolution)
    print(f"{images.shape[0]} held-out views ({args.subjects} subjects x six views), {args.resolution} px, on white")
    shown = [NUM_FIXED * i + view for i in range(min(6, args.subjects)) for view in (0, 2)]  # front and right
    base, rows = None, [images[shown]]
    print("| VAE | PSNR | dPSNR vs baseline | SSIM | chroma ratio | chroma error |\n|---|---|---|---|---|---|")
    for spec in [args.baseline, *args.vae]:
        vae = load_vae(spec)
        m = roundtrip(vae, images)
        rows.append(reconstruct(vae, rows[0]))
        base = m if base is None else base
        print(f"| {spec} | {m['psnr']:.2f} dB | {m['psnr'] - base['psnr']:+.2f} | {m['ssim']:.4f} | {m['chroma_ratio']:.3f} | {m['chroma_error']:.4f} |")
    if args.sheet is not None:
        from facelift.rendering.media import image_grid, save_image

        save_image(args.sheet, image_grid(torch.cat(rows), rows=len(rows), pad=1))
        print(f"wrote {args.sheet}: ground truth (top), then each VAE's round trip in the order above")


if __name__ == "__main__":
    main()
