#!/usr/bin/env bash
# Train the bundled default weights on a CPU (the recipe of src/facelift/weights/default/README.md).
#   bash scripts/train_default_cpu.sh [DATA_DIR] [RUNS_DIR]
# Every command resumes from its last checkpoint when run again, so training accumulates over sessions.
# The VAE runs first; the diffusion model and the reconstructor then run side by side, one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/heads64}
RUNS=${2:-runs/default}
python scripts/render_training_heads.py "$DATA" 6 64 4          # 1,200 heads (200 identities x 6 variants), 10 views
export OMP_NUM_THREADS=1
facelift train gslrm heads-only --data-root "$DATA/train" --resolution 64 --model.image-size 64 --num-random 4 \
  --batch-size 2 --lr 4e-4 --warmup-steps 200 --total-steps "${GSLRM_STEPS:-3000}" --image-every 500 --ckpt-every 250 \
  --out-dir "$RUNS/gslrm" --device cpu --no-progress > "$RUNS.gslrm.log" 2>&1 &
facelift train vae default --data-root "$DATA/train" --batch-size 1 --lr 1e-3 --warmup-steps 50 --total-steps "${VAE_STEPS:-600}" \
  --image-every 200 --ckpt-every 200 --out-dir "$RUNS/vae" --device cpu --no-progress
facelift train mvdiff default --vae-from "$RUNS/vae/final" --data-root "$DATA/train" --batch-size 4 --lr 5e-4 --warmup-steps 60 \
  --total-steps "${MVDIFF_STEPS:-800}" --ema-decay 0.995 --image-every 200 --ckpt-every 50 --out-dir "$RUNS/mvdiff" \
  --device cpu --no-progress
wait
python scripts/assemble_default_weights.py "$RUNS/mvdiff/final" "$RUNS/gslrm/final" src/facelift/weights/default
python scripts/make_default_weights_reference.py
