#!/usr/bin/env bash
# GPU checks (renderer parity and speed, synthetic-engine throughput, GS-LRM training speed and MFU,
# multi-view diffusion sampling speed at the official size, facelift bench per-stage timings), for a session lent the device machine (python3 there: torch 2.11 + CUDA,
# no gsplat/plyfile/tyro). Prepare once, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl gsplat==1.5.3 plyfile==1.1.5 imageio-ffmpeg==0.8.1
#   (same flags, with dependencies this time) ... -d .whl diffusers==0.42.1 && rm .whl/numpy-* .whl/pillow-*
#   (diffusers and its pure-Python/abi3 dependencies, about 20 MB: the machine's python3 has no diffusers; its own
#   numpy and Pillow are kept)
# then call the device tool with carry [".whl"] and the command `bash scripts/device_check.sh`
# (about 90 s of it is gsplat compiling its CUDA code on first use). Results land in $OUT.
set -eo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import gsplat, torch; print('gsplat', gsplat.__version__, 'torch', torch.__version__)"
python3 -m pytest tests/rendering -q -m "gpu or not gpu" -p no:cacheprovider 2>&1 | tee "$OUT/pytest_rendering.txt"
python3 benchmarks/render_parity.py --json "$OUT/render_parity.json" 2>&1 | tee "$OUT/render_parity.txt"
python3 benchmarks/render.py --device cuda --json "$OUT/render_cuda.json" 2>&1 | tee "$OUT/render_cuda.txt"
python3 benchmarks/synth.py --device cuda --subjects 64 --views 38 --res 256 --json "$OUT/synth_cuda.json" 2>&1 | tee "$OUT/synth_cuda.txt"
python3 benchmarks/train_gslrm.py --device cuda --preset default --batch-size 16 --steps 10 2>&1 | tee "$OUT/train_default_cuda.txt"
python3 benchmarks/train_gslrm.py --device cuda --preset default --model official --resolution 512 --batch-size 2 --steps 5 2>&1 | tee "$OUT/train_official_cuda.txt"
if python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pytest tests/models/test_mvdiffusion.py -q -m "gpu or not gpu" -p no:cacheprovider 2>&1 | tee "$OUT/pytest_mvdiffusion.txt"
  python3 benchmarks/mvdiff.py --model official --device cuda --dtype fp16 --fast-steps 20 25 --repeats 3 --json "$OUT/mvdiff_official_fp16.json" 2>&1 | tee "$OUT/mvdiff_official_fp16.txt"
  python3 benchmarks/mvdiff.py --model official --device cuda --dtype fp16 --compile --fast-steps 20 25 --repeats 3 --json "$OUT/mvdiff_official_fp16_compiled.json" 2>&1 | tee "$OUT/mvdiff_official_fp16_compiled.txt"
  python3 benchmarks/mvdiff.py --model default --device cuda --fast-steps 20 --repeats 3 --json "$OUT/mvdiff_default_cuda.json" 2>&1 | tee "$OUT/mvdiff_default_cuda.txt"
  # facelift bench (issue 7): per-stage latency and memory, default weights and random official-size models, against
  # the paper's 8 s. Preprocessing runs without face detection and matting there (no facenet-pytorch/mediapipe).
  for spec in "weights='default'" "random='default'" "random='official'"; do
    python3 -c "import json, sys, torch; from facelift.evaluation.bench import BenchSettings, run_bench, bench_table; \
r = run_bench(BenchSettings($spec, repeats=3, warmup=1, crop=False, matting=False, resolution=512), torch.device('cuda')); \
print(bench_table(r)); json.dump(r, open(sys.argv[1], 'w'), indent=2)" "$OUT/bench_$(echo "$spec" | tr -d "'" | tr = _).json" 2>&1 \
      | tee -a "$OUT/bench_cuda.txt"
  done
else
  echo "diffusers is not importable (carry its wheels, see the header): diffusion checks skipped" | tee "$OUT/mvdiff_skipped.txt"
fi
