"""The diffusion model's views of training subjects, written to disk for training the reconstructor on them.

In the pipeline the reconstructor sees generated views: softer than renders, off in colour, and not quite
consistent with each other or with the truth at the sides and back. A reconstructor trained only on clean
renders has never seen such inputs. :func:`write_generated_views` runs a diffusion model on the input view
(the front) of every subject of a training folder and stores its six views; the reconstructor's trainer then
feeds them in place of the clean fixed views (``facelift train gslrm ... --generated-root DIR
--generated-inputs P``) while the supervision stays the ground-truth renders, so the reconstructor learns to
map what the diffusion model makes to what the head is.

Layout: ``OUT/generated.json`` (settings, view names, the model's folder) and ``OUT/<subject>/sample_<k>.png``,
one strip per diffusion sample with the six views side by side (``[S, 6 S, 3]``, on white, in the order of
:data:`facelift.cameras.orbits.FACELIFT_VIEW_NAMES`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from facelift.cameras.orbits import FACELIFT_VIEW_NAMES
from facelift.training.loop import seeded_generator
from facelift.utils.io import atomic_path, atomic_write_text

__all__ = ["GeneratedViewsSettings", "GeneratedViewsSummary", "GeneratedViews", "write_generated_views"]

logger = logging.getLogger(__name__)

GENERATED_FORMAT = "facelift.generated-views/1"
_MANIFEST = "generated.json"
_SEED_TAG = 4


@dataclass(frozen=True)
class GeneratedViewsSettings:
    """How the views are sampled (the evaluation's defaults: DPM-Solver++ 20 steps, guidance 3.0)."""

    samples: int = 2
    """Diffusion samples per subject (the trainer draws one of them per training sample)."""
    steps: int = 20
    """Denoising steps."""
    solver: Literal["ddim", "dpmsolver++"] = "dpmsolver++"
    """Sampler."""
    guidance: float = 3.0
    """Classifier-free guidance scale."""
    eta: float = 1.0
    """DDIM stochasticity (ignored by DPM-Solver++)."""
    seed: int = 0
    """Seeds every subject's noise (with the subject's name and the sample index)."""
    batch_size: int = 8
    """Subjects sampled together (each with its own generator, so the result depends on it only through float
    rounding: within one 8-bit level in the tests)."""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"need samples >= 1, steps >= 1 and batch_size >= 1, got {self}")
        if self.guidance < 1:
            raise ValueError(f"guidance must be >= 1 (1 disables it), got {self.guidance}")
        if self.solver not in ("ddim", "dpmsolver++"):
            raise ValueError(f"solver must be 'ddim' or 'dpmsolver++', got {self.solver!r}")


@dataclass(frozen=True)
class GeneratedViewsSummary:
    """What :func:`write_generated_views` did."""

    out: Path
    written: int
    skipped: int
    seconds: float


def _subject_seed(seed: int, name: str, sample: int) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    index = int(digits) if digits else sum(name.encode())
    return int(torch.randint(2**62, (1,), generator=seeded_generator(seed, _SEED_TAG, index, sample)))


def _sample_path(root: Path, name: str, sample: int) -> Path:
    return root / name / f"sample_{sample}.png"


def _input_view(folder: Path) -> Float[Tensor, "3 H W"]:
    """The subject's front view composited on white (what the evaluation feeds the pipeline)."""
    from facelift.synthetic.dataset import load_subject

    render = load_subject(folder, views=[0])
    names = list(render.params.get("view_names") or [])
    if names[: len(FACELIFT_VIEW_NAMES)] != list(FACELIFT_VIEW_NAMES):
        raise ValueError(f"{folder}: its first views are {names[:6]}, expected the six FaceLift views {list(FACELIFT_VIEW_NAMES)}")
    rgba = render.rgba[0].float()  # [4, H, W], straight alpha
    return rgba[:3] * rgba[3:] + (1 - rgba[3:])


def write_generated_views(
    diffusion,
    data_root: str | os.PathLike,
    out: str | os.PathLike,
    settings: GeneratedViewsSettings = GeneratedViewsSettings(),
    *,
    count: int | None = None,
    start: int = 0,
    progress: bool = False,
) -> GeneratedViewsSummary:
    """Sample the diffusion model's six views for the subjects of a training folder and write them to ``out``.

    Resumable: a subject whose sample files all exist is skipped; each file is written atomically. A folder
    written with other settings or another model's view names is refused.

    Args:
        diffusion: a :class:`facelift.models.mvdiffusion.MultiViewDiffusion` whose views are the six FaceLift
            views (the input-view reconstruction ablation, which generates five, gets the input as its front).
        data_root: a split folder written by ``facelift synth heads`` (``DIR/train``).
        out: output folder.
        settings: sampling settings.
        count: subjects to cover (the first ``count`` from ``start``, in name order); None: all.
        start: first subject (position in name order).
        progress: show a progress bar.

    Returns:
        :class:`GeneratedViewsSummary`.

    Example:
        >>> write_generated_views(model, "data/heads64/train", "data/heads64/generated", count=400)  # doctest: +SKIP
    """
    from facelift.synthetic.dataset import SyntheticFolderDataset

    folders = SyntheticFolderDataset(data_root, mode="reconstructor", num_views=1).folders
    if start < 0 or (count is not None and count < 1):
        raise ValueError(f"need start >= 0 and count >= 1, got start={start}, count={count}")
    if start >= len(folders):
        raise ValueError(f"start {start} is past the {len(folders)} subjects of {data_root}")
    folders = folders[start : None if count is None else start + count]
    names = list(getattr(diffusion, "view_names", ()))
    if names != list(FACELIFT_VIEW_NAMES):
        raise ValueError(f"the diffusion model's views are {names}; generated training views need the six FaceLift views {list(FACELIFT_VIEW_NAMES)}")
    generated = [int(i) for i in diffusion.generated_views]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": GENERATED_FORMAT, "view_names": names, "settings": asdict(settings), "data_root": str(data_root), "image_size": int(diffusion.image_size)}
    existing = out / _MANIFEST
    if existing.is_file():  # resuming: everything that changes the pixels must match (the batch size does not)
        try:
            old = json.loads(existing.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{existing}: not valid JSON ({err})") from err

        def key(m: dict[str, Any]) -> tuple:
            s = {k: v for k, v in (m.get("settings") or {}).items() if k != "batch_size"}
            return m.get("format"), m.get("view_names"), s, m.get("image_size")

        if key(old) != key(manifest):
            raise ValueError(f"{out} holds views generated with other settings ({existing}); use another folder")
    atomic_write_text(existing, json.dumps(manifest, indent=2) + "\n")
    todo = [f for f in folders if not all(_sample_path(out, f.name, k).is_file() for k in range(settings.samples))]
    started, written = time.perf_counter(), 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="generated views", unit="subject")
    for i in range(0, len(todo), settings.batch_size):
        chunk = todo[i : i + settings.batch_size]
        inputs = torch.stack([_input_view(f) for f in chunk])  # [b, 3, H, W]
        batch = inputs.repeat(settings.samples, 1, 1, 1)  # sample-major: [samples * b, 3, H, W]
        gens = [torch.Generator().manual_seed(_subject_seed(settings.seed, f.name, k)) for k in range(settings.samples) for f in chunk]
        with torch.no_grad():
            views = diffusion.sample(
                batch, num_inference_steps=settings.steps, guidance_scale=settings.guidance, eta=settings.eta, solver=settings.solver, generator=gens
            ).images.float().cpu()  # [samples * b, G, 3, S, S]
        if 0 not in generated:  # the model without input-view reconstruction: the input is the front view
            size = views.shape[-1]
            front = torch.nn.functional.interpolate(batch.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            views = torch.cat([front[:, None].clamp(0, 1), views], dim=1)
        views = views.reshape(settings.samples, len(chunk), *views.shape[1:])
        for j, folder in enumerate(chunk):
            (out / folder.name).mkdir(exist_ok=True)
            for k in range(settings.samples):
                strip = torch.cat(list(views[k, j]), dim=-1)  # [3, S, 6 S]
                arr = (strip.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
                with atomic_path(_sample_path(out, folder.name, k)) as tmp:
                    Image.fromarray(arr).save(tmp, format="PNG")
            written += 1
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    logger.info("generated views: %d subjects written, %d already there, %.1f s", written, len(folders) - len(todo), seconds)
    return GeneratedViewsSummary(out, written, len(folders) - len(todo), seconds)


class GeneratedViews:
    """Reader of a folder written by :func:`write_generated_views`.

    Args:
        root: the folder.

    Example:
        >>> views = GeneratedViews("data/heads64/generated").load("head_000000", 0)  # doctest: +SKIP
        >>> tuple(views.shape)  # doctest: +SKIP
        (6, 3, 64, 64)
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        path = self.root / _MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} holds no generated views ({_MANIFEST} is missing; write them with: facelift synth generated)")
        try:
            self.manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if self.manifest.get("format") != GENERATED_FORMAT:
            raise ValueError(f"{path}: format {self.manifest.get('format')!r}, expected {GENERATED_FORMAT!r}")
        self.num_samples = int(self.manifest["settings"]["samples"])
        self.num_views = len(self.manifest["view_names"])

    def has(self, name: str) -> bool:
        """Whether every sample of subject ``name`` is there."""
        return all(_sample_path(self.root, name, k).is_file() for k in range(self.num_samples))

    def load(self, name: str, sample: int) -> Float[Tensor, "V 3 S S"]:
        """Sample ``sample`` of subject ``name``: ``[6, 3, S, S]`` in [0, 1] on white."""
        if not 0 <= sample < self.num_samples:
            raise ValueError(f"sample must be in 0..{self.num_samples - 1}, got {sample}")
        path = _sample_path(self.root, name, sample)
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: generate the views of {name} first (facelift synth generated ... covers it)") from None
        h, w, _ = arr.shape
        if w != h * self.num_views:
            raise ValueError(f"{path}: {w} x {h} px is not a strip of {self.num_views} square views")
        strip = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0  # [3, S, V S]
        return torch.stack(strip.split(h, dim=-1))  # [V, 3, S, S]
