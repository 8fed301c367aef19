"""Regenerate tests/pipeline/default_weights_reference.npz: small outputs of the bundled weights that
tests/pipeline/test_default_weights.py compares against (run after changing the shipped weights).

    python scripts/make_default_weights_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pipeline"))
from test_default_weights import REFERENCE, reference_outputs  # noqa: E402

if __name__ == "__main__":
    outputs = reference_outputs()
    np.savez_compressed(REFERENCE, **{k: v.numpy() for k, v in outputs.items()})
    print(f"wrote {REFERENCE}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items()))
