"""The paper's ablations as ready evaluation configurations.

An ablation is a set of :class:`~facelift.evaluation.runner.EvalSettings` overrides plus, where the
ablated component must be trained differently, the training preset that makes its weights and a check
that the weights given really are such a model. The paper's table (its section 4.4) compares the full
model with a model trained without input-view reconstruction and one trained without multi-view
attention; its text also varies the number of generated views (4 / 6 / 8) and the reconstructor's
training (two stages vs heads only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from facelift.cameras.orbits import EIGHT_VIEW_NAMES, FACELIFT_VIEW_NAMES, FOUR_VIEW_NAMES

__all__ = ["ABLATIONS", "Ablation"]


def _needs_diffusion(attr: str, value: Any, preset: str) -> Callable[[Any], None]:
    def check(pipe: Any) -> None:
        if getattr(pipe.diffusion, attr) != value:
            raise ValueError(
                f"this ablation needs a diffusion model trained with `facelift train mvdiff {preset}` "
                f"({attr}={value!r}); the weights given have {attr}={getattr(pipe.diffusion, attr)!r}"
            )

    return check


@dataclass(frozen=True)
class Ablation:
    """One row of an ablation table."""

    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of ``EvalSettings`` this row changes."""
    training: str = ""
    """How its weights are trained (empty: it uses the full model's weights)."""
    check: Callable[[Any], None] | None = None
    """Raises ``ValueError`` when the loaded pipeline is not the model this row needs."""


ABLATIONS: dict[str, Ablation] = {
    a.name: a
    for a in (
        Ablation("full", "the full model: input-view reconstruction, sparse multi-view attention, six views",
                 check=_needs_diffusion("reconstruct_input", True, "default")),
        Ablation("no-input-recon", "w/o input-view reconstruction: the diffusion model generates only the five novel views "
                 "(the reconstructor gets the input itself as view 0)", training="facelift train mvdiff no-input-recon ...",
                 check=_needs_diffusion("reconstruct_input", False, "no-input-recon")),
        Ablation("no-mv-attention", "w/o multi-view attention: trained and sampled with every view attending only to itself",
                 training="facelift train mvdiff no-mv-attention ...", check=_needs_diffusion("attention", "off", "no-mv-attention")),
        Ablation("no-mv-attention-at-inference", "the full model sampled with multi-view attention switched off (no retraining)",
                 overrides={"attention": "off"}),
        Ablation("views-4", "the reconstructor gets 4 of the generated views: front, right, back, left (a, a+-90, a+180)",
                 overrides={"views": (0, 2, 3, 4)}, check=_needs_diffusion("view_names", FACELIFT_VIEW_NAMES, "default")),
        Ablation("views-6", "the reconstructor gets all six generated views (the reference)", overrides={"views": (0, 1, 2, 3, 4, 5)},
                 check=_needs_diffusion("view_names", FACELIFT_VIEW_NAMES, "default")),
        Ablation("views-4-model", "a diffusion model trained to generate four views (a, a+-90, a+180), all to the reconstructor",
                 training="facelift train mvdiff views-4 ...", check=_needs_diffusion("view_names", FOUR_VIEW_NAMES, "views-4")),
        Ablation("views-8", "eight generated views every 45 degrees (a, a+-45, a+-90, a+-135, a+180), all to the reconstructor",
                 training="facelift train mvdiff views-8 --data-root EIGHT_VIEW_DATA ...",
                 check=_needs_diffusion("view_names", EIGHT_VIEW_NAMES, "views-8")),
        Ablation("heads-only-reconstructor", "the reconstructor trained on synthetic heads only, without the objects pretraining "
                 "(pair its GS-LRM with the full diffusion model)", training="facelift train gslrm heads-only ..."),
    )
}  # fmt: skip
"""Named ablations for ``facelift eval --ablation NAME``."""
