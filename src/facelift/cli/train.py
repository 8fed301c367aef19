"""``facelift train gslrm|vae|mvdiff <preset> [overrides]`` (also under ``torchrun``) and ``facelift train all``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import tyro

from facelift.training.gslrm_trainer import GSLRM_PRESETS, GSLRMTrainConfig
from facelift.training.mvdiff_trainer import MVDIFF_PRESETS, VAE_PRESETS
from facelift.training.recipe import RecipeConfig

# One subcommand per preset (default, objects-pretrain, heads-finetune, heads-only, tiny); every field of
# the chosen preset can be overridden, e.g. ``facelift train gslrm heads-finetune --lr 5e-5``.
_GSLRMPreset = tyro.extras.subcommand_type_from_defaults(
    {name.replace("_", "-"): config for name, config in GSLRM_PRESETS.items()},
    descriptions={
        "default": "objects at 128 px with the default (CPU-sized) model",
        "objects-pretrain": "stage I: procedural objects from scratch",
        "heads-finetune": "stage II: synthetic heads from the objects model, fresh optimiser",
        "heads-only": "ablation: synthetic heads from scratch",
        "tiny": "a toy run for smoke tests (16 px, tiny model)",
    },
    prefix_names=False,
)


_MVDiffPreset = tyro.extras.subcommand_type_from_defaults(
    {name.replace("_", "-"): config for name, config in MVDIFF_PRESETS.items()},
    descriptions={
        "default": "synthetic heads at 64 px, default (CPU-sized) model, needs a trained VAE (facelift train vae)",
        "no-input-recon": "ablation: generate only the five novel views",
        "no-mv-attention": "ablation: no multi-view attention (each view attends to itself only)",
        "views-4": "ablation: four views every 90 degrees (front, right, back, left)",
        "views-8": "ablation: eight views every 45 degrees (data from facelift synth heads --fixed-views with all eight)",
        "dense": "variant: dense multi-view attention (every view attends to all)",
        "tiny": "a toy run for smoke tests (32 px, tiny model, random VAE)",
    },
    prefix_names=False,
)

_VAEPreset = tyro.extras.subcommand_type_from_defaults(
    {name.replace("_", "-"): config for name, config in VAE_PRESETS.items()},
    descriptions={"default": "the default model's VAE on synthetic heads at 64 px", "tiny": "a toy run for smoke tests"},
    prefix_names=False,
)


def _summary(result) -> int:
    summary = {
        "step": result.step, "final_loss": result.final_loss, "skipped_steps": result.skipped_steps,
        "resumed_from": str(result.resumed_from) if result.resumed_from else None,
        "pretrained": str(result.pretrained_dir) if result.pretrained_dir else None,
    }  # fmt: skip
    print(json.dumps(summary))
    return 0


@dataclass
class TrainGSLRMCommand:
    """Train the GS-LRM reconstructor; resumes from OUT_DIR/checkpoints when present. Multi-process:
    ``torchrun --nproc_per_node N -m facelift.cli.main train gslrm ...``."""

    config: Annotated[_GSLRMPreset, tyro.conf.arg(name="")] = GSLRM_PRESETS["default"]  # type: ignore[valid-type]
    """Preset to start from (``default`` when omitted); to override fields, name the preset first
    (``facelift train mvdiff default --lr 1e-4``)."""

    def run(self) -> int:
        from facelift.training.gslrm_trainer import train

        return _summary(train(self.config))


@dataclass
class TrainMVDiffCommand:
    """Train the multi-view diffusion model; resumes from OUT_DIR/checkpoints when present. Multi-process:
    ``torchrun --nproc_per_node N -m facelift.cli.main train mvdiff ...``."""

    config: Annotated[_MVDiffPreset, tyro.conf.arg(name="")] = MVDIFF_PRESETS["default"]  # type: ignore[valid-type]
    """Preset to start from (``default`` when omitted); to override fields, name the preset first
    (``facelift train mvdiff default --lr 1e-4``)."""

    def run(self) -> int:
        from facelift.training.mvdiff_trainer import train_mvdiff

        return _summary(train_mvdiff(self.config))


@dataclass
class TrainVAECommand:
    """Train the diffusion model's autoencoder (run before ``train mvdiff``); resumes when possible."""

    config: Annotated[_VAEPreset, tyro.conf.arg(name="")] = VAE_PRESETS["default"]  # type: ignore[valid-type]
    """Preset to start from (``default`` when omitted); to override fields, name the preset first
    (``facelift train vae default --total-steps 600``)."""

    def run(self) -> int:
        from facelift.training.mvdiff_trainer import train_vae

        return _summary(train_vae(self.config))


@dataclass
class TrainAllCommand:
    """The whole recipe of the default weights, in order: VAE, multi-view diffusion, reconstructor on
    objects then heads, then the assembled pipeline weights folder. Finished stages are skipped and
    unfinished ones resume from their checkpoints, so the recipe accumulates over sessions and machines."""

    config: Annotated[RecipeConfig, tyro.conf.arg(name="")] = RecipeConfig()

    def run(self) -> int:
        from facelift.training.recipe import train_all

        report = train_all(self.config)
        print(json.dumps(report))
        return 0


@dataclass
class TrainCommand:
    """Train a model: ``gslrm`` (the Gaussian reconstructor), ``vae`` then ``mvdiff`` (multi-view diffusion),
    or ``all`` (the default-weights recipe, every stage in order)."""

    command: Annotated[
        Annotated[TrainGSLRMCommand, tyro.conf.subcommand("gslrm")]
        | Annotated[TrainVAECommand, tyro.conf.subcommand("vae")]
        | Annotated[TrainMVDiffCommand, tyro.conf.subcommand("mvdiff")]
        | Annotated[TrainAllCommand, tyro.conf.subcommand("all")],
        tyro.conf.arg(name=""),
    ]

    def run(self) -> int:
        return self.command.run()


__all__ = ["GSLRMTrainConfig", "TrainAllCommand", "TrainCommand", "TrainGSLRMCommand", "TrainMVDiffCommand", "TrainVAECommand"]
