"""``facelift synth heads|objects|preview|generated``: synthetic training data, a contact sheet to eyeball it, and
the diffusion model's views of training subjects (for training the reconstructor on them)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import tyro

from facelift.cli.common import OutPath, resolve_device
from facelift.training.generated import GeneratedViewsSettings

_Resolution = Annotated[int, tyro.conf.arg(aliases=("--res",))]


def _check(count: int, resolution: int, supersample: int) -> None:
    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    if resolution < 8:
        raise ValueError(f"--res must be >= 8, got {resolution}")
    if supersample < 1:
        raise ValueError(f"--supersample must be >= 1, got {supersample}")


@dataclass
class _GenerateCommand:
    out: OutPath
    """Output root: subjects go to OUT/<split>/<name>/, with OUT/<split>/manifest.jsonl."""
    count: int
    """Number of subjects to render (indices start .. start + count - 1 of the split)."""
    resolution: _Resolution = 256
    """Image size in pixels."""
    split: Literal["train", "test"] = "train"
    """train or test (test identities never appear in train)."""
    num_random: int = 32
    """Random views per subject, after the six FaceLift views."""
    workers: int = 1
    """Parallel rendering processes (one torch thread each)."""
    start: int = 0
    """First subject index."""
    supersample: int = 2
    """Anti-aliasing samples per pixel along each axis."""
    random_azimuth: bool = False
    """Rotate the six FaceLift views to a random input azimuth per subject (else the front is at 0)."""
    fixed_views: tuple[str, ...] = ("front", "front_right", "right", "back", "left", "front_left")
    """The named views rendered before the random ones (front front_right right back_right back back_left left
    front_left; the view-count ablation's eight-view model trains on all eight)."""
    device: str = "cpu"
    """cpu, auto, cuda or cuda:N (every worker renders there)."""
    progress: bool = True
    """Show a progress bar on stderr."""

    kind = "heads"

    def run(self) -> int:
        from facelift.synthetic.dataset import generate

        _check(self.count, self.resolution, self.supersample)
        if self.num_random < 0 or self.workers < 1 or self.start < 0:
            raise ValueError("need --num-random >= 0, --workers >= 1 and --start >= 0")
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"output {self.out} exists and is not a folder")
        device = resolve_device(self.device)
        summary = generate(
            self.kind, self.out, self.count, self.split, self.resolution, self.num_random, self.start, self.workers,
            self.progress, supersample=self.supersample, random_azimuth=self.random_azimuth, fixed_views=self.fixed_views, device=device,
        )  # fmt: skip
        result = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(summary).items()}
        result["seconds"] = round(summary.seconds, 2)
        print(json.dumps({"kind": self.kind, **result}))
        return 0


@dataclass
class SynthHeadsCommand(_GenerateCommand):
    """Render procedural heads (train: 200 identities x 50 variants; test: 40 unseen identities)."""

    kind = "heads"


@dataclass
class SynthObjectsCommand(_GenerateCommand):
    """Render procedural objects (the reconstructor's pre-training data)."""

    kind = "objects"


@dataclass
class SynthPreviewCommand:
    """Contact sheet: subjects (rows) x front, front-right, right and back views on white; the first half
    of the rows in ambient light, the rest under random key lights."""

    out: OutPath
    """Output image (.png or .jpg)."""
    kind: Literal["heads", "objects"] = "heads"
    """heads or objects."""
    count: int = 24
    """Subjects (rows), spread over the split."""
    resolution: _Resolution = 128
    """Size of each view in pixels."""
    split: Literal["train", "test"] = "train"
    """train or test."""
    supersample: int = 2
    """Anti-aliasing samples per pixel along each axis."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""

    def run(self) -> int:
        from facelift.rendering.media import save_image
        from facelift.synthetic.dataset import preview_sheet

        _check(self.count, self.resolution, self.supersample)
        if not self.out.parent.is_dir():
            raise FileNotFoundError(f"cannot write {self.out}: folder {self.out.parent} does not exist")
        sheet = preview_sheet(self.kind, self.count, self.resolution, self.split, supersample=self.supersample, device=resolve_device(self.device))
        save_image(self.out, sheet)
        print(json.dumps({"out": str(self.out), "kind": self.kind, "subjects": self.count, "size": list(sheet.shape[:2])}))
        return 0


@dataclass
class SynthGeneratedCommand:
    """The diffusion model's six views of every training subject (its front view as the input), for training
    the reconstructor on what the pipeline feeds it (``facelift train gslrm ... --generated-root OUT
    --generated-inputs P``). Resumable: finished subjects are skipped."""

    data: Path
    """A split folder written by facelift synth heads (DIR/train)."""
    out: OutPath
    """Output folder (generated.json and OUT/<subject>/sample_<k>.png)."""
    weights: str = "default"
    """Whose diffusion model samples the views: default, a weights folder, or a diffusion model's folder (a
    training run's final/)."""
    count: int | None = None
    """Subjects to cover from --start, in name order (default: all)."""
    start: int = 0
    """First subject (position in name order)."""
    sampling: tyro.conf.OmitArgPrefixes[GeneratedViewsSettings] = field(default_factory=GeneratedViewsSettings)
    """How the views are sampled (as the evaluation samples them by default)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    progress: bool = True
    """Show a progress bar on stderr."""

    def run(self) -> int:
        from facelift.models.mvdiffusion import MultiViewDiffusion
        from facelift.pipeline.facelift import FaceLiftPipeline, is_pipeline_folder
        from facelift.training.generated import write_generated_views

        if not self.data.is_dir():
            raise FileNotFoundError(f"training folder {self.data} does not exist (write it with: facelift synth heads --out DIR, then pass DIR/train)")
        if self.weights.startswith("official:"):
            raise ValueError("generated training views come from facelift's own weights (default or a folder), not the official checkpoint")
        device = resolve_device(self.device)
        if self.weights == "default" or is_pipeline_folder(self.weights):
            diffusion = FaceLiftPipeline.from_pretrained(self.weights, device=device).diffusion
        elif Path(self.weights).is_dir():
            diffusion = MultiViewDiffusion.from_pretrained(self.weights).to(device).eval()
        else:
            raise FileNotFoundError(f"--weights {self.weights}: not default, a weights folder or a diffusion model's folder")
        summary = write_generated_views(diffusion, self.data, self.out, self.sampling, count=self.count, start=self.start, progress=self.progress)
        print(json.dumps({"out": str(summary.out), "written": summary.written, "skipped": summary.skipped, "seconds": round(summary.seconds, 2)}))
        return 0


@dataclass
class SynthCommand:
    """Synthetic training data: render heads or objects to disk, or preview them."""

    command: tyro.conf.OmitArgPrefixes[
        Union[
            Annotated[SynthHeadsCommand, tyro.conf.subcommand("heads")],
            Annotated[SynthObjectsCommand, tyro.conf.subcommand("objects")],
            Annotated[SynthPreviewCommand, tyro.conf.subcommand("preview")],
            Annotated[SynthGeneratedCommand, tyro.conf.subcommand("generated")],
        ]
    ]

    def run(self) -> int:
        return self.command.run()
