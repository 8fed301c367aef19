"""GS-LRM training: render the predicted Gaussians at every sampled view and fit the images.

The loop itself (DDP, data order, guard, logs, checkpoints, bit-exact resume) is
:func:`facelift.training.loop.run_training`; this module holds the reconstructor's config, presets, data
and loss.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from facelift.cameras.cameras import Cameras
from facelift.cameras.orbits import FACELIFT_VIEW_NAMES
from facelift.models.gslrm import GSLRM, GSLRMConfig
from facelift.rendering import rasterize
from facelift.training.augment import InputDegradation, degrade_views
from facelift.training.loop import (
    IndexedSubjects,
    StepOutput,
    TrainResult,
    check_loop_config,
    config_to_dict,
    run_training,
    seeded_generator,
)
from facelift.training.losses import (
    ReconstructionLoss,
    VGGPerceptualLoss,
    reconstruction_loss,
)

__all__ = ["GSLRM_PRESETS", "GSLRMTrainConfig", "TrainResult", "forward_loss", "train"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GSLRMTrainConfig:
    """Training run of the GS-LRM reconstructor (one stage)."""

    preset: str = "default"
    """Name of the preset this run started from (recorded in the logs)."""
    model: GSLRMConfig = field(default_factory=GSLRMConfig.default)
    """Architecture (``init_from`` weights must match it)."""
    data: Literal["objects", "heads"] = "objects"
    """Training subjects: procedural objects (stage I/II) or synthetic heads (stage III)."""
    data_root: Path | None = None
    """A split folder written by ``facelift synth`` (``OUT/train``); None renders samples on the fly."""
    resolution: int = 128
    """Image size in pixels (square; divisible by the patch size)."""
    views_per_sample: int = 8
    """Views drawn per subject; all of them are rendered and supervised."""
    input_views: int = 4
    """How many of those views (chosen at random per sample) feed the model."""
    inputs: Literal["random", "fixed"] = "random"
    """random: ``input_views`` of the sample's views at random (the reference); fixed: the six FaceLift views
    always feed the model (as in the pipeline; needs ``input_views == 6``) and ``views_per_sample - 6``
    random views are supervised besides them."""
    degrade_inputs: float = 0.0
    """Probability that a sample's input views are degraded like generated views (blur, shift, colour,
    noise; see ``facelift.training.augment``); the supervision targets stay clean."""
    degradation: InputDegradation = field(default_factory=InputDegradation)
    """Largest degradations (drawn per view)."""
    generated_root: Path | None = None
    """A folder of the diffusion model's views of the ``data_root`` subjects (``facelift synth generated``,
    :mod:`facelift.training.generated`); used with ``generated_inputs``."""
    generated_inputs: float = 0.0
    """Probability that a sample's inputs are the diffusion model's six views of its subject (one of the
    folder's samples at random) instead of the clean fixed views; the supervision targets stay the renders.
    Needs ``inputs='fixed'``, ``data_root`` and ``generated_root``; training then draws only the subjects the
    generated folder covers; takes precedence over ``degrade_inputs``."""
    num_random: int = 32
    """Random views per subject to draw from, besides the six fixed ones (on-the-fly data only)."""
    batch_size: int = 2
    """Samples per step on each process."""
    lr: float = 4e-4
    """Peak learning rate."""
    weight_decay: float = 0.05
    """AdamW weight decay on parameters with >= 2 dims."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    total_steps: int = 2000
    """Optimiser steps of the whole run (the cosine reaches ``min_lr_ratio`` here)."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of ``lr``."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this."""
    skip_factor: float = 20.0
    """Skip a step whose gradient norm exceeds ``skip_factor * grad_clip`` (or whose loss is not finite)."""
    perceptual_weight: float = 0.5
    """Weight of the perceptual term (``1 - SSIM``, or VGG19 with ``vgg_weights``)."""
    vgg_weights: Path | None = None
    """Local torchvision-layout VGG19 state dict (e.g. vgg19-dcbb9e9d.pth) for the official perceptual loss; torchvision itself is not needed."""
    log_every: int = 10
    """Write metrics every this many steps."""
    image_every: int = 200
    """Save a target/render grid PNG every this many steps (0: never)."""
    ckpt_every: int = 500
    """Save a resumable checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept in ``out_dir/checkpoints`` (older ones are deleted)."""
    out_dir: Path = Path("runs/gslrm/default")
    """Run folder: checkpoints/, images/, log.jsonl, tensorboard/ and final/ (``save_pretrained`` weights)."""
    seed: int = 0
    """Seeds the initial weights, data order, views and input choice."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N (under torchrun, CUDA ranks use cuda:LOCAL_RANK)."""
    bf16: bool = True
    """bf16 autocast of the network on CUDA (rendering and loss stay fp32; ignored on CPU)."""
    init_from: Path | None = None
    """A ``save_pretrained`` folder to start from with a fresh optimiser (stage-2 fine-tuning)."""
    workers: int = 0
    """DataLoader worker processes rendering samples (0: in the training process)."""
    render_on_device: bool = False
    """Render on-the-fly training data on the training device in the training process (a GPU run then
    needs neither a dataset upload nor CPU workers; needs ``workers == 0``)."""
    supersample: int = 1
    """Anti-aliasing of on-the-fly data: samples per pixel along each axis (2 matches ``facelift synth``; ~3x slower)."""
    tensorboard: bool = True
    """Also log to TensorBoard when ``torch.utils.tensorboard`` is importable."""
    progress: bool = True
    """Show a progress bar (rank 0)."""
    max_minutes: float | None = None
    """Time box: end the run after this many minutes of training, fitting the lr schedule's end to it (see ``run_training``)."""

    def __post_init__(self) -> None:
        check_loop_config(self, extra_positive=("resolution", "views_per_sample", "input_views"))
        if self.input_views > self.views_per_sample:
            raise ValueError(f"input_views ({self.input_views}) must be <= views_per_sample ({self.views_per_sample})")
        if self.inputs not in ("random", "fixed"):
            raise ValueError(f"inputs must be 'random' or 'fixed', got {self.inputs!r}")
        if self.inputs == "fixed" and self.input_views != len(FACELIFT_VIEW_NAMES):
            raise ValueError(f"inputs='fixed' feeds the {len(FACELIFT_VIEW_NAMES)} FaceLift views: set input_views={len(FACELIFT_VIEW_NAMES)}")
        if not 0 <= self.degrade_inputs <= 1:
            raise ValueError(f"degrade_inputs is a probability, got {self.degrade_inputs}")
        if not 0 <= self.generated_inputs <= 1:
            raise ValueError(f"generated_inputs is a probability, got {self.generated_inputs}")
        if self.generated_inputs > 0 and (self.generated_root is None or self.data_root is None or self.inputs != "fixed"):
            raise ValueError("generated_inputs needs generated_root, data_root and inputs='fixed' (the generated views replace the six fixed ones)")
        if self.resolution % self.model.patch_size:
            raise ValueError(f"resolution {self.resolution} must be divisible by the patch size {self.model.patch_size}")
        if self.num_random < 0:
            raise ValueError(f"num_random must be >= 0, got {self.num_random}")
        if self.data not in ("objects", "heads"):
            raise ValueError(f"data must be 'objects' or 'heads', got {self.data!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (paths as strings)."""
        return config_to_dict(self)


def _presets() -> dict[str, GSLRMTrainConfig]:
    base = GSLRMTrainConfig()
    pretrain = replace(base, preset="objects_pretrain", data="objects", lr=4e-4, total_steps=20000, warmup_steps=500, out_dir=Path("runs/gslrm/objects_pretrain"))
    return {
        "default": base,
        "objects_pretrain": pretrain,
        # Stage III of the reference: heads from the objects model, fresh optimiser, lower lr.
        "heads_finetune": replace(
            base, preset="heads_finetune", data="heads", lr=1e-4, total_steps=5000, warmup_steps=100,
            init_from=pretrain.out_dir / "final", out_dir=Path("runs/gslrm/heads_finetune"),
        ),
        # Ablation: heads from scratch, same budget as pre-training + fine-tuning.
        "heads_only": replace(base, preset="heads_only", data="heads", lr=4e-4, total_steps=25000, warmup_steps=500, out_dir=Path("runs/gslrm/heads_only")),
        "tiny": replace(
            base, preset="tiny", model=GSLRMConfig.tiny(), resolution=16, num_random=4, batch_size=1, total_steps=20,
            warmup_steps=2, log_every=1, image_every=10, ckpt_every=10, out_dir=Path("runs/gslrm/tiny"),
        ),
    }  # fmt: skip


GSLRM_PRESETS: dict[str, GSLRMTrainConfig] = _presets()
"""Named starting points: ``default``, ``objects_pretrain``, ``heads_finetune``, ``heads_only`` and ``tiny``."""


_INPUT_TAG, _DEGRADE_TAG, _GENERATED_TAG = 2, 3, 5


class _ReconstructorSamples(IndexedSubjects):
    """:class:`IndexedSubjects` plus ``input_index [V_in]`` (which of the sample's views feed the model) and,
    when inputs are degraded or generated, ``input_images [V_in, 3, H, W]`` (what the model sees instead of
    those views)."""

    def __init__(self, config: GSLRMTrainConfig) -> None:
        super().__init__(
            config.data, config.data_root, mode="reconstructor", resolution=config.resolution,
            num_views=config.views_per_sample, num_random=config.num_random, background="white", seed=config.seed,
            supersample=config.supersample, keep_fixed=config.inputs == "fixed",
        )  # fmt: skip
        self.input_views, self.fixed_inputs = config.input_views, config.inputs == "fixed"
        self.degrade, self.degradation = config.degrade_inputs, config.degradation
        self.generated_p, self.generated = config.generated_inputs, None
        if config.generated_inputs > 0:
            from facelift.training.generated import GeneratedViews

            self.generated = GeneratedViews(config.generated_root)
            covered = [f for f in self.folder.folders if self.generated.has(f.name)]
            if not covered:
                raise ValueError(f"{config.generated_root} holds the generated views of none of the subjects of {config.data_root}")
            if len(covered) < len(self.folder.folders):  # generating is the costly part: train on what is there
                logger.warning(
                    "training on the %d of the %d subjects of %s that %s covers", len(covered), len(self.folder.folders), config.data_root, config.generated_root
                )
                self.folder.folders = covered
                self.size = len(covered)

    def _generated_inputs(self, k: int) -> Tensor | None:
        """The diffusion model's views of sample ``k``'s subject ``[6, 3, H, W]``, or None (clean inputs this time)."""
        g = seeded_generator(self.seed, _GENERATED_TAG, int(k))
        if self.generated is None or float(torch.rand((), generator=g)) >= self.generated_p:
            return None
        _, subject = self._subject(int(k))
        sample = int(torch.randint(self.generated.num_samples, (1,), generator=g))
        views = self.generated.load(self.folder.folders[subject].name, sample)
        if views.shape[-1] != self.resolution:
            views = torch.nn.functional.interpolate(views, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
        return views

    def __getitem__(self, k: int) -> dict[str, Any]:
        item = super().__getitem__(k)
        if self.fixed_inputs:  # the sample starts with the fixed views, in order
            index = torch.arange(self.input_views)
        else:
            index = torch.randperm(item["images"].shape[0], generator=seeded_generator(self.seed, _INPUT_TAG, int(k)))[: self.input_views]
        out = {"images": item["images"], "c2w": item["c2w"], "K": item["K"], "input_index": index}
        generated = self._generated_inputs(k)
        if generated is not None:
            out["input_images"] = generated
        elif self.degrade > 0 or self.generated is not None:  # every sample carries input_images (they collate)
            g = seeded_generator(self.seed, _DEGRADE_TAG, int(k))
            inputs = item["images"][index]
            if float(torch.rand((), generator=g)) < self.degrade:
                inputs = degrade_views(inputs, g, self.degradation)
            out["input_images"] = inputs
        return out


def _build_model(config: GSLRMTrainConfig, device: torch.device) -> GSLRM:
    if config.init_from is not None:
        model = GSLRM.from_pretrained(config.init_from)
        if model.config != config.model:
            raise ValueError(
                f"init_from {config.init_from} holds a different architecture than config.model: "
                f"{model.config.to_dict()} vs {config.model.to_dict()}"
            )
    else:
        model = GSLRM(config.model)
        model.init_weights(torch.Generator().manual_seed(config.seed))
    return model.to(device)


def forward_loss(
    net: nn.Module,
    batch: dict[str, Tensor],
    config: GSLRMTrainConfig,
    device: torch.device,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
    perceptual: nn.Module | None = None,
) -> tuple[Tensor, Tensor, ReconstructionLoss]:
    """One training forward: reconstruct from the input views, render every view, compute the loss.

    Args:
        net: the model (possibly DDP-wrapped).
        batch: collated samples: ``images [B, V, 3, H, W]``, ``c2w [B, V, 4, 4]``, ``K [B, V, 3, 3]`` and
            ``input_index [B, V_in]``; optionally ``input_images [B, V_in, 3, H, W]``, fed to the model in place
            of the indexed views (degraded copies; the targets stay ``images``).
        config: the run (resolution, loss weight).
        device: where to compute.
        autocast: context for the network (bf16 on CUDA); the renderer and loss run outside it in fp32.
        perceptual: optional perceptual network replacing ``1 - SSIM``.

    Returns:
        ``(images [B, V, 3, H, W], rendered [B, V, 3, H, W], loss)``.
    """
    res = config.resolution
    autocast = autocast if autocast is not None else contextlib.nullcontext()
    images = batch["images"].to(device, non_blocking=True)  # [B, V, 3, H, W]
    c2w, K = batch["c2w"].to(device), batch["K"].to(device)  # [B, V, 4, 4], [B, V, 3, 3]
    index = batch["input_index"].to(device)  # [B, V_in]
    cameras = Cameras(c2w, K, res, res)
    if "input_images" in batch:
        in_images = batch["input_images"].to(device, non_blocking=True)
    else:
        in_images = torch.gather(images, 1, index[:, :, None, None, None].expand(-1, -1, *images.shape[2:]))
    in_cameras = Cameras(
        torch.gather(c2w, 1, index[:, :, None, None].expand(-1, -1, 4, 4)),
        torch.gather(K, 1, index[:, :, None, None].expand(-1, -1, 3, 3)),
        res, res,
    )  # fmt: skip
    with autocast:
        gaussians = net(in_images, in_cameras)  # [B, N], fp32
    rendered = rasterize(gaussians, cameras, background=1.0).rgb  # [B, V, 3, H, W], outside autocast
    loss = reconstruction_loss(rendered, images, config.perceptual_weight, perceptual=perceptual)
    return images, rendered, loss


class _GSLRMTask:
    """The reconstructor as a :class:`facelift.training.loop.TrainTask`."""

    def __init__(self, config: GSLRMTrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        self.model = _build_model(config, device)
        self.perceptual = VGGPerceptualLoss(config.vgg_weights, device=device) if config.vgg_weights is not None else None

    def forward(self, net: nn.Module, batch: dict[str, Any], autocast: contextlib.AbstractContextManager) -> StepOutput:
        images, rendered, loss = forward_loss(net, batch, self.config, self.device, autocast=autocast, perceptual=self.perceptual)

        def preview() -> np.ndarray:
            from facelift.rendering.media import image_grid

            return image_grid(torch.cat([images[0], rendered[0]]).detach().float().cpu(), rows=2, pad=1)  # [2H, VW, 3]

        logs = {"mse": float(loss.mse), "perceptual": float(loss.perceptual)}
        return StepOutput(loss.total, logs, batch_size=images.shape[0], preview=preview)

    def after_step(self, step: int) -> None:
        pass

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def save_final(self, directory: Path) -> None:
        self.model.save_pretrained(directory)


def train(config: GSLRMTrainConfig, *, stop_after: int | None = None) -> TrainResult:
    """Train (or resume training) the reconstructor as ``config`` says.

    Resumes from the newest checkpoint in ``out_dir/checkpoints`` when there is one (model, optimiser,
    scheduler, RNG, step); otherwise starts from ``init_from`` or a seeded initialisation. At
    ``total_steps`` it writes ``out_dir/final`` with :meth:`GSLRM.save_pretrained`.

    Args:
        config: the run.
        stop_after: stop once this many steps are done (a checkpoint is written there), as if the run had
            been interrupted; for tests and time-boxed jobs.

    Returns:
        :class:`facelift.training.loop.TrainResult`.

    Example:
        >>> train(replace(GSLRM_PRESETS["tiny"], out_dir=Path("runs/tiny")))  # doctest: +SKIP
    """
    return run_training(config, lambda device: _GSLRMTask(config, device), _ReconstructorSamples(config), name="gslrm", stop_after=stop_after)
