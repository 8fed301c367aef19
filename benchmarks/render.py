"""Rasteriser benchmark: pixel-aligned Gaussians from 4 views at 128x128 (65,536 Gaussians) rendered into
8 views at 128x128; forward and forward+backward seconds and peak memory.

    python benchmarks/render.py                      # CPU, portable backend (issue target: fwd+bwd <= 1.5 s, <= 4 GB)
    python benchmarks/render.py --device cuda        # both backends on CUDA (gsplat if installed)

Times are medians over --repeats runs after one warm-up, printed with their ratio to a fixed
memory-bound baseline timed in the same process (see _common.baseline_seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    baseline_seconds,
    fmt_ratio,
    median,
    peak_rss_mib,
    pixel_aligned_head_scene,
    target_cameras,
    timeit,
)

from facelift.gaussians import Gaussians  # noqa: E402
from facelift.rendering import gsplat_available, rasterize  # noqa: E402


def bench_backend(g: Gaussians, cams, backend: str, device: torch.device, repeats: int) -> dict:
    params = [t.detach().clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.sh)]
    weights = torch.rand(8, 3, cams.height, cams.width, device=device, generator=torch.Generator(device).manual_seed(0))

    def forward():
        with torch.no_grad():
            return rasterize(g, cams, backend=backend)

    def forward_backward():
        out = rasterize(Gaussians(*params), cams, backend=backend)
        loss = (out.rgb * weights).mean() + out.alpha.mean() + 0.01 * out.depth.mean()
        loss.backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = peak_rss_mib()
    fwd = timeit(forward, device, repeats=repeats)
    fwd_bwd = timeit(forward_backward, device, repeats=repeats)
    result = {"backend": backend, "forward_s": median(fwd), "forward_backward_s": median(fwd_bwd)}
    if device.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["peak_rss_mib"] = peak_rss_mib()
        result["peak_rss_growth_mib"] = peak_rss_mib() - rss_before
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--input-views", type=int, default=4)
    parser.add_argument("--target-views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--backend", default="all", choices=["all", "torch", "gsplat"])
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)

    g = pixel_aligned_head_scene(args.input_views, args.resolution, device=device)
    cams = target_cameras(args.target_views, args.resolution, device=device)
    base = baseline_seconds(device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"scene: {g.num} pixel-aligned Gaussians from {args.input_views} views at {args.resolution}^2 -> "
          f"{args.target_views} views at {args.resolution}^2")
    print(f"baseline (10x exp-mul-add over 2^24 floats + 2^22 int32 sort): {base:.3f} s")
    backends = ["torch", "gsplat"] if args.backend == "all" else [args.backend]
    if device.type != "cuda" or not gsplat_available():
        backends = [b for b in backends if b != "gsplat"]
    results = {"device": str(device), "num_gaussians": g.num, "baseline_s": base, "backends": []}
    for backend in backends:
        r = bench_backend(g, cams, backend, device, args.repeats)
        results["backends"].append(r)
        mem = f"peak GPU {r['peak_gpu_mib']:.0f} MiB" if "peak_gpu_mib" in r else (
            f"peak RSS {r['peak_rss_mib']:.0f} MiB (+{r['peak_rss_growth_mib']:.0f} MiB during the runs)")
        print(f"[{backend}] forward {fmt_ratio(r['forward_s'], base)} | forward+backward "
              f"{fmt_ratio(r['forward_backward_s'], base)} | {mem}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
