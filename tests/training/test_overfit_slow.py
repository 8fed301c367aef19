"""Overfit check: the small GS-LRM memorises one synthetic head (4 input views) to >= 28 dB on 8 views.

Runs the core of ``benchmarks/overfit_gslrm.py`` (64 px, width 128, depth 4, patch 8, AdamW lr 3e-3).
On a 2-core CPU 28 dB took 59-68 s of training (163-189 steps; 34.2 dB after a full 4 minutes); the
test allows 4 minutes and stops as soon as the 8-view PSNR of the current model reaches 28 dB.
Run with ``python -m pytest -m slow tests/training/test_overfit_slow.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "overfit_gslrm.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("overfit_gslrm", _BENCHMARK)
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
