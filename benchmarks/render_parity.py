"""Parity of the gsplat CUDA backend against the portable PyTorch reference (run on a GPU machine).

    python benchmarks/render_parity.py [--json out.json]

For each scene (random Gaussians with SH degree 0/1/3, the 65,536 pixel-aligned head, the demo bust) and
two resolutions, both backends render the same cameras. The script prints, per scene: forward
differences (max / mean absolute difference of RGB, alpha and depth) and, for the gradients of one
random weighted loss with respect to every Gaussian parameter, the relative L2 error and the cosine
similarity; then the speed of both backends on the render benchmark. It exits 1 when any figure is
outside the stated tolerances (TOLERANCES below) and 2 when CUDA or gsplat is missing.

Why tolerances rather than equality: gsplat evaluates exp with fast intrinsics and accumulates in a
different order (per 16x16 tile in shared memory), so a pair can fall on the other side of the 1/255
alpha cut or of the 1e-4 termination, which moves a few pixels by up to a few 1e-3.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, pixel_aligned_head_scene, target_cameras, timeit  # noqa: E402

from facelift.cameras import orbit_cameras  # noqa: E402
from facelift.gaussians import Gaussians  # noqa: E402
from facelift.gaussians.procedural import demo_bust  # noqa: E402
from facelift.rendering import gsplat_available, rasterize  # noqa: E402

TOLERANCES = {
    "rgb_mean_abs": 2e-4,
    "rgb_max_abs": 2e-2,
    "alpha_mean_abs": 2e-4,
    "depth_mean_abs": 2e-3,
    "grad_rel_l2": 2e-2,
    "grad_cosine": 0.999,
}


def random_scene(n: int, sh_degree: int, seed: int, device) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        (torch.rand(n, 3, generator=gen) * 2 - 1) * 0.6,
        torch.randn(n, 4, generator=gen),
        torch.rand(n, 3, generator=gen) * 0.05 + 0.005,
        torch.rand(n, generator=gen) * 0.9 + 0.05,
        torch.randn(n, (sh_degree + 1) ** 2, 3, generator=gen) * 0.4,
    ).to(device)


def compare(g: Gaussians, cams) -> dict:
    names = ["means", "quats", "scales", "opacities", "sh"]
    gen = torch.Generator(device=cams.device).manual_seed(0)
    weights = torch.rand(*cams.batch_shape, 3, cams.height, cams.width, device=cams.device, generator=gen)
    outs, grads = {}, {}
    for backend in ("torch", "gsplat"):
        params = [getattr(g, n).detach().clone().requires_grad_(True) for n in names]
        out = rasterize(Gaussians(*params), cams, backend=backend)
        loss = (out.rgb * weights).sum() + out.alpha.sum() + 0.1 * out.depth.sum()
        loss.backward()
        outs[backend] = out
        grads[backend] = [p.grad for p in params]
    ref, fast = outs["torch"], outs["gsplat"]
    row = {
        "rgb_max_abs": (ref.rgb - fast.rgb).abs().max().item(),
        "rgb_mean_abs": (ref.rgb - fast.rgb).abs().mean().item(),
        "alpha_mean_abs": (ref.alpha - fast.alpha).abs().mean().item(),
        "depth_mean_abs": (ref.depth - fast.depth).abs().mean().item(),
    }
    for name, a, b in zip(names, grads["torch"], grads["gsplat"]):
        a, b = a.flatten().double(), b.flatten().double()
        row[f"grad_rel_l2[{name}]"] = ((a - b).norm() / a.norm().clamp_min(1e-30)).item()
        row[f"grad_cosine[{name}]"] = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return row


def failures(row: dict) -> list[str]:
    bad = []
    for key, value in row.items():
        base = key.split("[")[0]
        if base not in TOLERANCES:
            continue
        limit = TOLERANCES[base]
        ok = value >= limit if base == "grad_cosine" else value <= limit
        if not ok:
            bad.append(f"{key}={value:.3g} (limit {limit})")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available() or not gsplat_available():
        print("render_parity: needs CUDA and gsplat (pip install gsplat==1.5.3)", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    scenes = {
        "random-2k-sh0": random_scene(2000, 0, 0, device),
        "random-2k-sh1": random_scene(2000, 1, 1, device),
        "random-2k-sh3": random_scene(2000, 3, 2, device),
        "pixel-aligned-65k": pixel_aligned_head_scene(device=device),
        "demo-bust": demo_bust(30_000).to(device),
    }
    results, all_bad = {}, []
    for name, g in scenes.items():
        for res in (128, 256):
            cams = orbit_cameras(torch.tensor([0.0, 45.0, 90.0, 180.0, 300.0]), torch.tensor([0.0, 20.0, -10.0, 5.0, 40.0]), width=res, device=device)
            row = compare(g, cams)
            bad = failures(row)
            all_bad += [f"{name}@{res}: {b}" for b in bad]
            results[f"{name}@{res}"] = row
            worst_cos = min(v for k, v in row.items() if k.startswith("grad_cosine"))
            worst_rel = max(v for k, v in row.items() if k.startswith("grad_rel_l2"))
            print(f"{name:>20}@{res}: rgb max {row['rgb_max_abs']:.2e} mean {row['rgb_mean_abs']:.2e} | alpha mean "
                  f"{row['alpha_mean_abs']:.2e} | depth mean {row['depth_mean_abs']:.2e} | grads: worst rel-L2 "
                  f"{worst_rel:.2e}, worst cosine {worst_cos:.6f} {'OK' if not bad else 'FAIL'}")
    # Speed on the render benchmark scene.
    g = pixel_aligned_head_scene(device=device)
    cams = target_cameras(device=device)
    speed = {}
    for backend in ("torch", "gsplat"):
        params = [t.detach().clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.sh)]

        def step():
            out = rasterize(Gaussians(*params), cams, backend=backend)
            (out.rgb.mean() + out.alpha.mean()).backward()

        speed[backend] = median(timeit(step, device, repeats=10, warmup=2))
    print(f"fwd+bwd, 65,536 Gaussians -> 8 views at 128^2: torch {speed['torch'] * 1e3:.1f} ms, gsplat "
          f"{speed['gsplat'] * 1e3:.1f} ms ({speed['torch'] / speed['gsplat']:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(device), "parity": results, "speed_s": speed, "failures": all_bad}, indent=2))
    if all_bad:
        print("OUTSIDE TOLERANCE:\n  " + "\n  ".join(all_bad))
        return 1
    print("all scenes within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
