"""The training loop every facelift trainer shares: devices and DDP, data order, the clip-or-skip guard,
logging, image previews, atomic resumable checkpoints and the final ``save_pretrained`` folder.

A trainer supplies a :class:`TrainTask` (the model and how one batch becomes a loss) and a dataset indexed by
a global sample number; :func:`run_training` does the rest. One script serves one process or many
(``torchrun --nproc_per_node N``): with ``WORLD_SIZE > 1`` the model is wrapped in DistributedDataParallel
(gloo on CPU, nccl on CUDA) and rank ``r`` of ``W`` takes the samples ``(step * W + r) * batch + b``. Samples
are addressed by that global index, so a run resumed from a checkpoint sees exactly the data it would have
seen without stopping, and the parameters match bit for bit (CPU, same world size).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from facelift.training.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from facelift.training.metrics import MetricLogger
from facelift.training.optim import build_adamw, clip_and_check, warmup_cosine, warmup_cosine_factor

__all__ = [
    "IndexedSubjects",
    "LoopConfig",
    "StepBatches",
    "StepOutput",
    "TrainResult",
    "TrainTask",
    "check_loop_config",
    "config_to_dict",
    "mean_across",
    "run_training",
    "seeded_generator",
    "setup_distributed",
]  # fmt: skip

logger = logging.getLogger(__name__)

# Settings a resumed run may change without a warning (they do not alter the result).
_COSMETIC = ("progress", "tensorboard", "workers")


class LoopConfig(Protocol):
    """The fields of a trainer config that :func:`run_training` reads (each trainer's frozen dataclass has them)."""

    preset: str
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    total_steps: int
    min_lr_ratio: float
    grad_clip: float
    skip_factor: float
    log_every: int
    image_every: int
    ckpt_every: int
    keep_checkpoints: int
    out_dir: Path
    seed: int
    device: str
    bf16: bool
    workers: int
    render_on_device: bool
    tensorboard: bool
    progress: bool
    max_minutes: float | None

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class StepOutput:
    """What one training forward returns."""

    loss: Tensor
    """Scalar loss to minimise (this process's batch)."""
    logs: dict[str, float] = field(default_factory=dict)
    """Extra scalars to log (``loss``, ``grad_norm``, ``lr`` and ``samples_per_s`` are added by the loop)."""
    batch_size: int = 1
    """Samples in this process's batch (for the samples/s figure)."""
    preview: Callable[[], np.ndarray] | None = None
    """Builds the periodic preview image, uint8 ``[H, W, 3]`` (called only when one is due)."""


class TrainTask(Protocol):
    """A model plus its training step, as :func:`run_training` drives it."""

    model: nn.Module
    """Everything that is checkpointed (frozen parts included; the optimiser only sees trainable ones)."""

    def forward(self, net: nn.Module, batch: dict[str, Any], autocast: contextlib.AbstractContextManager) -> StepOutput:
        """Loss of one batch; ``net`` is ``model`` or its DDP wrapper (call it, not ``model``, for the forward)."""
        ...

    def after_step(self, step: int) -> None:
        """Called after every optimiser step that was taken (EMA updates, ...)."""
        ...

    def extra_state(self) -> dict[str, Any]:
        """Additional state saved in checkpoints (EMA weights, ...)."""
        ...

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""
        ...

    def save_final(self, directory: Path) -> None:
        """Write the finished model (``save_pretrained``)."""
        ...


@dataclass(frozen=True)
class TrainResult:
    """What :func:`run_training` did."""

    step: int
    """Completed optimiser steps."""
    resumed_from: Path | None
    """The checkpoint it resumed from, if any."""
    final_loss: float
    """Loss of the last step (mean over processes; nan if no step ran)."""
    skipped_steps: int
    """Steps skipped by the gradient guard during this call."""
    pretrained_dir: Path | None
    """The ``save_pretrained`` folder (written when the run reached ``total_steps`` or its time budget's horizon)."""
    horizon: int = 0
    """The step the learning-rate schedule ends at: ``total_steps``, or fewer when ``max_minutes`` shortened the run."""


def check_loop_config(config: Any, extra_positive: tuple[str, ...] = ()) -> None:
    """Validate the :class:`LoopConfig` fields of a trainer config (and ``extra_positive`` integer fields)."""
    positive = (*extra_positive, "batch_size", "total_steps", "log_every", "ckpt_every", "keep_checkpoints")
    for name in positive:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not config.lr > 0 or config.warmup_steps < 0 or config.warmup_steps > config.total_steps:
        raise ValueError(f"need lr > 0 and 0 <= warmup_steps <= total_steps, got {config.lr}, {config.warmup_steps}")
    if getattr(config, "supersample", 1) not in (1, 2, 3, 4):
        raise ValueError(f"supersample must be 1, 2, 3 or 4, got {config.supersample!r}")
    if config.image_every < 0 or config.workers < 0:
        raise ValueError("image_every and workers must be >= 0")
    if config.render_on_device and config.workers:
        raise ValueError("render_on_device renders in the training process: it needs workers == 0")
    minutes = getattr(config, "max_minutes", None)
    if minutes is not None and not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"max_minutes must be a positive number of minutes or None, got {minutes!r}")


_RETIME_EVERY = 25
"""With ``max_minutes``: steps between two re-estimates of the step time (and of the schedule's horizon)."""
_clock = time.perf_counter
"""The time box's clock (tests replace it)."""


class _Horizon:
    """Where a time-boxed run ends: re-estimated from the recent step time every ``_RETIME_EVERY`` steps, so that the
    cosine schedule (re-fitted to it) reaches its end when the budget does.

    Re-estimates never move the horizon past the one it starts with: ``total_steps`` for a fresh run, the recorded
    horizon for a resumed one (its fresh budget may end it sooner, never later, so it resumes the schedule it left).
    """

    def __init__(self, config: LoopConfig, scheduler: torch.optim.lr_scheduler.LambdaLR, step: int, horizon: int) -> None:
        self.config, self.scheduler = config, scheduler
        self.cap = min(max(horizon, step, 1), config.total_steps)
        minutes = getattr(config, "max_minutes", None)
        self.budget_s = None if minutes is None else 60.0 * float(minutes)
        self.start = _clock()
        self.mark = (step, self.start)
        self.steps = config.total_steps
        self.set(horizon, step)

    def set(self, horizon: int, step: int) -> None:
        horizon = min(max(horizon, step, 1), self.cap)
        if horizon != self.steps:
            sched = self.scheduler
            factor = warmup_cosine_factor(min(self.config.warmup_steps, horizon), horizon, self.config.min_lr_ratio)
            sched.lr_lambdas = [factor] * len(sched.optimizer.param_groups)
            # The next optimiser step's learning rate follows the re-fitted schedule (last_epoch = steps taken).
            for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
                group["lr"] = base * factor(sched.last_epoch)
            self.steps = horizon

    def update(self, step: int) -> None:
        """After ``step`` optimiser steps: past the budget the run ends here; else every few steps re-fit the horizon."""
        if self.budget_s is None:
            return
        now = _clock()
        left = self.budget_s - (now - self.start)
        if left <= 0:
            self.set(step, step)
        elif step - self.mark[0] >= _RETIME_EVERY:
            per_step = (now - self.mark[1]) / (step - self.mark[0])
            self.mark = (step, now)
            self.set(step + int(left / per_step), step)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A trainer config as a JSON-friendly dict (paths as strings, tuples as lists, nested dataclasses as dicts)."""
    out = asdict(config)

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in out.items()}


# ---- data order -----------------------------------------------------------------------------------------


def seeded_generator(*values: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of integers (stable across runs and platforms).

    Example:
        >>> int(torch.randint(10, (1,), generator=seeded_generator(0, 1))) == int(torch.randint(10, (1,), generator=seeded_generator(0, 1)))
        True
    """
    seed = int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(2, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


_DATA_TAG = 1


class IndexedSubjects(torch.utils.data.Dataset):
    """Global sample ``k`` -> one subject's views, deterministic in ``(seed, k)``.

    Epoch ``e = k // S`` visits the ``S`` subjects in a permutation seeded by ``(seed, e)``; the views and
    background of sample ``k`` come from a stream (or folder reader) seeded by ``(seed, k)``. Items are the
    dicts of :class:`facelift.synthetic.dataset.SyntheticStream`: ``images [V, 3, H, W]``, ``alpha [V, 1, H,
    W]``, ``c2w [V, 4, 4]``, ``K [V, 3, 3]``, ``background [3]``, ...

    Args:
        kind: ``heads`` or ``objects`` (on-the-fly data).
        data_root: a split folder written by ``facelift synth`` (``OUT/train``); None renders on the fly.
        mode: ``reconstructor`` (``num_views`` random views) or ``diffusion`` (the fixed views).
        resolution: image size; folder images must have it.
        num_views: views per sample (reconstructor mode).
        num_random: random views per subject to draw from (on-the-fly reconstructor data).
        background: ``white``, ``black``, ``gray`` or ``random``.
        seed: seeds the order, views and backgrounds.
        render_device: where on-the-fly samples are rendered (and returned); :func:`run_training` sets the
            training device here when the config asks for ``render_on_device``.
        supersample: anti-aliasing samples per pixel along each axis of on-the-fly renders (``facelift synth``
            writes 2; 1 renders about 3x faster with jagged edges).
        fixed_views: names of the fixed views (diffusion mode: each sample's views, in order; default the six
            FaceLift views).
        keep_fixed: reconstructor mode: each sample holds the fixed views first, then random others.
    """

    def __init__(
        self,
        kind: str,
        data_root: Path | None,
        *,
        mode: str = "reconstructor",
        resolution: int,
        num_views: int | None = None,
        num_random: int = 32,
        background: str = "white",
        seed: int = 0,
        render_device: str | torch.device = "cpu",
        supersample: int = 1,
        fixed_views: Sequence[str] | None = None,
        keep_fixed: bool = False,
    ) -> None:
        from facelift.cameras.orbits import FACELIFT_VIEW_NAMES
        from facelift.synthetic.dataset import SyntheticFolderDataset, split_size

        self.render_device = torch.device(render_device)
        self.kind, self.data_root, self.mode, self.resolution = kind, data_root, mode, resolution
        self.num_views, self.num_random, self.background, self.seed = num_views, num_random, background, seed
        self.supersample = supersample
        self.fixed_views, self.keep_fixed = tuple(fixed_views or FACELIFT_VIEW_NAMES), bool(keep_fixed)
        if data_root is not None:
            self.folder = SyntheticFolderDataset(
                data_root, mode=mode, num_views=num_views, background=background, fixed_views=self.fixed_views,
                keep_fixed=self.keep_fixed, seed=seed,
            )  # fmt: skip
            self.size = len(self.folder)
        else:
            self.folder = None
            self.size = split_size(kind, "train")
        self._perm: tuple[int, list[int]] | None = None

    def __len__(self) -> int:  # informative; indices may exceed it (later epochs)
        return self.size

    def _subject(self, k: int) -> tuple[int, int]:
        epoch, pos = divmod(k, self.size)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(self.size, generator=seeded_generator(self.seed, _DATA_TAG, epoch)).tolist())
        return epoch, self._perm[1][pos]

    def __getitem__(self, k: int) -> dict[str, Any]:
        from facelift.synthetic.dataset import SyntheticStream

        epoch, subject = self._subject(int(k))
        if self.folder is not None:
            self.folder.set_epoch(epoch)
            item = self.folder[subject]
        else:
            seed = int(torch.randint(2**62, (1,), generator=seeded_generator(self.seed, _DATA_TAG, k)))
            stream = SyntheticStream(
                self.kind, "train", resolution=self.resolution, num_views=self.num_views, mode=self.mode,
                num_random=self.num_random, background=self.background, supersample=self.supersample, fixed_views=self.fixed_views,
                keep_fixed=self.keep_fixed, subjects=[subject], epochs=1,
                seed=seed, device=self.render_device, shard=False,
            )  # fmt: skip
            item = next(iter(stream))
        if tuple(item["images"].shape[-2:]) != (self.resolution, self.resolution):
            raise ValueError(f"{self.data_root}: images are {tuple(item['images'].shape[-2:])}, expected {self.resolution} px")
        item.pop("subject", None)  # strings do not collate into tensors
        item.pop("depth", None)
        return item


class StepBatches(torch.utils.data.Sampler):
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
class DistInfo:
    """This process's place in the job."""

    rank: int
    world: int
    local_rank: int
    owns_group: bool


def setup_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` and pick this rank's device."""
    from facelift.cli.common import resolve_device

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
    return DistInfo(rank, world, local_rank, owns), device


def mean_across(value: Tensor, world: int) -> Tensor:
    """All-reduce mean of a tensor over the job (identity for one process)."""
    if world > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= world
    return value


# ---- the loop -------------------------------------------------------------------------------------------


def _prune_checkpoints(directory: Path, keep: int) -> None:
    files = sorted(p for p in directory.glob("step_*.pt"))
    for old in files[:-keep]:
        with contextlib.suppress(OSError):
            old.unlink()


def run_training(
    config: LoopConfig,
    build_task: Callable[[torch.device], TrainTask],
    dataset: torch.utils.data.Dataset,
    *,
    name: str,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume training) as ``config`` says.

    Resumes from the newest checkpoint in ``out_dir/checkpoints`` when there is one (model, optimiser,
    scheduler, task state, RNG, step). At ``total_steps`` it calls ``task.save_final(out_dir / "final")``.
    Writes ``log.jsonl`` (and TensorBoard when available), ``images/step_*.png`` previews and keeps the
    newest ``keep_checkpoints`` checkpoints.

    Time box (``config.max_minutes``, e.g. a GPU lease): the run ends when that much wall time has passed since
    its loop started (or at ``total_steps``, whichever comes first) and writes ``final`` there. Every 25 steps the
    step time of the last 25 steps projects where the budget ends, and the warmup-cosine schedule is re-fitted to
    end at that step (its *horizon*), so the learning rate has decayed when time is up. Checkpoints record the
    horizon; a resumed run keeps it as its end (and a finished one stays finished) and gets the budget afresh from its
    restart: re-estimates may end it sooner than the recorded horizon when that budget runs short, never later.

    Args:
        config: the run's loop settings (see :class:`LoopConfig`).
        build_task: makes the task on the chosen device (called once, after the process group is set up).
        dataset: global sample index -> item; batches are collated with the default collate.
        name: shown on the progress bar.
        stop_after: stop once this many steps are done (a checkpoint is written there), as if the run had
            been interrupted; for tests.

    Returns:
        :class:`TrainResult`.
    """
    ddp, device = setup_distributed(config.device)
    is_main = ddp.rank == 0
    out_dir = Path(config.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if is_main:
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    if ddp.world > 1:
        dist.barrier()

    task = build_task(device)
    model = task.model
    optimizer = build_adamw(model, config.lr, weight_decay=config.weight_decay)
    scheduler = warmup_cosine(optimizer, config.warmup_steps, config.total_steps, config.min_lr_ratio)
    start_step, horizon = 0, config.total_steps
    resumed_from = latest_checkpoint(ckpt_dir)
    if resumed_from is not None:
        payload = load_checkpoint(resumed_from, model=model, optimizer=optimizer, scheduler=scheduler)
        start_step = int(payload["step"])
        task.load_extra_state(payload["extra"].get("task", {}))
        horizon = int(payload["extra"].get("horizon", config.total_steps))
        saved = payload["extra"].get("config", {})
        changed = sorted(k for k, v in config.to_dict().items() if k in saved and saved[k] != v and k not in _COSMETIC)
        if changed:
            logger.warning("resuming %s with changed settings: %s", resumed_from, ", ".join(changed))
        logger.info("resumed from %s at step %d", resumed_from, start_step)
    timer = _Horizon(config, scheduler, start_step, horizon)  # a resumed time-boxed run keeps its horizon
    last = config.total_steps if stop_after is None else min(int(stop_after), config.total_steps)

    net: nn.Module = model
    if ddp.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if config.bf16 and device.type == "cuda" else contextlib.nullcontext()

    on_device = bool(config.render_on_device) and isinstance(dataset, IndexedSubjects) and dataset.folder is None
    if on_device:  # on-the-fly samples rendered by the synthetic engine on the training device itself
        dataset.render_device = device
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=StepBatches(start_step, last, config.batch_size, ddp.rank, ddp.world),
        num_workers=config.workers,
        pin_memory=device.type == "cuda" and not on_device,
    )
    metrics = MetricLogger(out_dir, enabled=is_main, tensorboard=config.tensorboard)
    if is_main:
        metrics.log_text("config", json.dumps(config.to_dict(), indent=2))
    bar = None
    if is_main and config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=timer.steps, initial=start_step, desc=f"{name} {config.preset}", unit="step", dynamic_ncols=True)

    step, final_loss, skipped_steps = start_step, float("nan"), 0
    tick, samples_since = time.perf_counter(), 0
    model.train()
    try:
        if start_step >= timer.steps:
            loader = []
        for batch in loader:
            out = task.forward(net, batch, autocast)
            out.loss.backward()
            mean_loss = mean_across(out.loss.detach(), ddp.world)
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
            if not guard.skipped:
                task.after_step(step)
            final_loss = float(mean_loss)
            samples_since += out.batch_size * ddp.world
            timer.update(step)
            if ddp.world > 1 and timer.budget_s is not None:  # every rank ends at rank 0's horizon
                agreed = torch.tensor([timer.steps], device=device)
                dist.broadcast(agreed, 0)
                timer.set(int(agreed.item()), step)
            done = step >= timer.steps or (stop_after is not None and step >= stop_after)
            if bar is not None and bar.total != timer.steps:
                bar.total = timer.steps

            if is_main and (step % config.log_every == 0 or done):
                now = time.perf_counter()
                rate = samples_since / max(now - tick, 1e-9)
                tick, samples_since = now, 0
                record = {"loss": final_loss, **out.logs, "grad_norm": guard.grad_norm, "skipped": guard.skipped, "lr": lr, "samples_per_s": rate}
                metrics.log(step, record)
                if bar is not None:
                    bar.set_postfix(loss=f"{final_loss:.4f}", samples_s=f"{rate:.2f}")
            if bar is not None:
                bar.update(1)
            if is_main and config.image_every and out.preview is not None and (step % config.image_every == 0 or step == 1):
                from facelift.rendering.media import save_image

                path = out_dir / "images" / f"step_{step:08d}.png"
                save_image(path, out.preview())
                metrics.log_image(step, "preview", path)
            if is_main and (step % config.ckpt_every == 0 or done):
                extra = {"config": config.to_dict(), "world_size": ddp.world, "task": task.extra_state(), "horizon": timer.steps}
                save_checkpoint(ckpt_dir / checkpoint_name(step), model=model, optimizer=optimizer, scheduler=scheduler, step=step, extra=extra)
                _prune_checkpoints(ckpt_dir, config.keep_checkpoints)
            if done:
                break
        pretrained = None
        if step >= timer.steps:
            pretrained = out_dir / "final"
            if is_main:
                task.save_final(pretrained)
        if ddp.world > 1:
            dist.barrier()
    finally:
        if bar is not None:
            bar.close()
        metrics.close()
        if ddp.owns_group and dist.is_initialized():
            dist.destroy_process_group()
    return TrainResult(step, resumed_from, final_loss, skipped_steps, pretrained, timer.steps)
