"""``facelift train all``: the default-weights recipe, every stage in order, resumable stage by stage.

Stages (each a run folder under ``out_dir``, trained by the ordinary trainers, so each resumes from its own
checkpoints when the recipe is run again):

1. ``vae``: the diffusion model's autoencoder on synthetic heads;
2. ``mvdiff``: the multi-view diffusion model on synthetic heads, with that VAE (frozen);
3. ``gslrm-objects``: the reconstructor pre-trained on procedural objects;
4. ``gslrm-heads``: the reconstructor fine-tuned on synthetic heads from stage 3 with a fresh optimiser;
5. ``assemble``: both final models written as one pipeline weights folder (fp16 safetensors, each file
   checked against the 16 MiB limit of the bundled weights), loadable by ``FaceLiftPipeline.from_pretrained``.

``--from-shipped`` continues from the bundled weights instead: the VAE and objects stages are skipped, the
diffusion model and the heads stage start from the shipped models (so every run can improve them); where the
shipped folder keeps a ``gslrm-views/`` (its ``gslrm/`` trained on generated views), the heads stage, which trains
on clean renders, continues that one and is assembled back into it (:func:`assembled_reconstructors`).
Data is rendered on the fly on the training device unless ``--heads-root`` / ``--objects-root`` name
folders written by ``facelift synth``. The recipe records finished stages in ``out_dir/recipe.json``
(atomically) and skips them when run again.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from facelift.utils.io import atomic_write_text

__all__ = ["RECIPE_STAGES", "RecipeConfig", "assembled_reconstructors", "recipe_stage_configs", "assemble_weights", "train_all"]

logger = logging.getLogger(__name__)

Stage = Literal["vae", "mvdiff", "gslrm-objects", "gslrm-heads", "assemble"]
RECIPE_STAGES: tuple[Stage, ...] = ("vae", "mvdiff", "gslrm-objects", "gslrm-heads", "assemble")
FILE_LIMIT = 16 * 2**20
"""Largest weight file the repository ships (bytes)."""


@dataclass(frozen=True)
class RecipeConfig:
    """What ``facelift train all`` trains."""

    preset: Literal["default", "tiny"] = "default"
    """``default``: the bundled models' sizes and schedules (64 px, CPU-sized); ``tiny``: a smoke test."""
    out_dir: Path = Path("runs/all")
    """One run folder per stage below this, plus ``recipe.json``."""
    weights_out: Path | None = None
    """Where the assembled pipeline weights go (default ``OUT_DIR/weights``)."""
    heads_root: Path | None = None
    """A heads split folder written by ``facelift synth heads`` (``OUT/train``); None renders on the fly."""
    objects_root: Path | None = None
    """An objects split folder written by ``facelift synth objects``; None renders on the fly."""
    from_shipped: bool = False
    """Continue from the bundled default weights (skips the VAE and objects stages)."""
    shipped: Path | None = None
    """The weights folder ``--from-shipped`` continues from (default: the bundled ``default`` weights)."""
    steps_scale: float = 1.0
    """Multiplies every stage's total and warm-up steps (e.g. 0.1 for a quick pass, 4 for a long GPU run)."""
    stages: tuple[Stage, ...] = RECIPE_STAGES
    """Stages to run, in recipe order (finished ones are skipped)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    workers: int = 0
    """DataLoader processes rendering the on-the-fly training data of every stage (0: in the training process)."""
    render_on_device: bool = False
    """Render the on-the-fly training data on the training device (e.g. the GPU) instead; needs ``workers == 0``."""
    progress: bool = True
    """Progress bars of the stages."""

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in RECIPE_STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; the stages are {', '.join(RECIPE_STAGES)}")
        if not (self.steps_scale > 0 and math.isfinite(self.steps_scale)):
            raise ValueError(f"steps_scale must be a positive number, got {self.steps_scale}")


def _scaled(config: Any, scale: float) -> Any:
    total = max(1, round(config.total_steps * scale))
    return replace(config, total_steps=total, warmup_steps=min(total, max(1, round(config.warmup_steps * scale))))


def _shipped_folder(config: RecipeConfig) -> Path:
    from facelift.pipeline.facelift import resolve_weights

    return resolve_weights(str(config.shipped) if config.shipped is not None else "default").folder


def assembled_reconstructors(gslrm_final: Path, shipped: Path | None) -> tuple[Path, Path | None]:
    """``(pipeline GS-LRM, GS-LRM for real views or None)`` to assemble after a heads stage.

    The heads stage trains on clean renders. When it continued shipped weights that keep a ``gslrm-views/`` (their
    ``gslrm/`` trained on generated views), it continued that one: its result becomes the new ``gslrm-views/`` and
    the shipped ``gslrm/`` stays the pipeline's. Otherwise the heads stage's result is the only reconstructor.
    """
    from facelift.pipeline.facelift import reconstructor_folders

    if shipped is not None:
        own, views = reconstructor_folders(shipped)
        if views is not None:
            return own, gslrm_final
    return gslrm_final, None


def recipe_stage_configs(config: RecipeConfig) -> dict[str, Any]:
    """The trainer config of every training stage (``vae``, ``mvdiff``, ``gslrm-objects``, ``gslrm-heads``);
    with ``from_shipped`` the skipped stages are absent."""
    from facelift.models.gslrm import GSLRMConfig
    from facelift.training.gslrm_trainer import GSLRM_PRESETS
    from facelift.training.mvdiff_trainer import MVDIFF_PRESETS, VAE_PRESETS

    out = Path(config.out_dir)
    common = {"device": config.device, "progress": config.progress, "workers": config.workers, "render_on_device": config.render_on_device}
    if config.preset == "tiny":
        vae = replace(VAE_PRESETS["tiny"], total_steps=4, image_every=0, ckpt_every=2)
        mvdiff = replace(MVDIFF_PRESETS["tiny"], total_steps=4, image_every=0, ckpt_every=2)
        gslrm = replace(GSLRM_PRESETS["tiny"], total_steps=4, image_every=0, ckpt_every=2)
        objects_steps, heads_steps, heads_lr = 4, 4, gslrm.lr
    else:
        # The schedules of the bundled weights (src/facelift/weights/default/README.md), at 64 px.
        vae = replace(
            VAE_PRESETS["default"], batch_size=2, lr=4e-4, warmup_steps=50, total_steps=3000, crop_size=32, image_every=500, ckpt_every=250
        )
        mvdiff = replace(
            MVDIFF_PRESETS["default"], batch_size=4, lr=5e-4, warmup_steps=60, total_steps=800, ema_decay=0.995, image_every=200, ckpt_every=50
        )
        model = replace(GSLRMConfig.default(), image_size=64)
        gslrm = replace(
            GSLRM_PRESETS["default"], model=model, resolution=64, num_random=4, batch_size=2, lr=4e-4, warmup_steps=200,
            image_every=500, ckpt_every=250,
        )  # fmt: skip
        objects_steps, heads_steps, heads_lr = 1500, 1500, 1e-4
    stages: dict[str, Any] = {}
    objects_final = out / "gslrm-objects" / "final"
    heads_init: Path | None = objects_final
    if config.from_shipped:
        from facelift.models.mvdiffusion.config import MVDiffusionConfig
        from facelift.pipeline.facelift import reconstructor_folders

        shipped = _shipped_folder(config)
        # The architectures come from the folders' config files (the weights are loaded by the trainers).
        meta = json.loads((shipped / "mvdiffusion" / "facelift_mvdiffusion.json").read_text())
        if not meta.get("config"):
            raise ValueError(f"{shipped / 'mvdiffusion'} records no facelift model config; it cannot be continued")
        mvdiff = replace(mvdiff, model=MVDiffusionConfig.from_dict(meta["config"]), init_from=shipped / "mvdiffusion", vae_from=None)
        # The heads stage trains on clean renders: it continues the reconstructor for real views where there is one.
        own, views = reconstructor_folders(shipped)
        heads_init = views or own
        gslrm = replace(gslrm, model=GSLRMConfig.from_json((heads_init / "config.json").read_text()))
    else:
        stages["vae"] = replace(vae, data_root=config.heads_root, out_dir=out / "vae", **common)
        mvdiff = replace(mvdiff, vae_from=out / "vae" / "final")
        stages["gslrm-objects"] = replace(
            gslrm, preset="objects_pretrain", data="objects", data_root=config.objects_root, total_steps=objects_steps,
            out_dir=out / "gslrm-objects", **common,
        )  # fmt: skip
    stages["mvdiff"] = replace(mvdiff, data_root=config.heads_root, out_dir=out / "mvdiff", **common)
    stages["gslrm-heads"] = replace(
        gslrm, preset="heads_finetune", data="heads", data_root=config.heads_root, total_steps=heads_steps, lr=heads_lr,
        warmup_steps=max(1, gslrm.warmup_steps // 4), init_from=heads_init, out_dir=out / "gslrm-heads", **common,
    )  # fmt: skip
    return {name: _scaled(cfg, config.steps_scale) for name, cfg in stages.items()}


DEFAULT_FIT_INPUT_STEPS = 50
"""Steps of fitting the Gaussians to the input photo that assembled weights ask for by default
(:meth:`facelift.pipeline.facelift.FaceLiftPipeline.fit_input`)."""
DEFAULT_FIT_INPUT_PARAMS = "appearance"
"""What that fit moves: opacities and colours, the geometry frozen (the bundled weights since the twenty-third
session: +0.36 ± 0.05 dB at novel views over moving every parameter, docs/evaluation.md)."""
DEFAULT_NUM_SAMPLES = 2
"""Diffusion samples that assembled weights average per photo by default
(:meth:`facelift.pipeline.facelift.FaceLiftPipeline.generate_views`)."""


def assemble_weights(
    mvdiff_folder: Path, gslrm_folder: Path, out: Path, *, views_gslrm_folder: Path | None = None, limit: int = FILE_LIMIT
) -> dict[str, int]:
    """Write the two models as one fp16 pipeline weights folder (atomically); keeps an existing model card.

    ``views_gslrm_folder``: optional GS-LRM for real posed views, written as ``gslrm-views/`` (see
    :class:`facelift.pipeline.facelift.FaceLiftPipeline`'s ``views_reconstructor``).

    Returns:
        ``{relative path: bytes}`` of every file written.

    Raises:
        ValueError: a file is larger than ``limit`` (the folder is still written, for inspection).
    """
    from facelift.gaussians.ops import PruneSettings
    from facelift.models.gslrm import GSLRM
    from facelift.models.mvdiffusion.model import MultiViewDiffusion
    from facelift.pipeline.facelift import FaceLiftPipeline

    out = Path(out)
    card = out / "README.md"
    kept = card.read_text() if card.is_file() else None
    pipe = FaceLiftPipeline(
        MultiViewDiffusion.from_pretrained(mvdiff_folder),
        GSLRM.from_pretrained(gslrm_folder),
        prune_settings=PruneSettings.procedural(),
        fit_input_steps=DEFAULT_FIT_INPUT_STEPS,
        fit_input_params=DEFAULT_FIT_INPUT_PARAMS,
        num_samples=DEFAULT_NUM_SAMPLES,
        views_reconstructor=GSLRM.from_pretrained(views_gslrm_folder) if views_gslrm_folder is not None else None,
    )
    pipe.save_pretrained(out, dtype=torch.float16)
    if kept is not None:
        atomic_write_text(card, kept)
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    too_big = [f"{name} ({size / 2**20:.1f} MiB)" for name, size in sizes.items() if size > limit]
    if too_big:
        raise ValueError(f"weight files over {limit / 2**20:.0f} MiB: {', '.join(too_big)}")
    return sizes


def _state_path(config: RecipeConfig) -> Path:
    return Path(config.out_dir) / "recipe.json"


def _load_state(config: RecipeConfig) -> dict[str, Any]:
    path = _state_path(config)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to re-run every stage") from err


def train_all(config: RecipeConfig) -> dict[str, Any]:
    """Run the recipe's stages in order, skipping those already finished with the same total steps.

    Returns:
        The recipe state: per stage ``{"steps", "final", "skipped"}`` and, for ``assemble``, the files written.
    """
    from facelift.training.gslrm_trainer import train as train_gslrm
    from facelift.training.mvdiff_trainer import train_mvdiff, train_vae

    trainers = {"vae": train_vae, "mvdiff": train_mvdiff, "gslrm-objects": train_gslrm, "gslrm-heads": train_gslrm}
    configs = recipe_stage_configs(config)
    state = _load_state(config)
    Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for stage in RECIPE_STAGES:
        if stage not in config.stages:
            continue
        if stage == "assemble":
            mvdiff_final, gslrm_final = configs["mvdiff"].out_dir / "final", configs["gslrm-heads"].out_dir / "final"
            for folder, name in ((mvdiff_final, "mvdiff"), (gslrm_final, "gslrm-heads")):
                if not folder.is_dir():
                    raise FileNotFoundError(f"stage {name} has not finished ({folder} is missing): run it first")
            out = Path(config.weights_out) if config.weights_out is not None else Path(config.out_dir) / "weights"
            gslrm_folder, views_folder = assembled_reconstructors(gslrm_final, _shipped_folder(config) if config.from_shipped else None)
            sizes = assemble_weights(mvdiff_final, gslrm_folder, out, views_gslrm_folder=views_folder)
            report[stage] = {"folder": str(out), "files": sizes, "total_bytes": sum(sizes.values())}
            logger.info("assembled %s (%.1f MiB)", out, sum(sizes.values()) / 2**20)
            continue
        if stage not in configs:  # skipped by --from-shipped
            report[stage] = {"skipped": "from_shipped"}
            continue
        cfg = configs[stage]
        done = state.get(stage)
        final = cfg.out_dir / "final"
        if done and done.get("steps") == cfg.total_steps and final.is_dir():
            report[stage] = {**done, "skipped": "finished"}
            continue
        logger.info("stage %s: %d steps into %s", stage, cfg.total_steps, cfg.out_dir)
        result = trainers[stage](cfg)
        if result.pretrained_dir is None:
            raise RuntimeError(f"stage {stage} stopped at step {result.step} of {cfg.total_steps} without final weights")
        state[stage] = {"steps": cfg.total_steps, "final": str(result.pretrained_dir), "final_loss": result.final_loss}
        atomic_write_text(_state_path(config), json.dumps(state, indent=2) + "\n")
        report[stage] = {**state[stage], "skipped": None}
    return report
