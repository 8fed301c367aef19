"""Multi-view latent diffusion (needs ``diffusers``; the authors' weights also need ``transformers``).

Import from here: ``from facelift.models.mvdiffusion import MultiViewDiffusion, MVDiffusionConfig``. Names
are resolved lazily, so the config and the attention processor import without diffusers (the rest of
facelift, the CLI included, works on a machine that lacks it).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ATTENTION_MODES": "attention", "AttentionMode": "attention", "MultiViewAttnProcessor": "attention",
    "set_multiview_attention": "attention", "MVDiffusionConfig": "config", "REFERENCE_SCHEDULER": "config",
    "VIEW_PROMPT": "config", "ClipImageEmbedder": "conditioning", "ImageEncoder": "conditioning",
    "noise_level_embedding": "conditioning", "MultiViewDiffusion": "model", "MultiViewOutput": "model", "Solver": "model",
    "make_scheduler": "model", "remap_view_embeddings": "model",
}  # fmt: skip

__all__ = list(_EXPORTS)  # noqa: PLE0605 (the lazily resolved names)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
