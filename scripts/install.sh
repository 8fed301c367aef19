#!/usr/bin/env bash
# Installs facelift and everything its tests need, offline-safe on the project machines:
# torch is pinned to the 2.13.0 CPU build that lies on local disk there (an unpinned torch would pull a
# multi-GB CUDA build). Packages that pin an old torch are installed with --no-deps here, never by pip's
# resolver (none yet).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
python -c "import facelift, torch; print(f'facelift {facelift.__version__} installed (torch {torch.__version__})')"
