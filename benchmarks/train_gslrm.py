"""GS-LRM training throughput: samples per second of a training step and of on-the-fly data, per preset.

    python benchmarks/train_gslrm.py                       # default preset (128 px, default model), CPU
    python benchmarks/train_gslrm.py --preset tiny --steps 10
    python benchmarks/train_gslrm.py --resolution 64 --batch-size 1   # what fits a 23 GiB CPU box

Measured on the project's 2-core CPU: default preset at 128 px, batch 1: 3.5 s per step (0.28 samples/s,
1.7 GiB peak RSS); 16 px tiny: 0.06 s per step. (Before the default preset's scale offset moved to 4.3,
its untrained Gaussians covered hundreds of pixels each and 128 px, batch 2 ran out of memory.)

On an H100 80GB (torch 2.11, bf16), the official model at 512 px, batch 2, 4 input views ran out of memory without
``--grad-checkpointing`` (66 GiB allocated by PyTorch when a 6.6 GiB block was asked for; a small training process
held 3 GiB beside it). On CUDA it also reports model FLOP utilisation: transformer FLOPs per sample (6 x matmul parameters x
tokens for forward + backward, plus 12 x depth x tokens^2 x width for attention scores and values)
times samples/s over ``--peak-tflops`` (default 989: H100/H200 dense bf16). Rendering and the loss are
in the step time but not in the FLOP count, so this is the utilisation of the whole step.

Method: the preset's config (batch size, resolution, views, model) with a fixed seed. Data: median
seconds to render one sample (``SyntheticStream`` on the fly, 8 views at the preset resolution, one
process). Step: ``batch_size`` pre-rendered samples, then forward + render all views + loss + backward +
clip + AdamW step, timed with ``time.perf_counter`` over ``--steps`` steps after one warm-up step; the
figure is the median. End-to-end samples/s of a single process without DataLoader workers is
``batch / (step + batch * data)``; with enough workers it approaches the step-only figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import baseline_seconds, peak_rss_mib  # noqa: E402

from facelift.models.gslrm import GSLRM, GSLRMConfig  # noqa: E402
from facelift.training.gslrm_trainer import GSLRM_PRESETS, _ReconstructorSamples, forward_loss  # noqa: E402
from facelift.training.optim import build_adamw, clip_and_check, warmup_cosine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=sorted(GSLRM_PRESETS))
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    parser.add_argument("--resolution", type=int, default=None, help="override the preset's resolution")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator peak for the MFU figure")
    parser.add_argument("--model", default=None, choices=["default", "official", "tiny"], help="override the preset's model size")
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute transformer blocks in the backward pass")
    args = parser.parse_args()
    config = GSLRM_PRESETS[args.preset]
    if args.batch_size is not None:
        config = replace(config, batch_size=args.batch_size)
    if args.resolution is not None:
        config = replace(config, resolution=args.resolution)
    if args.model is not None:
        config = replace(config, model=getattr(GSLRMConfig, args.model)())
    if args.grad_checkpointing:
        config = replace(config, model=replace(config.model, grad_checkpointing=True))
    device = torch.device(args.device)
    data = _ReconstructorSamples(config)

    data_times = []
    samples = []
    for k in range(config.batch_size + 2):
        start = time.perf_counter()
        samples.append(data[k])
        data_times.append(time.perf_counter() - start)
    batch = {key: torch.stack([s[key] for s in samples[: config.batch_size]]) for key in samples[0]}

    model = GSLRM(config.model).to(device)
    optimizer = build_adamw(model, config.lr)
    scheduler = warmup_cosine(optimizer, 0, args.steps + 1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and config.bf16 else None

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        _, _, loss = forward_loss(model, batch, config, device, autocast=autocast)
        loss.total.backward()
        if not clip_and_check(model, config.grad_clip, config.skip_factor, loss=loss.total.detach()).skipped:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    step()  # warm-up
    step_times = [step() for _ in range(args.steps)]
    step_s, data_s = statistics.median(step_times), statistics.median(data_times[1:])
    b = config.batch_size
    m = config.model
    tokens = m.num_extra_tokens + config.input_views * (config.resolution // m.patch_size) ** 2
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "position" not in n)
    flops = 6 * matmul_params * tokens + 12 * m.depth * tokens**2 * m.width  # per sample, forward + backward
    mfu = flops * (b / step_s) / (args.peak_tflops * 1e12)
    print(json.dumps({
        "preset": args.preset, "device": str(device), "threads": torch.get_num_threads(),
        "resolution": config.resolution, "views": config.views_per_sample, "input_views": config.input_views,
        "batch_size": b, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "step_s_median": round(step_s, 4), "data_s_per_sample_median": round(data_s, 4),
        "step_samples_per_s": round(b / step_s, 3), "end_to_end_samples_per_s": round(b / (step_s + b * data_s), 3),
        "model_tflop_per_sample": round(flops / 1e12, 4),
        "mfu_vs_peak": round(mfu, 4) if device.type == "cuda" else None,
        "peak_rss_mib": round(peak_rss_mib()), "baseline_s": round(baseline_seconds(device), 4),
        "method": "median perf_counter over timed steps after 1 warm-up; data = on-the-fly SyntheticStream render per sample",
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
