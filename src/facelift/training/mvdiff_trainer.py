"""Training of the multi-view diffusion model (``facelift train mvdiff``) and of its VAE (``facelift train vae``).

Both run on :func:`facelift.training.loop.run_training` (DDP, resumable checkpoints, logs, previews) with
the six FaceLift views of synthetic heads, rendered on the fly or read from ``facelift synth`` folders, on a
random white, black or gray background per sample.

Diffusion objective (the reference's): v-prediction, one timestep shared by a subject's views, Min-SNR
weighting ``min(SNR, gamma) / (SNR + 1)``, condition dropout (5% image embedding, 5% input latent, 5% both),
EMA of the weights (the final folder holds the EMA weights). The VAE is frozen during diffusion training;
train it first with ``facelift train vae`` (L1 + (1 - SSIM) + a small KL term), which also measures the
latent scaling factor (1 / std of the latents) and stores it in the VAE config.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from facelift.cameras.orbits import EIGHT_VIEW_NAMES, FOUR_VIEW_NAMES
from facelift.models.mvdiffusion.config import MVDiffusionConfig
from facelift.training.ema import EMA
from facelift.training.loop import (
    IndexedSubjects,
    StepOutput,
    TrainResult,
    check_loop_config,
    config_to_dict,
    run_training,
    seeded_generator,
)
from facelift.training.losses import chroma_of, ssim

__all__ = ["MVDIFF_PRESETS", "VAE_PRESETS", "MVDiffTrainConfig", "VAETrainConfig", "diffusion_loss", "fixed_timestep_loss", "train_mvdiff", "train_vae"]

_NOISE_TAG = 3


def _require_diffusers() -> None:
    try:
        import diffusers  # noqa: F401
    except ImportError as err:
        raise ImportError(f"multi-view diffusion needs diffusers ({err}): pip install diffusers") from err


# ---- diffusion ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MVDiffTrainConfig:
    """Training run of the multi-view diffusion model."""

    preset: str = "default"
    """Name of the preset this run started from (recorded in the logs)."""
    model: MVDiffusionConfig = field(default_factory=MVDiffusionConfig.default)
    """Architecture (``init_from`` weights must match it)."""
    vae_from: Path | None = Path("runs/vae/default/final")
    """A VAE folder written by ``facelift train vae`` (its ``final/``); None keeps the random VAE (tests only)."""
    init_from: Path | None = None
    """A ``MultiViewDiffusion.save_pretrained`` folder to start from (fresh optimiser); its VAE is kept and
    ``vae_from`` is ignored."""
    replace_vae: Path | None = None
    """With ``init_from``: a VAE folder that replaces the started-from model's VAE (e.g. a retrained one); the UNet
    then adapts to the new latent space."""
    data_root: Path | None = None
    """A heads split folder written by ``facelift synth heads`` (``OUT/train``); None renders on the fly."""
    batch_size: int = 4
    """Subjects per step on each process (each gives its six views)."""
    lr: float = 2e-4
    """Peak learning rate (the reference fine-tunes at 1e-4)."""
    weight_decay: float = 0.01
    """AdamW weight decay on parameters with >= 2 dims."""
    warmup_steps: int = 200
    """Linear warmup steps."""
    total_steps: int = 20000
    """Optimiser steps of the whole run."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of ``lr``."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this."""
    skip_factor: float = 20.0
    """Skip a step whose gradient norm exceeds ``skip_factor * grad_clip`` (or whose loss is not finite)."""
    snr_gamma: float = 5.0
    """Min-SNR weighting gamma (0 disables the weighting)."""
    drop_image: float = 0.05
    """Probability of dropping only the image embedding."""
    drop_latent: float = 0.05
    """Probability of dropping only the input latent."""
    drop_both: float = 0.05
    """Probability of dropping both (what classifier-free guidance's unconditional branch sees)."""
    ema_decay: float = 0.999
    """EMA decay (0 disables the EMA; the final folder then holds the raw weights)."""
    background: Literal["random", "white", "black", "gray"] = "random"
    """Background of the training views (the reference: white, black or gray at random)."""
    sample_steps: int = 20
    """DPM-Solver++ steps of the preview samples."""
    log_every: int = 10
    """Write metrics every this many steps."""
    image_every: int = 500
    """Save a preview (targets vs. sampled views) every this many steps (0: never)."""
    ckpt_every: int = 500
    """Save a resumable checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept in ``out_dir/checkpoints``."""
    out_dir: Path = Path("runs/mvdiff/default")
    """Run folder: checkpoints/, images/, log.jsonl, tensorboard/ and final/ (``save_pretrained``)."""
    seed: int = 0
    """Seeds the initial weights, data order, noise, timesteps and dropout."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N (under torchrun, CUDA ranks use cuda:LOCAL_RANK)."""
    bf16: bool = True
    """bf16 autocast of the UNet on CUDA (ignored on CPU)."""
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
        check_loop_config(self)
        probs = (self.drop_image, self.drop_latent, self.drop_both)
        if any(p < 0 for p in probs) or sum(probs) > 1:
            raise ValueError(f"dropout probabilities must be >= 0 and sum to <= 1, got {probs}")
        if not 0 <= self.ema_decay < 1 or self.snr_gamma < 0 or self.sample_steps < 1:
            raise ValueError("need 0 <= ema_decay < 1, snr_gamma >= 0 and sample_steps >= 1")
        if self.replace_vae is not None and self.init_from is None:
            raise ValueError("replace_vae replaces the VAE of an init_from model; to train from scratch on a VAE use vae_from")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _mvdiff_presets() -> dict[str, MVDiffTrainConfig]:
    base = MVDiffTrainConfig()
    return {
        "default": base,
        # The ablations of the paper: no input-view reconstruction, no multi-view attention; and dense attention.
        "no_input_recon": replace(base, preset="no_input_recon", model=replace(base.model, reconstruct_input=False), out_dir=Path("runs/mvdiff/no_input_recon")),
        "dense": replace(base, preset="dense", model=replace(base.model, attention="dense"), out_dir=Path("runs/mvdiff/dense")),
        "no_mv_attention": replace(base, preset="no_mv_attention", model=replace(base.model, attention="off"), out_dir=Path("runs/mvdiff/no_mv_attention")),
        # The view-count ablation: four views every 90 degrees, or eight every 45 (needs data rendered with those
        # fixed views: facelift synth heads --fixed-views ...).
        "views_4": replace(base, preset="views_4", model=replace(base.model, view_names=FOUR_VIEW_NAMES), out_dir=Path("runs/mvdiff/views_4")),
        "views_8": replace(base, preset="views_8", model=replace(base.model, view_names=EIGHT_VIEW_NAMES), out_dir=Path("runs/mvdiff/views_8")),
        "tiny": replace(
            base, preset="tiny", model=MVDiffusionConfig.tiny(), vae_from=None, batch_size=1, total_steps=20, warmup_steps=2,
            log_every=1, image_every=10, ckpt_every=10, sample_steps=2, ema_decay=0.9, out_dir=Path("runs/mvdiff/tiny"),
        ),
    }  # fmt: skip


MVDIFF_PRESETS: dict[str, MVDiffTrainConfig] = _mvdiff_presets()
"""Named starting points: ``default``, the ablations ``no_input_recon``, ``no_mv_attention``, ``views_4``, ``views_8`` and ``dense``, and ``tiny``."""


class _DiffusionSamples(IndexedSubjects):
    """The model's views of a head (random background) plus the global sample index (seeds its noise)."""

    def __init__(
        self, resolution: int, data_root: Path | None, background: str, seed: int, supersample: int = 1, fixed_views: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(
            "heads", data_root, mode="diffusion", resolution=resolution, background=background, seed=seed, supersample=supersample,
            fixed_views=fixed_views,
        )  # fmt: skip

    def __getitem__(self, k: int) -> dict[str, Any]:
        item = super().__getitem__(k)
        return {"images": item["images"], "index": torch.tensor(int(k))}


def load_vae_folder(folder: str | Path):
    """The ``AutoencoderKL`` of a folder written by ``facelift train vae`` (local files only).

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    from diffusers import AutoencoderKL

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"VAE folder {folder} does not exist; train one first: facelift train vae")
    return AutoencoderKL.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False)


def _build_diffusion(config: MVDiffTrainConfig, device: torch.device):
    from facelift.models.mvdiffusion.model import MultiViewDiffusion

    if config.init_from is not None:
        model = MultiViewDiffusion.from_pretrained(config.init_from).float()
        # The attention mode, input-view reconstruction and the view set change no weight but the view
        # embeddings: the ablations fine-tune from the full model's weights with one of them switched (new
        # views start from embeddings interpolated between their neighbours).
        switches = {"attention": config.model.attention, "reconstruct_input": config.model.reconstruct_input, "view_names": config.model.view_names}
        if model.config is None or replace(model.config, **switches) != config.model:
            raise ValueError(f"init_from {config.init_from} holds a different architecture than config.model")
        if tuple(config.model.view_names) != model.view_names:
            model.set_view_names(config.model.view_names)
        model.config, model.reconstruct_input = config.model, config.model.reconstruct_input
        model.set_attention(config.model.attention)
    else:
        model = MultiViewDiffusion.from_config(config.model, seed=config.seed)
    vae_folder = config.replace_vae if config.init_from is not None else config.vae_from
    if vae_folder is not None:
        vae = load_vae_folder(vae_folder)
        if tuple(vae.config.block_out_channels) != tuple(config.model.vae_channels) or vae.config.latent_channels != config.model.latent_channels:
            raise ValueError(f"VAE {vae_folder} does not match config.model (vae_channels, latent_channels)")
        model.vae.load_state_dict(vae.state_dict())
        model.vae.register_to_config(scaling_factor=float(vae.config.scaling_factor))
    model.vae.requires_grad_(False).eval()
    return model.to(device)


def _drop_masks(u: Tensor, config: MVDiffTrainConfig) -> tuple[Tensor, Tensor]:
    """``(keep_image, keep_latent)`` from uniforms ``u [B]``: [0, a) drops the image embedding, [a, a+b) the
    latent, [a+b, a+b+c) both."""
    a, b, c = config.drop_image, config.drop_latent, config.drop_both
    drop_image = (u < a) | ((u >= a + b) & (u < a + b + c))
    drop_latent = (u >= a) & (u < a + b + c)
    return (~drop_image).float(), (~drop_latent).float()


def _alphas_cumprod(scheduler_config: dict[str, Any]) -> Tensor:
    """The training noise schedule's cumulative alphas ``[T]`` (float32)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config).alphas_cumprod.float()


def _noised(latents: Tensor, noise: Tensor, alphas: Tensor) -> tuple[Tensor, Tensor]:
    """``(noisy latents, v target)`` of clean ``latents [N, V, C, h, w]`` and ``noise`` (same shape) at
    cumulative alphas ``[N]``."""
    a = alphas.sqrt().view(-1, 1, 1, 1, 1)
    s = (1 - alphas).sqrt().view(-1, 1, 1, 1, 1)
    return a * latents + s * noise, a * noise - s * latents


def _encode_views(model, images: Tensor) -> tuple[Tensor, Tensor]:
    """``(latents [B, V, C, h, w] of the generated views, latent [B, C, h, w] of the condition view 0)`` of
    ``images [B, 6, 3, H, W]`` in [0, 1] (no gradient)."""
    targets = images[:, list(model.generated_views)]  # [B, V, 3, H, W]
    b, v = targets.shape[:2]
    with torch.no_grad():
        latents = model.encode_latents(targets.flatten(0, 1)).float()
        cond_latents = model.encode_latents(images[:, 0]).float()
    return latents.view(b, v, *latents.shape[1:]), cond_latents


@torch.no_grad()
def fixed_timestep_loss(model, images: Tensor, timesteps: list[int] | tuple[int, ...], generator: torch.Generator) -> Tensor:
    """The v-prediction MSE of each subject at each of the given timesteps, both conditions kept.

    The training loss draws one timestep per subject; this measures a subject at fixed timesteps with noise from
    ``generator``, so two models (or two data sets) compare on the same draws (``benchmarks/diffusion_heldout.py``).

    Args:
        model: a :class:`MultiViewDiffusion` (its VAE encodes the views).
        images: ``[B, 6, 3, H, W]`` the six views in [0, 1]; view 0 is the condition.
        timesteps: ``T`` training timesteps in ``[0, 1000)``.
        generator: CPU generator of the noise (one ``[T, V, C, h, w]`` draw per subject, in order).

    Returns:
        ``[B, T]`` unweighted mean squared v error.
    """
    t = torch.as_tensor(list(timesteps), dtype=torch.long)
    if t.numel() == 0 or int(t.min()) < 0 or int(t.max()) >= 1000:
        raise ValueError(f"timesteps must be a non-empty list in [0, 1000), got {list(timesteps)}")
    latents, cond_latents = _encode_views(model, images)
    alphas = _alphas_cumprod(model.scheduler_config)[t].to(images.device)  # [T]
    ones = torch.ones(t.numel(), device=images.device)
    rows = []
    for i in range(images.shape[0]):
        noise = torch.randn((t.numel(), *latents.shape[1:]), generator=generator).to(images.device)
        noisy, target = _noised(latents[i : i + 1].expand(t.numel(), -1, -1, -1, -1), noise, alphas)
        cond = cond_latents[i : i + 1].expand(t.numel(), -1, -1, -1)
        cond_images = images[i : i + 1, 0].expand(t.numel(), -1, -1, -1)
        pred = model(noisy, t.to(images.device), cond, cond_images=cond_images, keep_image=ones, keep_latent=ones)
        rows.append((pred.float() - target).pow(2).flatten(1).mean(1))
    return torch.stack(rows)


def diffusion_loss(
    net: nn.Module,
    model,
    images: Tensor,
    index: Tensor,
    config: MVDiffTrainConfig,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Min-SNR-weighted v-prediction loss of a batch of subjects.

    Args:
        net: the model or its DDP wrapper (called for the denoiser forward).
        model: the unwrapped :class:`MultiViewDiffusion` (VAE, scheduler constants).
        images: ``[B, 6, 3, H, W]`` the six views in [0, 1]; view 0 is the condition.
        index: ``[B]`` global sample indices; each seeds its subject's timestep, noise and dropout.
        config: the run.
        autocast: context for the UNet (bf16 on CUDA).

    Returns:
        ``(loss, logs)``.
    """
    device = images.device
    b = images.shape[0]
    latents, cond_latents = _encode_views(model, images)  # [B, V, C, h, w], [B, C, h, w]
    gens = [seeded_generator(config.seed, _NOISE_TAG, int(k)) for k in index.tolist()]
    t = torch.stack([torch.randint(0, 1000, (1,), generator=g) for g in gens]).view(b).to(device)
    u = torch.stack([torch.rand(1, generator=g) for g in gens]).view(b).to(device)
    noise = torch.stack([torch.randn(tuple(latents.shape[1:]), generator=g) for g in gens]).to(device)
    keep_image, keep_latent = _drop_masks(u, config)
    alphas = _alphas_cumprod(model.scheduler_config).to(device)[t]  # [B]
    noisy, target = _noised(latents, noise, alphas)
    with autocast if autocast is not None else contextlib.nullcontext():
        pred = net(noisy, t, cond_latents, cond_images=images[:, 0], keep_image=keep_image, keep_latent=keep_latent)
    per_subject = (pred.float() - target).pow(2).flatten(1).mean(1)  # [B]
    snr = alphas / (1 - alphas)
    weight = torch.clamp(snr, max=config.snr_gamma) / (snr + 1) if config.snr_gamma > 0 else torch.ones_like(snr)
    loss = (weight * per_subject).mean()
    return loss, {"mse_v": float(per_subject.detach().mean()), "t_mean": float(t.float().mean())}


class _DiffusionTask:
    """The diffusion model as a :class:`facelift.training.loop.TrainTask`."""

    def __init__(self, config: MVDiffTrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        self.model = _build_diffusion(config, device)
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay > 0 else None

    def forward(self, net: nn.Module, batch: dict[str, Any], autocast: contextlib.AbstractContextManager) -> StepOutput:
        self.model.vae.eval()  # frozen (the loop puts the whole model in train mode)
        images = batch["images"].to(self.device, non_blocking=True)  # [B, 6, 3, H, W]
        loss, logs = diffusion_loss(net, self.model, images, batch["index"], self.config, autocast=autocast)
        return StepOutput(loss, logs, batch_size=images.shape[0], preview=lambda: self._preview(images[:1]))

    def _preview(self, images: Tensor) -> np.ndarray:
        from facelift.rendering.media import image_grid

        model = self.model
        was_training = model.training
        model.eval()
        try:
            with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
                out = model.sample(images[:, 0], num_inference_steps=self.config.sample_steps, solver="dpmsolver++", generator=torch.Generator().manual_seed(0))
        finally:
            model.train(was_training)
        targets = images[0, list(model.generated_views)]
        return image_grid(torch.cat([targets, out.images[0]]).float().cpu(), rows=2, pad=1)

    def after_step(self, step: int) -> None:
        if self.ema is not None:
            self.ema.update()

    def extra_state(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])

    def save_final(self, directory: Path) -> None:
        with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
            self.model.save_pretrained(directory)


def train_mvdiff(config: MVDiffTrainConfig, *, stop_after: int | None = None) -> TrainResult:
    """Train (or resume) the multi-view diffusion model; writes ``out_dir/final`` (EMA weights) at the end.

    Example:
        >>> train_mvdiff(replace(MVDIFF_PRESETS["tiny"], out_dir=Path("runs/tiny")))  # doctest: +SKIP
    """
    _require_diffusers()
    dataset = _DiffusionSamples(config.model.image_size, config.data_root, config.background, config.seed, config.supersample, tuple(config.model.view_names))
    return run_training(config, lambda device: _DiffusionTask(config, device), dataset, name="mvdiff", stop_after=stop_after)


# ---- VAE ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VAETrainConfig:
    """Training run of the diffusion model's autoencoder."""

    preset: str = "default"
    """Name of the preset this run started from."""
    model: MVDiffusionConfig = field(default_factory=MVDiffusionConfig.default)
    """Its ``vae_*``, ``latent_channels``, ``norm_num_groups`` and ``image_size`` fields size the VAE."""
    init_from: Path | None = None
    """Start from this ``AutoencoderKL`` folder (e.g. an earlier run's ``final``) instead of random weights."""
    data_root: Path | None = None
    """A heads split folder written by ``facelift synth heads``; None renders on the fly."""
    batch_size: int = 2
    """Subjects per step (each gives its six views)."""
    lr: float = 4e-4
    """Peak learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay on parameters with >= 2 dims."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    total_steps: int = 4000
    """Optimiser steps."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of ``lr``."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this."""
    skip_factor: float = 20.0
    """Skip a step whose gradient norm exceeds ``skip_factor * grad_clip``."""
    ssim_weight: float = 0.2
    """Weight of ``1 - SSIM`` beside the L1 term."""
    chroma_weight: float = 1.0
    """Weight of an extra L1 term on the chroma (each pixel minus its grey value). Colour carries little of the
    pixel variance of the heads, so without it a short run learns a nearly grey autoencoder."""
    kl_weight: float = 1e-6
    """Weight of the KL term (small: the latent only needs to stay bounded, as in Stable Diffusion's VAE)."""
    posterior_noise: float = 0.0
    """Scale of the posterior's sampling noise in training (1: ``latent_dist.sample()``; 0: the mode, a deterministic
    autoencoder). The diffusion model only ever sees the mode; with full noise and a tiny KL weight the posterior
    std stays near its initial 1 on the channels the decoder has not learnt to use yet, which drowns them (the
    first default VAE kept almost no colour this way)."""
    crop_size: int = 0
    """Train on one random square crop of this size per batch (0: whole views). The autoencoder is convolutional,
    so a 32 px crop of the 64 px views costs about a quarter of the compute per step while it learns the same
    local coding; it is used (and its scaling factor measured) at full size. Crops sit on the latent grid."""
    scale_batches: int = 8
    """Batches used at the end to measure the latent scaling factor."""
    background: Literal["random", "white", "black", "gray"] = "random"
    """Background of the training views."""
    log_every: int = 10
    """Write metrics every this many steps."""
    image_every: int = 500
    """Save an input/reconstruction preview every this many steps (0: never)."""
    ckpt_every: int = 500
    """Save a resumable checkpoint every this many steps."""
    keep_checkpoints: int = 2
    """Checkpoints kept."""
    out_dir: Path = Path("runs/vae/default")
    """Run folder; ``final/`` is a diffusers ``AutoencoderKL`` folder."""
    seed: int = 0
    """Seeds the weights and the data order."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    bf16: bool = False
    """bf16 autocast on CUDA (off by default: the decoder's last layers are precision-sensitive)."""
    workers: int = 0
    """DataLoader worker processes."""
    render_on_device: bool = False
    """Render on-the-fly training data on the training device in the training process (a GPU run then
    needs neither a dataset upload nor CPU workers; needs ``workers == 0``)."""
    supersample: int = 1
    """Anti-aliasing of on-the-fly data: samples per pixel along each axis (2 matches ``facelift synth``; ~3x slower)."""
    tensorboard: bool = True
    """Also log to TensorBoard when available."""
    progress: bool = True
    """Show a progress bar."""
    max_minutes: float | None = None
    """Time box: end the run after this many minutes of training, fitting the lr schedule's end to it (see ``run_training``)."""

    def __post_init__(self) -> None:
        check_loop_config(self)
        if min(self.ssim_weight, self.chroma_weight, self.kl_weight, self.posterior_noise) < 0 or self.scale_batches < 1:
            raise ValueError("need ssim_weight, chroma_weight, kl_weight, posterior_noise >= 0 and scale_batches >= 1")
        factor = self.model.vae_factor
        if self.crop_size and not (0 < self.crop_size <= self.model.image_size and self.crop_size % (2 * factor) == 0):
            raise ValueError(f"crop_size must be 0 or a multiple of {2 * factor} (twice the VAE's downsampling) up to image_size {self.model.image_size}, got {self.crop_size}")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _vae_presets() -> dict[str, VAETrainConfig]:
    base = VAETrainConfig()
    return {
        "default": base,
        "tiny": replace(
            base, preset="tiny", model=MVDiffusionConfig.tiny(), batch_size=1, total_steps=20, warmup_steps=2, log_every=1,
            image_every=10, ckpt_every=10, scale_batches=1, out_dir=Path("runs/vae/tiny"),
        ),
    }  # fmt: skip


VAE_PRESETS: dict[str, VAETrainConfig] = _vae_presets()
"""Named starting points: ``default`` and ``tiny``."""


class _AutoencoderWithLoss(nn.Module):
    """``AutoencoderKL`` whose forward returns the reconstruction and the KL term (for DDP)."""

    def __init__(self, vae, posterior_noise: float = 1.0) -> None:
        super().__init__()
        self.vae, self.posterior_noise = vae, posterior_noise

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean
        if self.posterior_noise > 0:
            z = z + self.posterior_noise * posterior.std * torch.randn_like(z)
        return self.vae.decode(z).sample, posterior.kl().mean()


class _VAETask:
    def __init__(self, config: VAETrainConfig, device: torch.device) -> None:
        from diffusers import AutoencoderKL

        self.config, self.device = config, device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            vae = AutoencoderKL(**config.model.vae_kwargs())
        if config.init_from is not None:
            start = load_vae_folder(config.init_from)
            try:
                vae.load_state_dict(start.state_dict())
            except RuntimeError as err:  # missing, unexpected or differently shaped parameters
                raise ValueError(f"init_from {config.init_from} holds a different VAE than config.model: {err}") from err
        self.model = _AutoencoderWithLoss(vae, config.posterior_noise).to(device)
        self.dataset = _DiffusionSamples(config.model.image_size, config.data_root, config.background, config.seed, config.supersample)

    def forward(self, net: nn.Module, batch: dict[str, Any], autocast: contextlib.AbstractContextManager) -> StepOutput:
        images = batch["images"].to(self.device).flatten(0, 1)  # [B 6, 3, H, W]
        if self.config.crop_size and self.config.crop_size < images.shape[-1]:
            size, grid = self.config.crop_size, self.config.model.vae_factor
            top, left = (grid * torch.randint(0, (images.shape[-1] - size) // grid + 1, (2,))).tolist()
            images = images[..., top : top + size, left : left + size]
        x = images * 2 - 1
        with autocast:
            recon, kl = net(x)
        recon = recon.float()
        l1 = (recon - x).abs().mean()
        structure = 1 - ssim((recon + 1) / 2, images).mean()
        chroma = (chroma_of(recon) - chroma_of(x)).abs().mean()
        loss = l1 + self.config.ssim_weight * structure + self.config.chroma_weight * chroma + self.config.kl_weight * kl.float()
        logs = {"l1": float(l1.detach()), "ssim": float(1 - structure.detach()), "chroma": float(chroma.detach()), "kl": float(kl.detach())}

        def preview() -> np.ndarray:
            from facelift.rendering.media import image_grid

            shown = torch.cat([images[:6], ((recon[:6] + 1) / 2).clamp(0, 1)]).detach().float().cpu()
            return image_grid(shown, rows=2, pad=1)

        return StepOutput(loss, logs, batch_size=batch["images"].shape[0], preview=preview)

    def after_step(self, step: int) -> None:
        pass

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    @torch.no_grad()
    def save_final(self, directory: Path) -> None:
        """Measure the latent scaling factor (1 / std of ``latent_dist.mode()``) and write the VAE folder."""
        from facelift.utils.io import staged_output_dir

        vae = self.model.vae.eval()
        latents = []
        for i in range(self.config.scale_batches):
            # Indices far past training (a deterministic held-out-like draw of subjects and backgrounds).
            images = self.dataset[10**9 + i]["images"].to(self.device)
            latents.append(vae.encode(images * 2 - 1).latent_dist.mode().float().flatten())
        std = float(torch.cat(latents).std())
        vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
        with staged_output_dir(directory, overwrite=True) as tmp:
            vae.save_pretrained(tmp, safe_serialization=True)


def train_vae(config: VAETrainConfig, *, stop_after: int | None = None) -> TrainResult:
    """Train (or resume) the autoencoder; ``out_dir/final`` is an ``AutoencoderKL`` folder with its scaling factor.

    Example:
        >>> train_vae(replace(VAE_PRESETS["tiny"], out_dir=Path("runs/vae-tiny")))  # doctest: +SKIP
    """
    _require_diffusers()
    dataset = _DiffusionSamples(config.model.image_size, config.data_root, config.background, config.seed, config.supersample)
    return run_training(config, lambda device: _VAETask(config, device), dataset, name="vae", stop_after=stop_after)
