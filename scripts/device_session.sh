#!/usr/bin/env bash
# One device lease, inside END_S seconds (default 430): call the device tool with carry [".whl"], a timeout_s about
# 60 s above END_S, and `bash scripts/device_session.sh`. Plan (gsplat's first use compiles its CUDA code, about two
# minutes of CPU work, and nothing else may compile it meanwhile):
#   1. gsplat compiles through the gpu tests, in the background;
#   2. the official-size diffusion timing on the otherwise idle GPU (CHECKS, default mvdiff);
#   3. the diffusion model's time-boxed training starts (scripts/device_train.py; needs no gsplat), its data rendered
#      on the GPU or by CPU workers, whichever the synth benchmark says is faster (RENDER_ON_DEVICE);
#   4. once gsplat is built: the official-size GS-LRM step timing (TRAIN_SPEED=1; beside the diffusion training,
#      so its MFU is a lower bound), then the reconstructor's time-boxed training;
#   5. both end together about a minute before END_S and are assembled into fp16 pipeline weights.
# Other check groups (scripts/device_check.sh: synth, render, bench) go in CHECKS. Results: $OUT/checks-*.log,
# $OUT/results.tgz (JSON reports, training logs), $OUT/gslrm.tgz and $OUT/pipeline.tgz (the weights).
set -o pipefail
OUT=${OUT:-/tmp/out}; export RES=${RES:-/tmp/res}; RUNS=${RUNS:-/tmp/runs}; mkdir -p "$OUT" "$RES" "$RUNS"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 FACELIFT_SITE_READY=1
END=${END_S:-430}
log="$RES/train.log"
minutes_left() { python3 -c "print(round(max(0.5, ($END - 60 - 40 - $SECONDS) / 60), 2))"; }  # 40 s start-up, 60 s to assemble
train() {  # train STAGE WORKERS LR: a time-boxed stage in the background, ending about a minute before END
  local m; m=$(minutes_left)
  echo "$1: $m minutes from ${SECONDS}s" >>"$log"
  timeout -k 5 "$(python3 -c "print(int($m * 60 + 60))")" python3 scripts/device_train.py "$1" --minutes "$m" --batch-size 16 \
    --lr "$3" --workers "$2" $ON_DEVICE --device "${DEVICE:-cuda}" --out "$RUNS" >"$RES/$1.log" 2>&1 &
}
CHECKS=pytest-gpu bash scripts/device_check.sh &
compile=$!
CHECKS=${CHECKS:-mvdiff} bash scripts/device_check.sh
# Where the training data is rendered: RENDER_ON_DEVICE=1 (the GPU), 0 (CPU workers), or auto (default): time a
# diffusion batch of heads on the GPU and render there if it beats 40 subjects/s (8 CPU workers gave 13-19).
if [ "${RENDER_ON_DEVICE:-auto}" = auto ]; then
  timeout -k 5 60 python3 benchmarks/synth.py --device cuda --kinds heads --subjects 16 --views 6 --res 64 --supersample 2 \
    --repeats 2 --json "$RES/synth_training_heads.json" >>"$log" 2>&1
  RENDER_ON_DEVICE=$(python3 -c "import json; r = json.load(open('$RES/synth_training_heads.json'))['facelift'][0]['views_per_s'] / 6; print(int(r > 40))" 2>/dev/null || echo 0)
fi
echo "render on device: $RENDER_ON_DEVICE" >>"$log"
[ "$RENDER_ON_DEVICE" = 1 ] && ON_DEVICE=--render-on-device || ON_DEVICE=
train mvdiff "${MVDIFF_WORKERS:-8}" 3e-4
wait $compile
[ -n "${TRAIN_SPEED-1}" ] && CHECKS=train-speed bash scripts/device_check.sh
train gslrm-heads "${GSLRM_WORKERS:-7}" 2e-4
wait
for stage in mvdiff gslrm-heads; do cp "$RUNS/$stage/log.jsonl" "$RES/$stage.log.jsonl" 2>/dev/null; cp "$RUNS/$stage.report.json" "$RES/" 2>/dev/null; tail -n 1 "$RES/$stage.log" >>"$log"; done
timeout 60 python3 scripts/device_train.py assemble "$RUNS/weights" --out "$RUNS" >>"$log" 2>&1 || echo "assemble failed" >>"$log"
if [ -d "$RUNS/weights/gslrm" ]; then
  tar czf "$OUT/gslrm.tgz" -C "$RUNS/weights" gslrm
  tar czf "$OUT/pipeline.tgz" -C "$RUNS/weights" --exclude=./gslrm .
fi
tar czf "$OUT/results.tgz" -C "$RES" .
cat "$log"; ls -l "$OUT"
echo "session done at ${SECONDS}s"
