"""One time-boxed GPU continuation of the bundled default weights (issue 8), run by scripts/device_session.sh.

    python3 scripts/device_train.py STAGE --minutes M [--batch-size B] [--lr LR] [--workers W] [--out DIR]
    python3 scripts/device_train.py assemble --out DIR WEIGHTS_OUT

STAGE is ``mvdiff`` or ``gslrm-heads``: the recipe's stage config continuing the shipped weights
(``facelift train all --from-shipped``), with a GPU-sized batch, on-the-fly data rendered by ``--workers`` CPU
processes (or, with ``--render-on-device``, by the synthetic engine on the GPU itself), and a time box (``max_minutes``: the cosine schedule is fitted to end when the minutes are up).
``assemble`` writes both finished stages under ``--out`` as one fp16 pipeline weights folder. Plain argparse:
the device machine's Python has no tyro.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from facelift.pipeline.facelift import DEFAULT_WEIGHTS
from facelift.training.recipe import RecipeConfig, assemble_weights, assembled_reconstructors, recipe_stage_configs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["mvdiff", "gslrm-heads", "assemble"])
    parser.add_argument("weights_out", nargs="?", type=Path, help="assemble: the pipeline weights folder to write")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--render-on-device", action="store_true", help="render the training data on --device in the training process (no workers)")
    parser.add_argument("--supersample", type=int, default=2, help="on-the-fly anti-aliasing (2: as the shipped weights' data)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("/tmp/runs"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.stage == "assemble":
        if args.weights_out is None:
            parser.error("assemble needs WEIGHTS_OUT")
        # The stages continued the bundled weights: a gslrm-views/ there gets the heads stage's result (see the function).
        gslrm, views = assembled_reconstructors(args.out / "gslrm-heads" / "final", DEFAULT_WEIGHTS)
        sizes = assemble_weights(args.out / "mvdiff" / "final", gslrm, args.weights_out, views_gslrm_folder=views)
        print(json.dumps({"assembled": str(args.weights_out), "mib": round(sum(sizes.values()) / 2**20, 1)}))
        return 0

    workers = 0 if args.render_on_device else args.workers
    recipe = RecipeConfig(
        from_shipped=True, device=args.device, workers=workers, render_on_device=args.render_on_device, out_dir=args.out, progress=False
    )
    config = recipe_stage_configs(recipe)[args.stage]
    changes = {
        "batch_size": args.batch_size, "total_steps": 100_000, "warmup_steps": args.warmup_steps, "max_minutes": args.minutes,
        "image_every": 0, "ckpt_every": 500, "log_every": 10, "tensorboard": False, "supersample": args.supersample,
    }  # fmt: skip
    if args.lr is not None:
        changes["lr"] = args.lr
    if args.stage == "gslrm-heads":
        changes["num_random"] = 32  # renders only the views drawn; more candidates, more varied supervision
    config = replace(config, **changes)
    if args.stage == "mvdiff":
        from facelift.training.mvdiff_trainer import train_mvdiff as run
    else:
        from facelift.training.gslrm_trainer import train as run
    start = time.perf_counter()
    result = run(config)
    report = {
        "stage": args.stage, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "steps": result.step, "horizon": result.horizon, "batch_size": config.batch_size, "lr": config.lr,
        "workers": config.workers, "render_on_device": args.render_on_device, "supersample": config.supersample, "minutes_budget": args.minutes, "wall_s": round(time.perf_counter() - start, 1),
        "final_loss": result.final_loss, "skipped_steps": result.skipped_steps, "final": str(result.pretrained_dir),
    }  # fmt: skip
    print(json.dumps(report))
    (args.out / f"{args.stage}.report.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if result.pretrained_dir is not None else 1


if __name__ == "__main__":
    sys.exit(main())
