"""Multi-view latent diffusion (needs ``diffusers``; the authors' weights also need ``transformers``).

Import from here: ``from facelift.models.mvdiffusion import MultiViewDiffusion, MVDiffusionConfig``.
"""

from facelift.models.mvdiffusion.attention import (
    ATTENTION_MODES,
    AttentionMode,
    MultiViewAttnProcessor,
    set_multiview_attention,
)
from facelift.models.mvdiffusion.conditioning import (
    ClipImageEmbedder,
    ImageEncoder,
    noise_level_embedding,
)
from facelift.models.mvdiffusion.config import (
    REFERENCE_SCHEDULER,
    VIEW_PROMPT,
    MVDiffusionConfig,
)
from facelift.models.mvdiffusion.model import (
    MultiViewDiffusion,
    MultiViewOutput,
    Solver,
    make_scheduler,
)

__all__ = [
    "ATTENTION_MODES",
    "REFERENCE_SCHEDULER",
    "VIEW_PROMPT",
    "AttentionMode",
    "ClipImageEmbedder",
    "ImageEncoder",
    "MVDiffusionConfig",
    "MultiViewAttnProcessor",
    "MultiViewDiffusion",
    "MultiViewOutput",
    "Solver",
    "make_scheduler",
    "noise_level_embedding",
    "set_multiview_attention",
]  # fmt: skip
