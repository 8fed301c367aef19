"""Training machinery: optimiser and schedule, losses, checkpoints, metric logging and the trainers."""

from facelift.training.augment import InputDegradation, degrade_views
from facelift.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from facelift.training.losses import (
    ReconstructionLoss,
    VGGPerceptualLoss,
    reconstruction_loss,
    ssim,
)
from facelift.training.optim import (
    StepGuard,
    build_adamw,
    clip_and_check,
    warmup_cosine,
)

__all__ = [
    "InputDegradation", "ReconstructionLoss", "StepGuard", "degrade_views", "VGGPerceptualLoss", "build_adamw", "clip_and_check", "latest_checkpoint",
    "load_checkpoint", "reconstruction_loss", "save_checkpoint", "ssim", "warmup_cosine",
]  # fmt: skip
