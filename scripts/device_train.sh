#!/usr/bin/env bash
# GPU training of the bundled default weights (issue 8), for a session lent the device machine: continues from
# the weights in the repo (`facelift train all --from-shipped`: diffusion model and reconstructor heads stage),
# renders its training data on the fly in DataLoader workers, and writes to $OUT the assembled fp16 pipeline
# weights (weights/, every file <= 16 MiB, checked), the stages' log.jsonl and a JSON report with the wall time.
# Prepare the wheels once as scripts/device_check.sh explains (.whl with gsplat, plyfile and diffusers with its
# dependencies: the machine's python3 has torch but neither diffusers nor tyro, so the recipe is called from Python),
# then call the device tool with carry [".whl"], timeout_s 600 and the command `bash scripts/device_train.sh`.
# STEPS_SCALE (default 2) multiplies the recipe's steps (at 1: diffusion 800 steps of batch 4, reconstructor 1500 of
# batch 2, all at 64 px); WORKERS (default 12) CPU processes render the data, or RENDER_ON_DEVICE=1 renders it on
# the GPU in the training process. Back here: evaluate $OUT/weights with
# `facelift eval --weights DIR` against the shipped weights, and copy it over src/facelift/weights/default (the model
# card README.md stays) only if it is better; record the card, steps and wall time in the model card.
set -eo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 - "$OUT" "${STEPS_SCALE:-2}" "${WORKERS:-12}" "${RENDER_ON_DEVICE:-0}" <<'PY' 2>&1 | tee "$OUT/train.txt"
import json, logging, sys, time
from pathlib import Path

import torch

from facelift.training.recipe import RecipeConfig, train_all

logging.basicConfig(level=logging.INFO, format="%(message)s")
out, scale, workers, on_device = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
config = RecipeConfig(
    from_shipped=True, device="cuda", steps_scale=scale, workers=0 if on_device else workers, render_on_device=on_device,
    out_dir=Path("/tmp/runs"), weights_out=out / "weights", progress=False,
)
start = time.perf_counter()
report = train_all(config)
report["wall_s"] = time.perf_counter() - start
report["device"] = torch.cuda.get_device_name()
report["steps_scale"] = scale
(out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps({k: v for k, v in report.items() if k != "assemble"}))
PY
for stage in mvdiff gslrm-heads; do cp "/tmp/runs/$stage/log.jsonl" "$OUT/$stage.log.jsonl" 2>/dev/null || true; done
