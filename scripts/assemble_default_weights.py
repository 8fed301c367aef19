"""Assemble trained runs into the bundled weights folder (fp16 safetensors, each file <= 16 MiB).

    python scripts/assemble_default_weights.py runs/default/mvdiff/final runs/default/gslrm/final src/facelift/weights/default [VIEWS_GSLRM]

VIEWS_GSLRM (optional): a second GS-LRM run's ``final/`` for real posed views, written as ``gslrm-views/``, for when
the pipeline's GS-LRM was trained on generated views (``facelift train gslrm --generated-root``).

(``facelift train all`` does the same as its last stage; this is for runs trained stage by stage.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from facelift.training.recipe import assemble_weights


def main() -> None:
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    mvdiff, gslrm, out = (Path(a) for a in sys.argv[1:4])
    views = Path(sys.argv[4]) if len(sys.argv) == 5 else None
    try:
        sizes = assemble_weights(mvdiff, gslrm, out, views_gslrm_folder=views)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    for name, size in sizes.items():
        print(f"{size / 2**20:8.2f} MiB  {name}")
    print(f"{sum(sizes.values()) / 2**20:8.2f} MiB  total")


if __name__ == "__main__":
    main()
