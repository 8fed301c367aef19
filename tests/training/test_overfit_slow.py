"""Overfit checks: the small GS-LRM memorises one synthetic head (4 input views) to >= 28 dB on 8 views;
a small multi-view diffusion model learns the six views of one head from its front view.

Runs the core of ``benchmarks/overfit_gslrm.py`` (64 px, width 128, depth 4, patch 8, AdamW lr 3e-3).
On a 2-core CPU 28 dB took 59-68 s of training (163-189 steps; 34.2 dB after a full 4 minutes); the
test allows 4 minutes and stops as soon as the 8-view PSNR of the current model reaches 28 dB.
The diffusion check runs ``benchmarks/overfit_mvdiff.py`` with its defaults (64 px; VAE 300 steps, diffusion
600 steps, about 7 minutes on a 2-core CPU; measured 27.09 dB with DDIM-50 against a VAE ceiling of 28.62 dB).
Run with ``python -m pytest -m slow tests/training/test_overfit_slow.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "overfit_gslrm.py"


def _load_benchmark(path: Path = _BENCHMARK):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_small_gslrm_overfits_one_head_to_28_db():
    bench = _load_benchmark()
    settings = bench.OverfitSettings(minutes=4.0, target_psnr=28.0, log_every=50)
    result = bench.overfit(settings, log=None)
    curve = ", ".join(f"{row['step']}: {row['psnr']} dB @ {row['seconds']} s" for row in result.curve)
    assert result.psnr >= 28.0, f"reached {result.psnr:.2f} dB in {result.steps} steps ({result.seconds:.0f} s); curve {curve}"
    # The supervised novel views are memorised too (not only the inputs).
    assert result.psnr_novel >= 27.0, f"novel views {result.psnr_novel:.2f} dB"


@pytest.mark.slow
def test_small_diffusion_model_learns_the_six_views_of_one_head(tmp_path):
    pytest.importorskip("diffusers")
    import argparse

    bench = _load_benchmark(_BENCHMARK.parent / "overfit_mvdiff.py")
    args = argparse.Namespace(
        resolution=64, subject=0, vae_steps=300, vae_lr=1e-3, diff_steps=600, lr=1e-3, batch=2, ema=0.98,
        work_dir=str(tmp_path), save_images=None, json=None, progress=False,
    )  # fmt: skip
    result = bench.run(args)
    ceiling = result["vae_recon_psnr"]
    for sampler, floor in (("ddim50", 24.0), ("dpmpp20", 23.0)):
        got = result[sampler]
        assert got["psnr"] >= floor, f"{sampler}: {got['psnr']:.2f} dB (views {got['psnr_per_view']}), VAE ceiling {ceiling:.2f} dB"
        # Every view is learned, not only the input view: the worst view is within 4 dB of the mean.
        assert min(got["psnr_per_view"]) >= got["psnr"] - 4.0, got["psnr_per_view"]
