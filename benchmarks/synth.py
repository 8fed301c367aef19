"""Synthetic-data engine benchmark: views per second for heads and objects, against Blender Cycles on the
same scene in the same run.

    python benchmarks/synth.py                                   # CPU, facelift only
    python benchmarks/synth.py --blender-python /tmp/bpyenv/bin/python
    python benchmarks/synth.py --device cuda --subjects 64       # GPU throughput

Cycles renders the very same head (identical primitives, carves as Boolean modifiers, Principled skin with
subsurface scattering, hair with a strand texture and anisotropic highlights, a sun and a sky) at the same
resolution and cameras, on the CPU with the same number of threads; its figure is the median time per
frame after the first. The Blender Python is a separate environment (`python -m venv /tmp/bpyenv &&
/tmp/bpyenv/bin/pip install --no-deps bpy==4.5.15 numpy`), so bpy never enters facelift's own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import baseline_seconds  # noqa: E402

from facelift.cameras import Cameras, orbit_cameras  # noqa: E402
from facelift.synthetic.heads import head_scene  # noqa: E402
from facelift.synthetic.primitives import Op, Pattern, PrimitiveTable  # noqa: E402
from facelift.synthetic.render import Lighting, SynthSettings, render_scene  # noqa: E402


def bench_views(kind: str, subjects: int, views: int, res: int, device: torch.device, settings: SynthSettings, repeats: int = 3) -> dict:
    """Render ``subjects`` x ``views`` views in one call, ``repeats`` times after a warm-up; the median run counts."""
    if kind == "heads":
        tables = [head_scene(i, i % 50)[0] for i in range(subjects)]
    else:
        from facelift.synthetic.objects import object_scene

        tables = [object_scene(i)[0] for i in range(subjects)]
    table = PrimitiveTable.stack(tables).to(device)
    az = torch.linspace(0, 360, views + 1)[:-1]
    cams = orbit_cameras(az, 10.0, width=res, device=device)
    cams = Cameras.stack([cams] * subjects)
    light = Lighting.random(subjects, torch.Generator().manual_seed(0), ambient_only_prob=0.0)
    render_scene(table[:1], cams[:1], Lighting(*(getattr(light, k)[:1] for k in ("sky", "horizon", "ground", "key_dir", "key_colour", "softness"))), settings)  # warm-up
    runs = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        render_scene(table, cams, light, settings)
        if device.type == "cuda":
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - start)
    seconds = statistics.median(runs)
    return {"kind": kind, "views": subjects * views, "seconds": seconds, "runs_s": runs, "views_per_s": subjects * views / seconds, "primitives": table.num}


def export_for_cycles(identity: int, variant: int, res: int, views: int, samples: int, threads: int) -> dict:
    table, _ = head_scene(identity, variant)
    lin = torch.linalg.inv(table.w2l[0, :, :, :3].double())
    trans = -(lin @ table.w2l[0, :, :, 3:].double())[..., 0]
    prims = []
    for k in range(table.num):
        l2w = torch.eye(4, dtype=torch.float64)
        l2w[:3, :3], l2w[:3, 3] = lin[k], trans[k]
        prims.append({
            "kind": int(table.kind[0, k]), "l2w": l2w.tolist(), "colour": table.colour[0, k].tolist(),
            "roughness": float(table.roughness[0, k]), "subsurface": float(table.subsurface[0, k]),
            "op": int(table.op[0, k]), "group": int(table.group[0, k]), "hair": int(table.pattern[0, k]) == Pattern.HAIR,
        })  # fmt: skip
    az = torch.linspace(0, 360, views + 1)[:-1]
    cams = orbit_cameras(az, 10.0, width=res, dtype=torch.float64)
    return {
        "primitives": prims, "resolution": res, "samples": samples, "threads": threads,
        "cameras": [{"c2w": c.tolist(), "fov_deg": 50.0} for c in cams.c2w],
        "sun_dir": [0.4, -0.6, 0.7], "sun_strength": 3.0, "sky": [0.6, 0.65, 0.7],
        "num_subtract": sum(p["op"] == Op.SUBTRACT for p in prims),
    }  # fmt: skip


def bench_cycles(blender_python: str, res: int, views: int, samples: int, threads: int) -> dict:
    spec = export_for_cycles(0, 0, res, views, samples, threads)
    with tempfile.TemporaryDirectory() as tmp:
        scene, out = Path(tmp, "scene.json"), Path(tmp, "out.json")
        spec["image_prefix"] = str(Path(tmp, "cycles_"))
        scene.write_text(json.dumps(spec))
        script = Path(__file__).resolve().parent / "_cycles_render.py"
        proc = subprocess.run([blender_python, str(script), str(scene), str(out)], capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"Cycles run failed:\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
    frames = result["seconds_per_frame"][1:] or result["seconds_per_frame"]
    return {"seconds_per_view": statistics.median(frames), "frames": len(result["seconds_per_frame"]), "setup_s": result["setup_seconds"],
            "blender": result["blender"], "primitives": len(spec["primitives"]), "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--supersample", type=int, default=1)
    parser.add_argument("--chunk-rays", type=int, default=None, help="rays per chunk (default: the renderer's, 65,536 on CPU, 4M on GPU)")
    parser.add_argument("--blender-python", default=None, help="a Python with bpy, for the Cycles comparison")
    parser.add_argument("--cycles-samples", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--kinds", default="heads,objects")
    parser.add_argument("--repeats", type=int, default=3, help="timed renders of all views; the median counts")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    settings = SynthSettings(supersample=args.supersample, chunk_rays=args.chunk_rays)
    base = baseline_seconds(device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} res={args.res} supersample={args.supersample} chunk_rays={args.chunk_rays or 'default'}")
    print(f"baseline (10x exp-mul-add over 2^24 floats + 2^22 int32 sort): {base:.3f} s")
    results = {"device": str(device), "baseline_s": base, "res": args.res, "facelift": [], "cycles": None}
    for kind in args.kinds.split(","):
        try:
            r = bench_views(kind, args.subjects, args.views, args.res, device, settings, args.repeats)
        except ImportError as err:
            print(f"[{kind}] skipped: {err}")
            continue
        results["facelift"].append(r)
        print(f"[facelift {kind}] {r['views']} views at {args.res}^2 in {r['seconds']:.2f} s (median of {args.repeats}): {r['views_per_s']:.2f} views/s "
              f"({1e3 / r['views_per_s']:.0f} ms/view, {r['seconds'] / base:.2f}x baseline), {r['primitives']} primitives/subject")
    if args.blender_python:
        c = bench_cycles(args.blender_python, args.res, max(3, args.views), args.cycles_samples, args.threads)
        results["cycles"] = c
        print(f"[cycles] Blender {c['blender']}, same head ({c['primitives']} primitives), {c['samples']} samples, "
              f"{args.threads} threads: {c['seconds_per_view']:.3f} s/view (median of {c['frames'] - 1} frames after the first; setup {c['setup_s']:.1f} s)")
        heads = next((r for r in results["facelift"] if r["kind"] == "heads"), None)
        if heads:
            ratio = c["seconds_per_view"] * heads["views_per_s"]
            print(f"facelift heads are {ratio:.1f}x faster per view than Cycles on this machine (target >= 20x)")
            results["speedup_vs_cycles"] = ratio
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
