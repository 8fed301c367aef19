#!/usr/bin/env bash
# The second session's continuation of the bundled default weights on a CPU (src/facelift/weights/default/README.md):
#   bash scripts/continue_default_cpu.sh [DATA_DIR] [FIRST_RUNS_DIR] [RUNS_DIR]
# Continues the first session's full-precision finals (scripts/train_default_cpu.sh): the VAE with the settings that
# keep colour, then the diffusion model re-adapted to that VAE; the reconstructor beside them. One thread per run.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/heads64}
FIRST=${2:-runs/default}
RUNS=${3:-runs/cont1}
mkdir -p "$RUNS"
export OMP_NUM_THREADS=1
facelift train gslrm heads-only --init-from "$FIRST/gslrm/final" --data-root "$DATA/train" --resolution 64 --model.image-size 64 \
  --num-random 4 --batch-size 2 --lr 3e-4 --warmup-steps 100 --total-steps 4200 --image-every 1000 --ckpt-every 250 --seed 1 \
  --out-dir "$RUNS/gslrm" --device cpu --no-progress > "$RUNS/gslrm.log" 2>&1 &
facelift train vae default --init-from "$FIRST/vae/final" --data-root "$DATA/train" --batch-size 2 --lr 4e-4 --warmup-steps 50 \
  --total-steps 2500 --crop-size 32 --chroma-weight 1.0 --posterior-noise 0 --image-every 500 --ckpt-every 250 --seed 1 \
  --out-dir "$RUNS/vae" --device cpu --no-progress
facelift train mvdiff default --init-from "$FIRST/mvdiff/final" --replace-vae "$RUNS/vae/final" --data-root "$DATA/train" \
  --batch-size 4 --lr 4e-4 --warmup-steps 40 --total-steps 600 --ema-decay 0.995 --image-every 200 --ckpt-every 50 --seed 1 \
  --out-dir "$RUNS/mvdiff" --device cpu --no-progress
wait
python scripts/assemble_default_weights.py "$RUNS/mvdiff/final" "$RUNS/gslrm/final" src/facelift/weights/default
python scripts/make_default_weights_reference.py
python scripts/make_default_weights_figures.py --data data/eval64
