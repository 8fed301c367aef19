"""Every benchmark script imports against the current package (a renamed helper once broke one unnoticed until
it ran on a GPU machine)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("[!_]*.py")))
def test_benchmark_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_bench_{script[:-3]}", BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # runs the imports and definitions, not main()
    assert callable(getattr(module, "main", None))


def test_diffusion_heldout_sets_and_loss(tmp_path, monkeypatch):
    # The three sets of benchmarks/diffusion_heldout.py on a tiny training folder: one subject per identity
    # from the folder, the same identities' first missing variant and held-out identities, rendered alike.
    pytest.importorskip("diffusers")
    from facelift.models.mvdiffusion import MultiViewDiffusion
    from facelift.synthetic.dataset import render_subject, write_subject
    from facelift.training.mvdiff_trainer import MVDIFF_PRESETS

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import diffusion_heldout as bench

    for index in (0, 1, 50):  # identity 0 variants 0 and 1, identity 1 variant 0
        write_subject(tmp_path, render_subject("heads", index, "train", resolution=16, num_random=0, supersample=1))
    sets = bench.build_sets(tmp_path / "train", 2)
    assert {k: tuple(v.shape) for k, v in sets.items()} == {k: (2, 6, 3, 16, 16) for k in ("seen", "unseen variants", "held-out identities")}
    # Identity 0's unseen variant is 2 (0 and 1 are in the folder): the renders match a fresh render of index 2.
    torch.testing.assert_close(sets["unseen variants"][0], bench.rendered_views(2, "train", 16))
    assert (sets["seen"] - sets["unseen variants"]).abs().mean() > 0.01
    assert (sets["seen"] - sets["held-out identities"]).abs().mean() > 0.01
    model = MultiViewDiffusion.from_config(MVDIFF_PRESETS["tiny"].model).eval()
    loss = bench.measure(model, sets["seen"], [100, 900])
    assert loss.shape == (2,) and bool(torch.isfinite(loss).all()) and torch.equal(loss, bench.measure(model, sets["seen"], [100, 900]))
    with pytest.raises(SystemExit, match="--subjects 3"):
        bench.build_sets(tmp_path / "train", 3)
