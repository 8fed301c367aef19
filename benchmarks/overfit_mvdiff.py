"""Multi-view diffusion overfit check: a small model learns the six views of one synthetic head from its
front view, on a CPU, through the real trainers.

    python benchmarks/overfit_mvdiff.py                       # defaults below
    python benchmarks/overfit_mvdiff.py --vae-steps 300 --diff-steps 600 --json out.json

Method: ``heads`` train subject ``--subject`` is rendered once at ``--resolution`` (2x2 supersampling) from
the six FaceLift views and written as a one-subject ``facelift synth`` folder. ``facelift train vae``
(:func:`train_vae`) trains the autoencoder on it (white background), then ``facelift train mvdiff``
(:func:`train_mvdiff`) trains the diffusion model on it with the reference objective (v-prediction,
Min-SNR, condition dropout, EMA). The EMA model then samples the six views from the front view with
DDIM-50 (eta 1, guidance 3) and DPM-Solver++ (20 steps), seed 0. Reported: the VAE's reconstruction PSNR
of the six views (the ceiling of anything decoded from latents) and each sampler's PSNR per view and
overall (from the MSE over all pixels of the six views, images in [0, 1]) against the ground-truth renders,
plus training and sampling seconds (``time.perf_counter``) and a same-process baseline
(``_common.baseline_seconds``) so that times compare across machines.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import baseline_seconds  # noqa: E402

from facelift.models.mvdiffusion import MultiViewDiffusion, MVDiffusionConfig  # noqa: E402
from facelift.synthetic.dataset import render_subject, write_subject  # noqa: E402
from facelift.training.mvdiff_trainer import MVDiffTrainConfig, VAETrainConfig, train_mvdiff, train_vae  # noqa: E402


def overfit_config(resolution: int) -> MVDiffusionConfig:
    """The small model of this check (about 1.2M UNet parameters)."""
    return MVDiffusionConfig(
        image_size=resolution, unet_channels=(32, 64, 64), unet_attention=(False, True, True), unet_heads=(1, 2, 2),
        cross_attention_dim=32, view_tokens=2, image_embed_dim=32, image_encoder_channels=(16, 32, 32),
        vae_channels=(32, 32), norm_num_groups=8,
    )  # fmt: skip


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.float() - b.float()).pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    baseline = baseline_seconds(torch.device("cpu"))
    config = overfit_config(args.resolution)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="facelift-overfit-mvdiff-"))
    render = render_subject("heads", args.subject, "train", resolution=args.resolution, num_random=0, supersample=2)
    write_subject(work / "data", render, overwrite=True)
    rgba = render.rgba.float()
    truth = rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])  # [6, 3, H, W] on white
    quiet = {"device": "cpu", "progress": args.progress, "tensorboard": False, "workers": 0}

    start = time.perf_counter()
    vae_run = train_vae(
        VAETrainConfig(
            preset="overfit", model=config, data_root=work / "data" / "train", batch_size=1, lr=args.vae_lr,
            warmup_steps=min(20, args.vae_steps), total_steps=args.vae_steps, background="white", image_every=0, ckpt_every=args.vae_steps,
            scale_batches=1, out_dir=work / "vae", **quiet,
        )  # fmt: skip
    )
    vae_seconds = time.perf_counter() - start
    start = time.perf_counter()
    diff_run = train_mvdiff(
        MVDiffTrainConfig(
            preset="overfit", model=config, vae_from=vae_run.pretrained_dir, data_root=work / "data" / "train",
            batch_size=args.batch, lr=args.lr, warmup_steps=min(50, args.diff_steps), total_steps=args.diff_steps, ema_decay=args.ema,
            background="white", image_every=0, ckpt_every=args.diff_steps, out_dir=work / "mvdiff", **quiet,
        )  # fmt: skip
    )
    diff_seconds = time.perf_counter() - start

    model = MultiViewDiffusion.from_pretrained(diff_run.pretrained_dir).eval()
    with torch.no_grad():
        recon = model.decode_latents(model.encode_latents(truth))
    results = {
        "settings": vars(args), "baseline_s": baseline, "vae_seconds": vae_seconds, "diffusion_seconds": diff_seconds,
        "vae_final_loss": vae_run.final_loss, "diffusion_final_loss": diff_run.final_loss,
        "vae_recon_psnr": psnr(recon, truth), "unet_params_m": sum(p.numel() for p in model.unet.parameters()) / 1e6,
    }  # fmt: skip
    for name, kwargs in (("ddim50", {"solver": "ddim", "num_inference_steps": 50}), ("dpmpp20", {"solver": "dpmsolver++", "num_inference_steps": 20})):
        start = time.perf_counter()
        out = model.sample(truth[:1], guidance_scale=3.0, generator=torch.Generator().manual_seed(0), **kwargs)
        seconds = time.perf_counter() - start
        views = out.images[0]
        results[name] = {
            "psnr": psnr(views, truth), "psnr_per_view": [round(psnr(views[i], truth[i]), 2) for i in range(6)],
            "psnr_novel": psnr(views[1:], truth[1:]), "sample_seconds": seconds,
        }  # fmt: skip
        if args.save_images:
            from facelift.rendering.media import image_grid, save_image

            save_image(Path(args.save_images).with_suffix(f".{name}.png"), image_grid(torch.cat([truth, views]), rows=2, pad=1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--subject", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--diff-steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--ema", type=float, default=0.98)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--save-images", default=None, help="path stem for target/sample grids")
    parser.add_argument("--json", default=None)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = run(args)
    for key in ("vae_recon_psnr", "vae_seconds", "diffusion_seconds", "baseline_s"):
        print(f"{key}: {results[key]:.2f}")
    for name in ("ddim50", "dpmpp20"):
        r = results[name]
        print(f"{name}: PSNR {r['psnr']:.2f} dB (novel {r['psnr_novel']:.2f}), per view {r['psnr_per_view']}, sampling {r['sample_seconds']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
