#!/usr/bin/env bash
# GPU checks for a session lent the device machine (python3 there: torch 2.11 + CUDA; no gsplat, plyfile, tyro or
# diffusers). Groups (CHECKS, default all, in this order):
#   pytest-gpu:  the tests marked gpu (gsplat against the portable renderer, diffusion and refinement on CUDA); gsplat compiles
#                its CUDA code on first use (about 2 minutes), so run this before anything else renders
#   synth:       synthetic-engine throughput, heads and objects, 16 subjects x 38 views at 256^2; and a diffusion
#                training batch (16 heads x 6 views, 64 px, 2x2 supersampled)
#   mvdiff:      multi-view diffusion sampling at the official size (random weights, fp16, DDIM-50, DPM-Solver++
#                15/20/25): eager, channels-last, and torch.compile of the UNet
#   train-speed: a GS-LRM training step at the official size (512 px, batch 4, gradient checkpointing; without it
#                batch 2 ran out of memory on an H100) and the default size: samples/s and MFU
#   render:      the parity benchmark against the portable renderer and the render benchmark on both backends
#   bench:       facelift bench per stage, random official-size models (no turntable video: no ffmpeg there), and
#                the bundled weights with 50 test-time refinement steps
# Every step has its own time limit and a failing step does not stop the others. Output: $OUT/checks-GROUPS.log
# (everything printed) and the JSON results in $RES (default /tmp/res; scripts/device_session.sh packs them).
# Prepare the wheels once, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 -d .whl gsplat==1.5.3 plyfile==1.1.5 diffusers==0.42.1 importlib-metadata \
#     tyro docstring-parser shtab typeguard
# (imageio-ffmpeg is 68 MB, over what a call may carry with the repo), then call the device tool with carry [".whl"]
# and the command `bash scripts/device_session.sh` (checks and a time-boxed training run) or this script.
set -o pipefail
OUT=${OUT:-/tmp/out}; RES=${RES:-/tmp/res}; mkdir -p "$OUT" "$RES"
if [ -z "$FACELIFT_SITE_READY" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
fi

step() {  # step LOG SECONDS NAME COMMAND...: run with a time limit, log everything, never stop the script
  local log=$1 limit=$2 name=$3; shift 3
  echo "=== $name (limit ${limit}s, at ${SECONDS}s)" >>"$log"
  local start=$SECONDS
  timeout -k 5 "$limit" "$@" >>"$log" 2>&1
  echo "=== $name: exit $? after $((SECONDS - start))s" >>"$log"
}

log="$OUT/checks-$(echo ${CHECKS:-all} | tr ' ' '+').log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$log" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >>"$log" 2>&1
for group in ${CHECKS:-pytest-gpu synth mvdiff train-speed render bench}; do
  case $group in
  pytest-gpu)  # the first gsplat use compiles its CUDA code (about 2 minutes): nothing else may compile it meanwhile
    python3 -c "import gsplat; print('gsplat', gsplat.__version__)" >>"$log" 2>&1
    step "$log" 240 pytest-gpu python3 -m pytest tests/rendering tests/models/test_mvdiffusion.py tests/pipeline/test_refine.py -q -m gpu -p no:cacheprovider
    ;;
  synth)
    step "$log" 60 synth-heads python3 benchmarks/synth.py --device cuda --kinds heads --subjects 16 --views 38 --res 256 --repeats 2 --json "$RES/synth_heads.json"
    step "$log" 45 synth-objects python3 benchmarks/synth.py --device cuda --kinds objects --subjects 16 --views 38 --res 256 --repeats 2 --json "$RES/synth_objects.json"
    step "$log" 45 synth-training-heads python3 benchmarks/synth.py --device cuda --kinds heads --subjects 16 --views 6 --res 64 --supersample 2 --repeats 3 --json "$RES/synth_training_heads.json"
    ;;
  mvdiff)
    step "$log" 90 mvdiff-official-fp16 python3 benchmarks/mvdiff.py --model official --device cuda --dtype fp16 --fast-steps 15 20 25 --repeats 2 --json "$RES/mvdiff_official_fp16.json"
    step "$log" 60 mvdiff-official-fp16-cl python3 benchmarks/mvdiff.py --model official --device cuda --dtype fp16 --channels-last --fast-steps 15 25 --repeats 2 --json "$RES/mvdiff_official_fp16_cl.json"
    step "$log" 240 mvdiff-official-fp16-compile python3 benchmarks/mvdiff.py --model official --device cuda --dtype fp16 --compile --fast-steps 15 25 --repeats 2 --json "$RES/mvdiff_official_fp16_compile.json"
    ;;
  train-speed)
    step "$log" 75 train-gslrm-official python3 benchmarks/train_gslrm.py --device cuda --preset default --model official --resolution 512 --batch-size 4 --steps 4 --grad-checkpointing
    step "$log" 50 train-gslrm-default python3 benchmarks/train_gslrm.py --device cuda --preset default --batch-size 16 --steps 8
    ;;
  render)
    step "$log" 60 render-parity python3 benchmarks/render_parity.py --json "$RES/render_parity.json"
    step "$log" 40 render-speed python3 benchmarks/render.py --device cuda --json "$RES/render_cuda.json"
    ;;
  bench)
    step "$log" 90 bench-official python3 -c "import json, sys, torch; from facelift.evaluation.bench import BenchSettings, run_bench, bench_table; \
r = run_bench(BenchSettings(random='official', repeats=2, warmup=1, frames=0, mesh_format='none', crop=False, matting=False, resolution=512), torch.device('cuda')); \
print(bench_table(r)); json.dump(r, open(sys.argv[1], 'w'), indent=2)" "$RES/bench_official.json"
    # the bundled 64 px weights with 50 refinement steps (gsplat backend): the refinement stage on a GPU
    step "$log" 60 bench-default-refine python3 -c "import json, sys, torch; from facelift.evaluation.bench import BenchSettings, run_bench, bench_table; \
r = run_bench(BenchSettings(repeats=3, warmup=1, steps=20, solver='dpmsolver++', frames=0, mesh_format='none', crop=False, matting=False, refine_steps=50), torch.device('cuda')); \
print(bench_table(r)); json.dump(r, open(sys.argv[1], 'w'), indent=2)" "$RES/bench_default_refine.json"
    ;;
  *) echo "unknown check group $group" >>"$log" ;;
  esac
done
