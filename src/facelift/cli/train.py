"""``facelift train gslrm <preset> [overrides]``: train the reconstructor (also under ``torchrun``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Union

import tyro

from facelift.training.gslrm_trainer import GSLRM_PRESETS, GSLRMTrainConfig

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


@dataclass
class TrainGSLRMCommand:
    """Train the GS-LRM reconstructor; resumes from OUT_DIR/checkpoints when present. Multi-process:
    ``torchrun --nproc_per_node N -m facelift.cli.main train gslrm ...``."""

    config: Annotated[_GSLRMPreset, tyro.conf.arg(name="")] = GSLRM_PRESETS["default"]  # type: ignore[valid-type]
    """Preset to start from (``default`` when omitted); any field can then be overridden."""

    def run(self) -> int:
        from facelift.training.gslrm_trainer import train

        result = train(self.config)
        summary = {
            "step": result.step, "final_loss": result.final_loss, "skipped_steps": result.skipped_steps,
            "resumed_from": str(result.resumed_from) if result.resumed_from else None,
            "pretrained": str(result.pretrained_dir) if result.pretrained_dir else None,
        }  # fmt: skip
        print(json.dumps(summary))
        return 0


@dataclass
class TrainCommand:
    """Train a model: ``gslrm`` (the Gaussian reconstructor)."""

    command: Annotated[
        Union[
            Annotated[TrainGSLRMCommand, tyro.conf.subcommand("gslrm")],
            # A Union needs two members; tyro's own padding for a single subcommand (the diffusion
            # trainer will be the second).
            Annotated[None, tyro.conf.Suppress],
        ],
        tyro.conf.arg(name=""),
    ]

    def run(self) -> int:
        return self.command.run()


__all__ = ["GSLRMTrainConfig", "TrainCommand", "TrainGSLRMCommand"]
