"""Multi-view diffusion sampling speed: seconds to generate the six views of one image, with guidance.

    python benchmarks/mvdiff.py                                   # default size on the CPU
    python benchmarks/mvdiff.py --model official --device cuda --dtype fp16 --compile   # GPU, 512 px

Method: a :class:`MultiViewDiffusion` of the chosen size with random weights (speed does not depend on
the values) samples the six views of one random 3-channel input with classifier-free guidance 3.0, once with
DDIM (``--ddim-steps``, eta 1.0, the reference settings) and once with DPM-Solver++ (``--fast-steps``). Each
timing is the median wall clock (``time.perf_counter``, CUDA synchronised) of ``--repeats`` complete
``sample()`` calls after one warm-up call (which also triggers ``torch.compile``), so it includes the VAE
encode of the input, the image embedding, all UNet evaluations and the VAE decode of the six views. The
``official`` size uses facelift's image encoder in place of CLIP ViT-H (a few milliseconds on a GPU), so
its figures cover everything but that. A same-process baseline (``_common.baseline_seconds``) is printed
so that times compare across machines.

Targets (issue 5), on an H100/H200, official size, 512 px, guidance on: <= 1.0 s with the fast solver at
<= 25 steps, <= 2.5 s with DDIM-50 (the reference release takes about 5.5 s). Measured on an H100 80GB (torch
2.11, eager, fp16, ``--fast-steps 20 25 --repeats 2``): DDIM-50 3.09 s, DPM-Solver++ 20 steps 1.15 s, 25 steps
1.40 s. From those two DPM-Solver++ runs: about 50 ms per guided UNet step and 0.15 s for everything else;
DDIM-50 then spent about 9 ms more per step, which was the per-step host-to-device copy of its noise (now drawn
up front and copied once). With two or more ``--fast-steps`` the benchmark prints that split itself.
``--compile`` (torch.compile of the UNet) and ``--channels-last`` (UNet and VAE in channels-last memory
format) are the untried GPU levers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import baseline_seconds, median, peak_rss_mib, sync  # noqa: E402

from facelift.models.mvdiffusion import MultiViewDiffusion, MVDiffusionConfig  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("default", "official", "tiny"), default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--fast-steps", type=int, nargs="+", default=[20])
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--attention", choices=("sparse", "dense", "off"), default="sparse")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--channels-last", action="store_true", help="UNet and VAE in channels-last memory format")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    config = getattr(MVDiffusionConfig, args.model)()
    model = MultiViewDiffusion.from_config(replace(config, attention=args.attention))
    model = model.to(device=device, dtype=DTYPES[args.dtype]).eval()
    if args.channels_last:
        model.unet.to(memory_format=torch.channels_last)
        model.vae.to(memory_format=torch.channels_last)
    if args.compile:
        model.unet = torch.compile(model.unet)
    image = torch.rand(1, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
    baseline = baseline_seconds(device)

    def timed(solver: str, steps: int) -> float:
        def once() -> None:
            model.sample(image, num_inference_steps=steps, guidance_scale=args.guidance, solver=solver, generator=torch.Generator().manual_seed(0))

        once()  # warm-up (and compilation)
        times = []
        for _ in range(args.repeats):
            sync(device)
            start = time.perf_counter()
            once()
            sync(device)
            times.append(time.perf_counter() - start)
        return median(times)

    results = {
        "model": args.model, "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": args.dtype, "compile": args.compile, "channels_last": args.channels_last, "attention": args.attention,
        "image_size": config.image_size,
        "unet_params_m": sum(p.numel() for p in model.unet.parameters()) / 1e6, "guidance": args.guidance,
        "threads": torch.get_num_threads(), "baseline_s": baseline,
    }  # fmt: skip
    ddim = timed("ddim", args.ddim_steps)
    results[f"ddim{args.ddim_steps}_s"] = ddim
    print(f"{args.model} {config.image_size}px {args.dtype} on {results['device_name']}: DDIM-{args.ddim_steps} {ddim:.3f} s ({ddim / baseline:.1f}x baseline)")
    for steps in args.fast_steps:
        fast = timed("dpmsolver++", steps)
        results[f"dpmpp{steps}_s"] = fast
        print(f"{args.model} {config.image_size}px {args.dtype}: DPM-Solver++-{steps} {fast:.3f} s ({fast / baseline:.1f}x baseline, {ddim / fast:.1f}x faster than DDIM)")
    if len(args.fast_steps) >= 2:  # a line through (steps, seconds): per-step cost and the fixed rest
        lo, hi = min(args.fast_steps), max(args.fast_steps)
        if hi > lo:
            per_step = (results[f"dpmpp{hi}_s"] - results[f"dpmpp{lo}_s"]) / (hi - lo)
            rest = results[f"dpmpp{lo}_s"] - lo * per_step
            results["unet_step_s"], results["fixed_s"] = per_step, rest
            print(f"per guided UNet step {per_step * 1e3:.1f} ms; encode, embed and decode {rest:.3f} s")
    results["peak_rss_mib"] = peak_rss_mib()
    if device.type == "cuda":
        results["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(f"baseline {baseline:.3f} s; peak RSS {results['peak_rss_mib']:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
