"""GS-LRM training: render the predicted Gaussians at every sampled view and fit the images.

One script for one process or many (``torchrun --nproc_per_node N``): with ``WORLD_SIZE > 1`` the model is
wrapped in DistributedDataParallel (gloo on CPU, nccl on CUDA) and rank ``r`` of ``W`` takes the samples
``(step * W + r) * batch + b``. Samples are addressed by that global index, so a run resumed from a
checkpoint sees exactly the data it would have seen without stopping, and the parameters match bit for bit
(CPU, same world size).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from facelift.cameras.cameras import Cameras
from facelift.models.gslrm import GSLRM, GSLRMConfig
from facelift.rendering import rasterize
from facelift.training.checkpoint import checkpoint_name, latest_checkpoint, load_checkpoint, save_checkpoint
from facelift.training.metrics import MetricLogger
from facelift.training.losses import ReconstructionLoss, VGGPerceptualLoss, reconstruction_loss
from facelift.training.optim import build_adamw, clip_and_check, warmup_cosine

__all__ = ["GSLRMTrainConfig", "GSLRM_PRESETS", "TrainResult", "forward_loss", "train"]

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
    """Local torchvision VGG19 state dict for the official perceptual loss (needs torchvision)."""
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
    tensorboard: bool = True
    """Also log to TensorBoard when ``torch.utils.tensorboard`` is importable."""
    progress: bool = True
    """Show a progress bar (rank 0)."""

    def __post_init__(self) -> None:
        positive = ("resolution", "views_per_sample", "input_views", "batch_size", "total_steps", "log_every", "ckpt_every", "keep_checkpoints")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.input_views > self.views_per_sample:
            raise ValueError(f"input_views ({self.input_views}) must be <= views_per_sample ({self.views_per_sample})")
        if self.resolution % self.model.patch_size:
            raise ValueError(f"resolution {self.resolution} must be divisible by the patch size {self.model.patch_size}")
        if not self.lr > 0 or self.warmup_steps < 0 or self.warmup_steps > self.total_steps:
            raise ValueError(f"need lr > 0 and 0 <= warmup_steps <= total_steps, got {self.lr}, {self.warmup_steps}")
        if self.image_every < 0 or self.workers < 0 or self.num_random < 0:
            raise ValueError("image_every, workers and num_random must be >= 0")
        if self.data not in ("objects", "heads"):
            raise ValueError(f"data must be 'objects' or 'heads', got {self.data!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (paths as strings)."""
        out = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


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


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did."""

    step: int
    """Completed optimiser steps."""
    resumed_from: Path | None
    """The checkpoint it resumed from, if any."""
    final_loss: float
    """Loss of the last step (mean over processes; nan if no step ran)."""
    skipped_steps: int
    """Steps skipped by the gradient guard during this call."""
    pretrained_dir: Path | None
    """The ``save_pretrained`` folder (written when the run reached ``total_steps``)."""


# ---- data -----------------------------------------------------------------------------------------------


def _generator(*values: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(2, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


_DATA_TAG, _INPUT_TAG = 1, 2


class _IndexedSamples(torch.utils.data.Dataset):
    """Sample ``k`` (a global index) -> one training dict, deterministic in ``(seed, k)``.

    Epoch ``e = k // S`` visits the ``S`` subjects in a permutation seeded by ``(seed, e)``; the views of
    sample ``k`` come from a stream/folder seeded by ``(seed, k)``.
    """

    def __init__(self, config: GSLRMTrainConfig) -> None:
        from facelift.synthetic.dataset import SyntheticFolderDataset, split_size

        self.config = config
        if config.data_root is not None:
            self.folder = SyntheticFolderDataset(config.data_root, num_views=config.views_per_sample, background="white", seed=config.seed)
            self.size = len(self.folder)
        else:
            self.folder = None
            self.size = split_size(config.data, "train")
        self._perm: tuple[int, list[int]] | None = None

    def __len__(self) -> int:  # informative; indices may exceed it (later epochs)
        return self.size

    def _subject(self, k: int) -> tuple[int, int]:
        epoch, pos = divmod(k, self.size)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(self.size, generator=_generator(self.config.seed, _DATA_TAG, epoch)).tolist())
        return epoch, self._perm[1][pos]

    def __getitem__(self, k: int) -> dict[str, Any]:
        from facelift.synthetic.dataset import SyntheticStream

        c = self.config
        epoch, subject = self._subject(int(k))
        if self.folder is not None:
            self.folder.set_epoch(epoch)
            item = self.folder[subject]
        else:
            seed = int(torch.randint(2**62, (1,), generator=_generator(c.seed, _DATA_TAG, k)))
            stream = SyntheticStream(
                c.data, "train", resolution=c.resolution, num_views=c.views_per_sample, num_random=c.num_random,
                background="white", supersample=1, subjects=[subject], epochs=1, seed=seed, device="cpu",
            )  # fmt: skip
            item = next(iter(stream))
        if item["images"].shape[-1] != c.resolution or item["images"].shape[-2] != c.resolution:
            raise ValueError(f"{c.data_root}: images are {tuple(item['images'].shape[-2:])}, expected {c.resolution} px")
        v = item["images"].shape[0]
        order = torch.randperm(v, generator=_generator(c.seed, _INPUT_TAG, k))
        return {
            "images": item["images"],  # [V, 3, H, W]
            "c2w": item["c2w"],  # [V, 4, 4]
            "K": item["K"],  # [V, 3, 3]
            "input_index": order[: c.input_views],  # [V_in]
        }


class _StepBatches(torch.utils.data.Sampler):
    """Lists of global sample indices, one list per step from ``start`` to ``stop`` for this rank."""

    def __init__(self, start: int, stop: int, batch: int, rank: int, world: int) -> None:
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch
            yield list(range(first, first + self.batch))


# ---- distributed ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dist:
    rank: int
    world: int
    local_rank: int
    owns_group: bool


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    from facelift.cli.common import resolve_device  # noqa: PLC0415 (device parsing lives with the CLI helpers)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = resolve_device(device_name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    if world > 1:
        rank, world = dist.get_rank(), dist.get_world_size()
    return _Dist(rank, world, local_rank, owns), device


def _mean_across(value: Tensor, world: int) -> Tensor:
    if world > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= world
    return value


# ---- training -------------------------------------------------------------------------------------------


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


def _save_grid(path: Path, target: Tensor, rendered: Tensor) -> None:
    from facelift.rendering.media import image_grid, save_image

    grid = image_grid(torch.cat([target, rendered]).detach().float().cpu(), rows=2, pad=1)  # [2H, VW, 3]
    save_image(path, grid)


def _prune_checkpoints(directory: Path, keep: int) -> None:
    files = sorted(p for p in directory.glob("step_*.pt"))
    for old in files[:-keep]:
        with contextlib.suppress(OSError):
            old.unlink()


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
            ``input_index [B, V_in]``.
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
        :class:`TrainResult`.

    Example:
        >>> train(replace(GSLRM_PRESETS["tiny"], out_dir=Path("runs/tiny")))  # doctest: +SKIP
    """
    ddp, device = _setup_distributed(config.device)
    is_main = ddp.rank == 0
    out_dir = Path(config.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if is_main:
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    if ddp.world > 1:
        dist.barrier()

    model = _build_model(config, device)
    optimizer = build_adamw(model, config.lr, weight_decay=config.weight_decay)
    scheduler = warmup_cosine(optimizer, config.warmup_steps, config.total_steps, config.min_lr_ratio)
    start_step = 0
    resumed_from = latest_checkpoint(ckpt_dir)
    if resumed_from is not None:
        payload = load_checkpoint(resumed_from, model=model, optimizer=optimizer, scheduler=scheduler)
        start_step = int(payload["step"])
        saved = payload["extra"].get("config", {})
        changed = sorted(k for k, v in config.to_dict().items() if k in saved and saved[k] != v and k not in ("progress", "tensorboard", "workers"))
        if changed:
            logger.warning("resuming %s with changed settings: %s", resumed_from, ", ".join(changed))
        logger.info("resumed from %s at step %d", resumed_from, start_step)
    stop = config.total_steps if stop_after is None else min(int(stop_after), config.total_steps)

    net: nn.Module = model
    if ddp.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    perceptual = VGGPerceptualLoss(config.vgg_weights, device=device) if config.vgg_weights is not None else None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if config.bf16 and device.type == "cuda" else contextlib.nullcontext()
    )

    loader = torch.utils.data.DataLoader(
        _IndexedSamples(config),
        batch_sampler=_StepBatches(start_step, stop, config.batch_size, ddp.rank, ddp.world),
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
    )
    metrics = MetricLogger(out_dir, enabled=is_main, tensorboard=config.tensorboard)
    if is_main:
        metrics.log_text("config", json.dumps(config.to_dict(), indent=2))
    bar = None
    if is_main and config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.total_steps, initial=start_step, desc=f"gslrm {config.preset}", unit="step", dynamic_ncols=True)

    step, final_loss, skipped_steps = start_step, float("nan"), 0
    tick, samples_since = time.perf_counter(), 0
    model.train()
    try:
        for batch in loader:
            images, rendered, loss = forward_loss(net, batch, config, device, autocast=autocast, perceptual=perceptual)
            loss.total.backward()
            mean_loss = _mean_across(loss.total.detach(), ddp.world)
            guard = clip_and_check(model, config.grad_clip, config.skip_factor, loss=mean_loss)
            if not guard.skipped:
                optimizer.step()
            else:
                skipped_steps += 1
                logger.warning("step %d skipped (loss %s, grad norm %s)", step + 1, float(mean_loss), guard.grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            with warnings.catch_warnings():
                # A skipped first step trips torch's "scheduler.step() before optimizer.step()" warning;
                # the schedule is meant to advance anyway (it counts steps, taken or skipped).
                warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            final_loss = float(mean_loss)
            samples_since += images.shape[0] * ddp.world

            if is_main and (step % config.log_every == 0 or step == stop):
                now = time.perf_counter()
                rate = samples_since / max(now - tick, 1e-9)
                tick, samples_since = now, 0
                record = {
                    "loss": final_loss, "mse": float(loss.mse), "perceptual": float(loss.perceptual),
                    "grad_norm": guard.grad_norm, "skipped": guard.skipped, "lr": lr, "samples_per_s": rate,
                }  # fmt: skip
                metrics.log(step, record)
                if bar is not None:
                    bar.set_postfix(loss=f"{final_loss:.4f}", samples_s=f"{rate:.2f}")
            if bar is not None:
                bar.update(1)
            if is_main and config.image_every and (step % config.image_every == 0 or step == 1):
                path = out_dir / "images" / f"step_{step:08d}.png"
                _save_grid(path, images[0], rendered[0])
                metrics.log_image(step, "render", path)
            if is_main and (step % config.ckpt_every == 0 or step == stop):
                save_checkpoint(
                    ckpt_dir / checkpoint_name(step), model=model, optimizer=optimizer, scheduler=scheduler,
                    step=step, extra={"config": config.to_dict(), "world_size": ddp.world},
                )  # fmt: skip
                _prune_checkpoints(ckpt_dir, config.keep_checkpoints)
        pretrained = None
        if step >= config.total_steps:
            pretrained = out_dir / "final"
            if is_main:
                model.save_pretrained(pretrained)
        if ddp.world > 1:
            dist.barrier()
    finally:
        if bar is not None:
            bar.close()
        metrics.close()
        if ddp.owns_group and dist.is_initialized():
            dist.destroy_process_group()
    return TrainResult(step, resumed_from, final_loss, skipped_steps, pretrained)
