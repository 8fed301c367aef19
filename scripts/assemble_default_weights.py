"""Assemble trained runs into the bundled weights folder (fp16 safetensors, each file <= 16 MiB).

    python scripts/assemble_default_weights.py runs/default/mvdiff/final runs/default/gslrm/final src/facelift/weights/default
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from facelift.models.gslrm import GSLRM
from facelift.models.mvdiffusion import MultiViewDiffusion
from facelift.pipeline.facelift import FaceLiftPipeline

LIMIT = 16 * 2**20


def main() -> None:
    mvdiff, gslrm, out = (Path(a) for a in sys.argv[1:4])
    card = out / "README.md"
    kept = card.read_text() if card.is_file() else None  # the model card survives re-assembly
    pipe = FaceLiftPipeline(MultiViewDiffusion.from_pretrained(mvdiff), GSLRM.from_pretrained(gslrm))
    pipe.save_pretrained(out, dtype=torch.float16)
    if kept is not None:
        card.write_text(kept)
    total = 0
    for path in sorted(out.rglob("*")):
        if path.is_file():
            size = path.stat().st_size
            total += size
            print(f"{size / 2**20:8.2f} MiB  {path.relative_to(out)}")
            if size > LIMIT:
                raise SystemExit(f"{path} is larger than 16 MiB")
    print(f"{total / 2**20:8.2f} MiB  total")


if __name__ == "__main__":
    main()
