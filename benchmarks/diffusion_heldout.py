"""Does the diffusion model learn heads or memorise its training set? Its loss on seen and unseen heads.

Usage::

    python benchmarks/diffusion_heldout.py --train-data data/heads64/train [--model FOLDER ...] [--baseline default]
        [--subjects 30] [--timesteps 50,150,250,350,450,550,650,750,850,950]

Three sets of ``--subjects`` heads each, at the training folder's resolution, on white:

- **seen**: subjects of the training folder (``--train-data``, the ``facelift synth`` layout the model trained
  on), one per identity, the identities spread over the folder;
- **unseen variants**: the same identities, each with the first appearance variant the folder does not hold
  (rendered here with 2 x 2 supersampling and rounded to 8 bits, as ``facelift synth`` writes them);
- **held-out identities**: the ``test`` split's first subjects (identities no training split holds), rendered
  the same way.

For each model (the baseline first; ``default`` is the bundled diffusion model), every subject's v-prediction
MSE at each ``--timesteps`` value, both conditions kept, with the same noise for row ``j`` of every set and every
model (``facelift.training.mvdiff_trainer.fixed_timestep_loss``). Printed: each set's mean ± standard error
over subjects, the paired difference to the baseline (same subjects, same noise) and its ratio, and the
generalisation gap (unseen variants minus seen, paired by identity). A memorising model shows a gap that grows
from one training run to the next while the seen loss falls; a model still learning the heads lowers all three
sets together.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from facelift.models.mvdiffusion import MultiViewDiffusion
from facelift.pipeline.facelift import DEFAULT_WEIGHTS
from facelift.synthetic.dataset import HEAD_VARIANTS, SyntheticFolderDataset, render_subject
from facelift.training.mvdiff_trainer import fixed_timestep_loss

DEFAULT_TIMESTEPS = "50,150,250,350,450,550,650,750,850,950"
_NOISE_SEED = 1000


def load_model(spec: str):
    """``default`` (the bundled pipeline's diffusion model) or a ``MultiViewDiffusion`` folder, in float32."""
    folder = DEFAULT_WEIGHTS / "mvdiffusion" if spec == "default" else Path(spec)
    if not (folder / "facelift_mvdiffusion.json").is_file():
        raise SystemExit(f"error: {folder} is not a facelift multi-view diffusion folder (no facelift_mvdiffusion.json)")
    return MultiViewDiffusion.from_pretrained(folder).float().eval()


def rendered_views(index: int, split: str, resolution: int) -> torch.Tensor:
    """``[6, 3, H, W]`` the six FaceLift views of a head rendered as ``facelift synth`` writes them, on white."""
    rgba = (render_subject("heads", index, split, resolution=resolution, num_random=0, supersample=2).rgba.clamp(0, 1) * 255).round() / 255
    return rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])


def build_sets(train_data: Path, subjects: int) -> dict[str, torch.Tensor]:
    """``{set name: [N, 6, 3, H, W]}`` the three sets (module docstring)."""
    try:
        folder = SyntheticFolderDataset(train_data, mode="diffusion", background="white")
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    by_identity: dict[int, list[tuple[int, int]]] = {}
    for i, path in enumerate(folder.folders):
        index = int(path.name.rsplit("_", 1)[-1])
        by_identity.setdefault(index // HEAD_VARIANTS, []).append((index % HEAD_VARIANTS, i))
    identities = sorted(i for i, held in by_identity.items() if len(held) < HEAD_VARIANTS)
    if len(identities) < subjects:
        raise SystemExit(f"error: {train_data} holds {len(identities)} identities with a variant left out; --subjects {subjects} needs as many")
    chosen = [identities[round(k * (len(identities) - 1) / max(subjects - 1, 1))] for k in range(subjects)]
    seen, unseen = [], []
    for identity in chosen:
        held = dict(by_identity[identity])
        seen.append(folder[held[min(held)]]["images"])
        variant = next(v for v in range(HEAD_VARIANTS) if v not in held)
        unseen.append(rendered_views(identity * HEAD_VARIANTS + variant, "train", seen[-1].shape[-1]))
    resolution = seen[0].shape[-1]
    held_out = [rendered_views(k, "test", resolution) for k in range(subjects)]
    return {"seen": torch.stack(seen), "unseen variants": torch.stack(unseen), "held-out identities": torch.stack(held_out)}


def measure(model, images: torch.Tensor, timesteps: list[int]) -> torch.Tensor:
    """``[N]`` each subject's loss averaged over the timesteps, subject ``j`` with noise seeded by ``j``."""
    rows = [fixed_timestep_loss(model, images[j : j + 1], timesteps, torch.Generator().manual_seed(_NOISE_SEED + j)) for j in range(len(images))]
    return torch.cat(rows).mean(1)


def _mean_se(x: torch.Tensor) -> str:
    se = float(x.std()) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{float(x.mean()):.5f} ± {se:.5f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-data", type=Path, required=True, help="the training split folder (facelift synth layout)")
    parser.add_argument("--model", nargs="*", default=[], help="MultiViewDiffusion folders to measure")
    parser.add_argument("--baseline", default="default", help="baseline model (default: the bundled one)")
    parser.add_argument("--subjects", type=int, default=30)
    parser.add_argument("--timesteps", default=DEFAULT_TIMESTEPS, help="comma-separated training timesteps in [0, 1000)")
    args = parser.parse_args()
    try:
        timesteps = [int(t) for t in args.timesteps.split(",")]
    except ValueError:
        raise SystemExit(f"error: --timesteps takes comma-separated integers, got {args.timesteps!r}") from None
    if not timesteps or min(timesteps) < 0 or max(timesteps) >= 1000:
        raise SystemExit(f"error: --timesteps must lie in [0, 1000), got {args.timesteps!r}")
    if args.subjects < 2:
        raise SystemExit("error: --subjects must be at least 2 (standard errors)")
    sets = build_sets(args.train_data, args.subjects)
    shape = tuple(next(iter(sets.values())).shape)
    print(f"{args.subjects} subjects per set, views {shape[1:]}, {len(timesteps)} timesteps ({args.timesteps}); v-MSE, unweighted")
    print("| model | set | v-MSE | Δ vs baseline (paired) | ratio |\n|---|---|---|---|---|")
    base: dict[str, torch.Tensor] = {}
    for spec in [args.baseline, *args.model]:
        model = load_model(spec)
        losses = {name: measure(model, images, timesteps) for name, images in sets.items()}
        for name, x in losses.items():
            b = base.get(name, x)
            print(f"| {spec} | {name} | {_mean_se(x)} | {_mean_se(x - b)} | {float(x.mean() / b.mean()):.3f} |")
        print(f"| {spec} | gap: unseen variants - seen | {_mean_se(losses['unseen variants'] - losses['seen'])} | | |")
        base = base or losses


if __name__ == "__main__":
    main()
