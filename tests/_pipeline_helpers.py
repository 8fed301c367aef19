"""A tiny random-weight FaceLift pipeline folder for end-to-end tests (32 px diffusion, 16 px-patch-4 GS-LRM)."""

from __future__ import annotations

from pathlib import Path

import torch

SAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "src" / "facelift" / "assets" / "astronaut.png"


def make_tiny_pipeline(folder: Path) -> Path:
    from facelift.gaussians import PruneSettings
    from facelift.models.gslrm import GSLRM, GSLRMConfig
    from facelift.models.mvdiffusion import MultiViewDiffusion, MVDiffusionConfig
    from facelift.pipeline.facelift import FaceLiftPipeline

    diffusion = MultiViewDiffusion.from_config(MVDiffusionConfig.tiny(), seed=0)
    reconstructor = GSLRM(GSLRMConfig.tiny())
    reconstructor.init_weights(torch.Generator().manual_seed(0))
    # Pruned like facelift's own trained pipelines (recipe.assemble_weights): without the reference crop box.
    FaceLiftPipeline(diffusion, reconstructor, prune_settings=PruneSettings.procedural()).save_pretrained(folder)
    return folder
