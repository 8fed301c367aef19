"""The held-out evaluation set: procedural heads whose identities never appear in training.

``facelift synth heads --split test --count 40 --num-random 32 --res R --out DIR`` writes it to disk
(identities ``100000 + i``, variant 0; see :mod:`facelift.synthetic.dataset`); :class:`EvalSet` reads that
folder, or renders the same subjects on the fly when no folder is given. Each subject has the six
FaceLift views (view 0, the front view at azimuth 0, is the input) followed by the random views, with
their masks and cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.evaluation.metrics import composite
from facelift.synthetic.dataset import load_subject, render_subject, split_size

__all__ = ["EvalSet", "EvalSubject", "NUM_FIXED"]

NUM_FIXED = 6
"""The six FaceLift views come first in every subject (``front`` .. ``front_left``)."""


@dataclass
class EvalSubject:
    """One held-out subject: ground-truth views on white, their masks and cameras."""

    name: str
    index: int
    images: Float[Tensor, "V 3 H W"]
    """``[6 + R, 3, H, W]`` in [0, 1], composited on white."""
    masks: Float[Tensor, "V 1 H W"]
    """``[6 + R, 1, H, W]`` alpha."""
    cameras: Cameras
    """``[6 + R]`` cameras."""
    view_names: list[str]

    @property
    def input_image(self) -> Float[Tensor, "3 H W"]:
        """The input view (view 0, front, azimuth 0)."""
        return self.images[0]


@dataclass(frozen=True)
class EvalSet:
    """The first ``subjects`` heads of the ``test`` split, each with ``num_random`` random views.

    Args:
        subjects: how many (the paper: 40, the whole split).
        num_random: random ground-truth views per subject (at least 32 in facelift's protocol).
        resolution: image size when rendering on the fly.
        supersample: anti-aliasing when rendering on the fly (2 x 2, as ``facelift synth`` writes).
        folder: a split folder written by ``facelift synth heads --split test`` (``DIR/test``) or its parent;
            None renders on the fly (deterministic: the same pixels as the folder).

    Example:
        >>> s = EvalSet(subjects=1, num_random=2, resolution=32)[0]
        >>> s.name, tuple(s.images.shape)
        ('head_000000', (8, 3, 32, 32))
    """

    subjects: int = 40
    num_random: int = 32
    resolution: int = 64
    supersample: int = 2
    folder: Path | None = None

    def __post_init__(self) -> None:
        size = split_size("heads", "test")
        if not 1 <= self.subjects <= size:
            raise ValueError(f"subjects must be in 1..{size} (the heads test split), got {self.subjects}")
        if self.num_random < 0 or self.resolution < 8 or self.supersample < 1:
            raise ValueError("need num_random >= 0, resolution >= 8 and supersample >= 1")
        if self.folder is not None:
            folder = Path(self.folder)
            if (folder / "test").is_dir():
                folder = folder / "test"
            if not folder.is_dir():
                raise FileNotFoundError(f"evaluation set folder {self.folder} does not exist (write it with: facelift synth heads --split test --count {self.subjects} --out DIR)")
            object.__setattr__(self, "folder", folder)

    def __len__(self) -> int:
        return self.subjects

    def name(self, index: int) -> str:
        return f"head_{index:06d}"

    def __getitem__(self, index: int) -> EvalSubject:
        if not 0 <= index < self.subjects:
            raise IndexError(index)
        views = list(range(NUM_FIXED + self.num_random))
        if self.folder is not None:
            sub = self.folder / self.name(index)
            if not (sub / "opencv_cameras.json").is_file():
                raise FileNotFoundError(f"{sub} is missing from the evaluation set folder (write it with: facelift synth heads --split test --count {self.subjects})")
            render = load_subject(sub)
            if render.params.get("split") != "test" or render.params.get("kind") != "heads":
                raise ValueError(f"{sub} is not a heads/test subject")
            if render.rgba.shape[0] < len(views):
                raise ValueError(f"{sub} has {render.rgba.shape[0]} views, the protocol needs {len(views)} (6 + {self.num_random} random)")
            rgba, cameras, names = render.rgba[: len(views)], render.cameras[: len(views)], render.view_names[: len(views)]
        else:
            render = render_subject("heads", index, "test", resolution=self.resolution, num_random=self.num_random, supersample=self.supersample)
            rgba, cameras, names = render.rgba, render.cameras, render.view_names
        return EvalSubject(self.name(index), index, composite(rgba.float()), rgba[:, 3:].float(), cameras, list(names))

    def describe(self) -> dict:
        """JSON-able description (what ``results.json`` records)."""
        return {
            "split": "heads/test", "subjects": self.subjects, "num_random": self.num_random,
            "source": str(self.folder) if self.folder is not None else f"rendered on the fly at {self.resolution} px, supersample {self.supersample}",
        }  # fmt: skip


def resize_views(images: Tensor, size: int) -> Tensor:
    """``[V, C, H, W]`` resized to ``size`` x ``size`` (antialiased bilinear), unchanged when already that size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
