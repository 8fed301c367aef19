"""The end-to-end pipeline: photo -> preprocessed input -> six views (diffusion) -> Gaussians (GS-LRM).

Weights are named by a spec string (:func:`resolve_weights`):

- ``default``: the weights bundled with facelift (``facelift/weights/default``);
- a folder written by :meth:`FaceLiftPipeline.save_pretrained` (``facelift_pipeline.json``, ``mvdiffusion/``,
  ``gslrm/`` and, optionally, ``gslrm-views/``: a second GS-LRM for real posed views, see
  :class:`ReconstructorOnly`);
- ``official:GSLRM_CKPT,DIFFUSION_FOLDER``: the authors' released GS-LRM checkpoint (``ckpt_*.pt``) and
  diffusers folder (``pipeckpts/``).

Each stage can be used alone: :meth:`FaceLiftPipeline.generate_views` (or ``generate_samples``),
:meth:`FaceLiftPipeline.reconstruct` (from any posed images, e.g. the user's own multi-view captures) and
:meth:`FaceLiftPipeline.render`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.cameras.orbits import facelift_views
from facelift.gaussians.container import Gaussians
from facelift.gaussians.ops import PruneSettings, average_corresponding
from facelift.models.gslrm.model import GSLRM
from facelift.pipeline.refine import RefineSettings, parse_refine_params, refine_gaussians, refine_params_name, refine_settings
from facelift.preprocess.face import Preprocessed, PreprocessSettings, preprocess
from facelift.preprocess.image import to_image
from facelift.rendering.rasterize import rasterize
from facelift.utils.io import atomic_write_text, staged_output_dir

__all__ = ["DEFAULT_WEIGHTS", "FaceLiftPipeline", "FaceLiftResult", "ReconstructorOnly", "WeightsSpec", "is_gslrm_folder", "is_pipeline_folder", "reconstructor_folders", "resolve_weights", "sample_seed"]

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default"
"""Where the bundled default weights live inside the package."""
PIPELINE_FORMAT = "facelift.pipeline/1"
_META = "facelift_pipeline.json"
_VIEWS_GSLRM = "gslrm-views"


def sample_seed(seed: int, k: int) -> int:
    """Seed of the ``k``-th diffusion sample of a subject whose seed is ``seed``
    (:meth:`FaceLiftPipeline.generate_samples`): ``seed`` itself for ``k = 0``, so one sample is the plain seeded
    result; otherwise a 63-bit hash of both, so that the extra samples of one seed do not reuse another seed's
    first sample."""
    if k < 0:
        raise ValueError(f"sample index must be >= 0, got {k}")
    if k == 0:
        return int(seed)
    return int.from_bytes(hashlib.blake2b(f"facelift-sample:{int(seed)}:{k}".encode(), digest_size=8).digest(), "little") >> 1


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class WeightsSpec:
    """Where the two models' weights come from."""

    kind: str
    """``facelift`` (a pipeline folder) or ``official`` (the authors' files)."""
    folder: Path | None = None
    """The pipeline folder (``facelift``)."""
    gslrm_checkpoint: Path | None = None
    """The authors' ``ckpt_*.pt`` (``official``)."""
    diffusion_folder: Path | None = None
    """The authors' diffusers folder (``official``)."""


def resolve_weights(spec: str | os.PathLike = "default") -> WeightsSpec:
    """Parse a weights spec (see the module docstring) and check that its files exist.

    Raises:
        FileNotFoundError: the named files or folders are missing (the message says what to pass instead).
        ValueError: a malformed ``official:`` spec.

    Example:
        >>> resolve_weights("official:ckpt.pt,pipeckpts")  # doctest: +SKIP
    """
    text = str(spec)
    if text.startswith("official:"):
        parts = [p.strip() for p in text[len("official:") :].split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"official weights are given as official:GSLRM_CKPT,DIFFUSION_FOLDER, got {text!r}")
        ckpt, folder = Path(parts[0]).expanduser(), Path(parts[1]).expanduser()
        if not ckpt.is_file():
            raise FileNotFoundError(f"GS-LRM checkpoint {ckpt} not found")
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(f"{folder} is not the authors' diffusion folder (no model_index.json)")
        return WeightsSpec("official", gslrm_checkpoint=ckpt, diffusion_folder=folder)
    folder = DEFAULT_WEIGHTS if text == "default" else Path(text).expanduser()
    if not (folder / _META).is_file():
        if text == "default":
            raise FileNotFoundError(
                f"no default weights are bundled at {folder} in this version; pass --weights PATH (a folder from "
                "FaceLiftPipeline.save_pretrained) or --weights official:GSLRM_CKPT,DIFFUSION_FOLDER"
            )
        raise FileNotFoundError(f"{folder} is not a facelift weights folder (no {_META})")
    return WeightsSpec("facelift", folder=folder)


def _read_meta(folder: Path) -> dict[str, Any]:
    """A weights folder's ``facelift_pipeline.json`` (sub-folder names, pruning), its format checked."""
    meta = json.loads((folder / _META).read_text())
    if meta.get("format") != PIPELINE_FORMAT:
        raise ValueError(f"{folder}: unsupported weights format {meta.get('format')!r}")
    return meta


def reconstructor_folders(folder: str | os.PathLike) -> tuple[Path, Path | None]:
    """A pipeline weights folder's GS-LRM folders, as its ``facelift_pipeline.json`` names them: ``(the
    pipeline's, the one for real posed views or None)`` (``gslrm/``, ``gslrm-views/``)."""
    folder = Path(folder)
    meta = _read_meta(folder)
    views = meta.get("gslrm_views")
    return folder / meta.get("gslrm", "gslrm"), (folder / views if views else None)


@dataclass
class FaceLiftResult:
    """Everything one photo produced."""

    input: Preprocessed
    """The preprocessed input view (``input.image [3, S, S]`` on white) and what was found in the photo."""
    views: Float[Tensor, "V 3 H W"]
    """The generated views, in ``view_names`` order, in [0, 1] (on the CPU)."""
    view_names: tuple[str, ...]
    """Names of the generated views."""
    cameras: Cameras
    """``[V]`` cameras of the generated views (FOV 50, radius 2.7, around the input azimuth)."""
    gaussians: Gaussians
    """``[N]`` Gaussians (head facing front, -y), pruned with the pipeline's ``prune_settings``."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: ``preprocess``, ``diffusion``, ``reconstruction`` (``refinement`` and ``input_fit`` when
    they ran, and ``rendering`` when exported)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class FaceLiftPipeline:
    """Photo to 3D Gaussians (see the module docstring).

    Args:
        diffusion: a :class:`facelift.models.mvdiffusion.MultiViewDiffusion`.
        reconstructor: a :class:`GSLRM`.
        device: where both models run.
        preprocess_settings: defaults for :meth:`preprocess` (its ``size`` is set to the diffusion size).
        autocast_dtype: autocast dtype of the reconstructor on CUDA (e.g. ``torch.bfloat16``).
        prune_settings: the pruning :meth:`reconstruct` applies (default: the reference release's rules; a
            weights folder records its own in ``facelift_pipeline.json`` under ``prune``).
        fit_input_steps: steps of :meth:`fit_input` (fitting the Gaussians to the input photo at its camera)
            that a call runs by default; 0 for none (a weights folder records its own under
            ``fit_input_steps``; the bundled weights use 50).
        fit_input_params: which Gaussian parameters :meth:`fit_input` moves: ``"all"``, ``"appearance"``
            (opacities and colours, the geometry frozen), ``"colour"`` or a list of kinds
            (:func:`facelift.pipeline.refine.parse_refine_params`; a weights folder records its own under
            ``fit_input_params``; the bundled weights use ``"appearance"``).
        num_samples: diffusion samples per photo whose reconstructions a call averages
            (:meth:`generate_samples`, :meth:`reconstruct`); 1 is the plain pipeline (a weights folder records its
            own under ``num_samples``).
        views_reconstructor: optional second :class:`GSLRM` for real posed views, for when ``reconstructor`` was
            trained on the diffusion model's own views (which it then reconstructs better, and real views worse).
            The pipeline never runs it; :meth:`save_pretrained` writes it as ``gslrm-views/`` and
            :meth:`ReconstructorOnly.load` (``facelift reconstruct-views``, ``facelift eval --mode
            reconstructor``) prefers it. None: ``reconstructor`` serves both.

    Example:
        >>> pipe = FaceLiftPipeline.from_pretrained("default")  # doctest: +SKIP
        >>> result = pipe("photo.jpg", seed=0)  # doctest: +SKIP
        >>> result.gaussians.num, result.timings  # doctest: +SKIP
    """

    def __init__(
        self,
        diffusion,
        reconstructor: GSLRM,
        *,
        device: torch.device | str = "cpu",
        preprocess_settings: PreprocessSettings | None = None,
        autocast_dtype: torch.dtype | None = None,
        prune_settings: PruneSettings | None = None,
        fit_input_steps: int = 0,
        fit_input_params: str | Sequence[str] = "all",
        num_samples: int = 1,
        views_reconstructor: GSLRM | None = None,
    ) -> None:
        self.views_reconstructor = views_reconstructor.eval() if views_reconstructor is not None else None
        self.fit_input_steps = _check_count("fit_input_steps", fit_input_steps, 0)
        self.fit_input_params = parse_refine_params(fit_input_params)
        self.num_samples = _check_count("num_samples", num_samples, 1)
        self.device = torch.device(device)
        self.prune_settings = prune_settings or PruneSettings()
        self.diffusion = diffusion.to(self.device).eval()
        self.reconstructor = reconstructor.to(self.device).eval()
        base = preprocess_settings or PreprocessSettings()
        self.preprocess_settings = PreprocessSettings(
            size=diffusion.image_size, crop=base.crop, matting=base.matting, estimate_yaw=base.estimate_yaw, min_score=base.min_score
        )
        self.autocast_dtype = autocast_dtype

    # ---- weights --------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, spec: str | os.PathLike = "default", *, device: torch.device | str = "cpu", **kwargs: Any) -> FaceLiftPipeline:
        """Load both models from a weights spec (``default``, a folder, or ``official:CKPT,FOLDER``)."""
        from facelift.models.mvdiffusion import MultiViewDiffusion

        weights = resolve_weights(spec)
        device = torch.device(device)
        if weights.kind == "official":
            dtype = torch.float16 if device.type == "cuda" else None
            diffusion = MultiViewDiffusion.from_official(weights.diffusion_folder, device=device, dtype=dtype)
            reconstructor = GSLRM.from_official_checkpoint(weights.gslrm_checkpoint)
            if device.type == "cuda":
                kwargs.setdefault("autocast_dtype", torch.bfloat16)
        else:
            meta = _read_meta(weights.folder)
            diffusion = MultiViewDiffusion.from_pretrained(weights.folder / meta.get("mvdiffusion", "mvdiffusion"))
            own, views = reconstructor_folders(weights.folder)
            reconstructor = GSLRM.from_pretrained(own)
            if views is not None:
                kwargs.setdefault("views_reconstructor", GSLRM.from_pretrained(views))
            kwargs.setdefault("prune_settings", PruneSettings.from_dict(meta.get("prune", {})))
            kwargs.setdefault("fit_input_steps", int(meta.get("fit_input_steps", 0)))
            kwargs.setdefault("fit_input_params", meta.get("fit_input_params", "all"))
            kwargs.setdefault("num_samples", int(meta.get("num_samples", 1)))
        return cls(diffusion, reconstructor, device=device, **kwargs)

    def save_pretrained(self, directory: str | os.PathLike, *, overwrite: bool = True, dtype: torch.dtype | None = None) -> Path:
        """Write a weights folder (``facelift_pipeline.json``, ``mvdiffusion/``, ``gslrm/``, ``gslrm-views/`` when there
        is a ``views_reconstructor``) atomically."""
        directory = Path(directory)
        with staged_output_dir(directory, overwrite=overwrite) as tmp:
            self.diffusion.save_pretrained(tmp / "mvdiffusion", dtype=dtype)
            self.reconstructor.save_pretrained(tmp / "gslrm", dtype=dtype)
            meta = {
                "format": PIPELINE_FORMAT, "mvdiffusion": "mvdiffusion", "gslrm": "gslrm", "prune": self.prune_settings.to_dict(),
                "fit_input_steps": self.fit_input_steps, "fit_input_params": refine_params_name(self.fit_input_params), "num_samples": self.num_samples,
            }  # fmt: skip
            if self.views_reconstructor is not None:
                self.views_reconstructor.save_pretrained(tmp / _VIEWS_GSLRM, dtype=dtype)
                meta["gslrm_views"] = _VIEWS_GSLRM
            atomic_write_text(tmp / _META, json.dumps(meta, indent=2) + "\n")
        return directory

    def resolve_settings(self, *, fit_input_steps: int | None = None, num_samples: int | None = None) -> tuple[int, int]:
        """``(fit_input_steps, num_samples)`` that a call runs: the given values, or the pipeline's own for None
        (what the CLI, ``eval`` and ``bench`` record)."""
        fit = _check_count("fit_input_steps", self.fit_input_steps if fit_input_steps is None else fit_input_steps, 0)
        return fit, _check_count("num_samples", self.num_samples if num_samples is None else num_samples, 1)

    # ---- stages ---------------------------------------------------------------------------------------

    def preprocess(self, image, **overrides: Any) -> Preprocessed:
        """Decode (path, PIL, array or tensor) and preprocess one photo; ``overrides`` replace settings fields."""
        settings = self.preprocess_settings
        if overrides:
            settings = PreprocessSettings(**{**settings.__dict__, **overrides})
        return preprocess(to_image(image), settings)

    def generate_samples(
        self,
        images: Float[Tensor, "B 3 H W"],
        *,
        seed: int | list[int] = 0,
        steps: int = 50,
        guidance: float = 3.0,
        solver: str = "ddim",
        eta: float = 1.0,
        num_samples: int | None = None,
    ) -> Float[Tensor, "B K V 3 S S"]:
        """``K = num_samples`` (None: :attr:`num_samples`) sets of generated views per input view (on white, in
        [0, 1]), drawn in one batch; ``seed`` per subject or one for all, sample ``k`` from :func:`sample_seed`
        ``(seed, k)`` (sample 0 is the plain seeded result).

        The samples agree on what the input shows and differ where it does not determine the head (its sides and
        back); :meth:`reconstruct` averages the Gaussians it predicts from each (their mean is closer to the
        ground truth on average than any one sample; ``docs/evaluation.md`` has the measurements).
        """
        _, k = self.resolve_settings(num_samples=num_samples)
        seeds = [int(s) for s in seed] if isinstance(seed, (list, tuple)) else [int(seed)] * images.shape[0]
        if len(seeds) != images.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for {images.shape[0]} images")
        generators = [torch.Generator().manual_seed(sample_seed(s, j)) for j in range(k) for s in seeds]
        batch = images if k == 1 else images.repeat(k, 1, 1, 1)  # sample-major: [k * B, 3, H, W]
        out = self.diffusion.sample(batch, num_inference_steps=steps, guidance_scale=guidance, eta=eta, solver=solver, generator=generators)
        views = out.images.float().cpu()
        return views.reshape(k, images.shape[0], *views.shape[1:]).transpose(0, 1)

    def generate_views(self, images: Float[Tensor, "B 3 H W"], **kwargs: Any) -> Float[Tensor, "B V 3 S S"]:
        """The generated views (six for the default models) per input view (on white, in [0, 1]): one sample,
        or the pixel-wise mean of ``num_samples`` (arguments as :meth:`generate_samples`)."""
        return self.generate_samples(images, **kwargs).mean(1)

    @property
    def view_names(self) -> tuple[str, ...]:
        """Names of the generated views, in order (all six, the five novel ones for the model without input-view
        reconstruction, or the eight of the view-count ablation)."""
        return tuple(self.diffusion.view_names[i] for i in self.diffusion.generated_views)

    def view_cameras(self, azimuth_deg: float = 0.0, resolution: int | None = None) -> Cameras:
        """The ``[V]`` cameras of the generated views around an input azimuth."""
        cams = self._all_view_cameras(azimuth_deg, resolution or self.diffusion.image_size)
        return cams[torch.tensor(self.diffusion.generated_views)]

    def _all_view_cameras(self, azimuth_deg: float, resolution: int) -> Cameras:
        return facelift_views(float(azimuth_deg), resolution=resolution, view_names=self.diffusion.view_names)

    def reconstructor_inputs(
        self,
        input_image: Float[Tensor, "3 S S"],
        views: Float[Tensor, "*K G 3 S S"],
        azimuth_deg: float = 0.0,
        *,
        select: tuple[int, ...] | None = None,
    ) -> tuple[Float[Tensor, "*K V 3 S S"], Cameras]:
        """The reconstructor's input: the diffusion model's views (the six FaceLift views) and their cameras
        around ``azimuth_deg``.

        Args:
            input_image: the (preprocessed) input view, ``[3, S, S]`` on white.
            views: the generated views in ``diffusion.generated_views`` order, optionally with a leading axis of
                samples (``[K, G, 3, S, S]``, from :meth:`generate_samples`). A model that generates only the
                five novel views (the ablation) gets the input itself as view 0.
            azimuth_deg: the input azimuth.
            select: indices into the model's views (``diffusion.view_names``) to keep (e.g. ``(0, 2, 3, 4)``
                of the six: front, right, back, left); all by default.

        Returns:
            ``(images [*K, V, 3, S, S], cameras [V])``.
        """
        if views.ndim not in (4, 5):
            raise ValueError(f"views must be [G, 3, S, S] or [K, G, 3, S, S], got {tuple(views.shape)}")
        full = views
        if 0 not in self.diffusion.generated_views:
            full = torch.cat([input_image.to(views).expand(*views.shape[:-4], 1, *views.shape[-3:]), views], dim=-4)
        expected = len(self.diffusion.view_names)
        if full.shape[-4] != expected:
            raise ValueError(f"expected {expected} views after adding the input, got {full.shape[-4]}")
        cameras = self._all_view_cameras(azimuth_deg, full.shape[-1])
        if select is not None:
            index = [int(i) for i in select]
            if not index or len(set(index)) != len(index) or any(not 0 <= i < expected for i in index):
                raise ValueError(f"select must be distinct view indices in 0..{expected - 1}, got {select}")
            full, cameras = full[..., index, :, :, :], cameras[torch.tensor(index)]
        return full, cameras

    def reconstruct(
        self,
        images: Float[Tensor, "V 3 H W"],
        cameras: Cameras,
        *,
        prune: bool = True,
        resolution: int | None = None,
        refine: RefineSettings | int | None = None,
    ) -> Gaussians:
        """Gaussians from posed views (generated, or the user's own images and cameras).

        Args:
            images: ``[V, 3, H, W]`` in [0, 1], on white; or ``[K, V, 3, H, W]``, K versions of the same views
                (diffusion samples, :meth:`generate_samples`): the reconstructor runs on each (one batch), and
                its pixel-aligned Gaussians are averaged one to one
                (:func:`~facelift.gaussians.ops.average_corresponding`) before pruning; refinement then fits
                the mean of the K versions.
            cameras: ``[V]`` cameras of those images (OpenCV, see :mod:`facelift.cameras`).
            prune: apply the pipeline's pruning (:attr:`prune_settings`).
            resolution: resize the views (and cameras) to this square size first; needs a multiple of the
                patch size. Default: as given (H and W must be multiples of the patch size).
            refine: after the feed-forward prediction (and pruning), fit the Gaussians to the same views
                by gradient descent (:func:`facelift.pipeline.refine.refine_gaussians`): settings, a number of
                steps with the default settings, or None / 0 for none.
        """
        if images.ndim not in (4, 5) or images.shape[-3] != 3:
            raise ValueError(f"images must be [V, 3, H, W] or [K, V, 3, H, W], got {tuple(images.shape)}")
        if tuple(cameras.batch_shape) != (images.shape[-4],):
            raise ValueError(f"need one camera per image: {images.shape[-4]} images, cameras {tuple(cameras.batch_shape)}")
        samples = images.reshape(-1, *images.shape[-4:])  # [K, V, 3, H, W]
        if resolution is not None and (images.shape[-1] != resolution or images.shape[-2] != resolution):
            sx, sy = resolution / images.shape[-1], resolution / images.shape[-2]
            flat = F.interpolate(samples.flatten(0, 1).float(), size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
            samples = flat.reshape(*samples.shape[:2], *flat.shape[1:])
            K = cameras.K.clone()
            K[..., 0, :] *= sx
            K[..., 1, :] *= sy
            cameras = Cameras(cameras.c2w, K, resolution, resolution)
        patch = self.reconstructor.config.patch_size
        if samples.shape[-1] % patch or samples.shape[-2] % patch:
            raise ValueError(f"image size {tuple(samples.shape[-2:])} must be a multiple of the patch size {patch}")
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None and self.device.type == "cuda" else contextlib.nullcontext()
        )
        k = samples.shape[0]
        with torch.no_grad(), autocast:
            batch_cameras = Cameras.stack([cameras] * k)  # [K, V]
            gaussians = self.reconstructor(samples.to(self.device).float(), batch_cameras.to(self.device))  # [K, N]
        gaussians = gaussians[0] if k == 1 else average_corresponding(gaussians.to(dtype=torch.float32))
        gaussians = self.prune_settings.apply(gaussians) if prune else gaussians
        refine = refine_settings(refine)
        if refine is not None:
            gaussians = refine_gaussians(gaussians, samples.mean(0).to(self.device).float(), cameras.to(self.device), refine)
        return gaussians

    def fit_input(
        self,
        gaussians: Gaussians,
        input_image: Float[Tensor, "3 S S"],
        azimuth_deg: float = 0.0,
        refine: RefineSettings | int | None = None,
    ) -> Gaussians:
        """Fit the Gaussians to the input photo at its own camera (the first of the model's views, at
        ``azimuth_deg``) by gradient descent (:func:`facelift.pipeline.refine.refine_gaussians`).

        The photo is the one view the pipeline can trust: the generated views disagree with each other, and
        fitting them too makes novel views worse, while fitting the photo alone sharpens what it shows
        (the bundled diffusion model with the eighth session's reconstructor, 40 held-out heads: +0.64 ± 0.06
        dB PSNR and +0.024 SSIM at random novel views with 50 steps; ``docs/evaluation.md``). Gaussians the
        photo does not see keep their prediction. Which parameters move is :attr:`fit_input_params`: with a
        reconstructor trained on generated views, moving only opacities and colours (``"appearance"``, the
        bundled weights' setting) beats moving every parameter at novel views by +0.36 ± 0.05 dB (20 heads).

        Args:
            gaussians: ``[N]`` Gaussians reconstructed around ``azimuth_deg``.
            input_image: the preprocessed photo, ``[3, S, S]`` on white (resized to the reconstructor's
                size if it differs).
            azimuth_deg: the input azimuth (as given to :meth:`reconstructor_inputs`).
            refine: settings, a number of steps (with the default settings and the pipeline's
                :attr:`fit_input_params`), 0 for none, or None for the pipeline's :attr:`fit_input_steps`.
        """
        settings = self.fit_settings(refine)
        if settings is None:
            return gaussians
        size = self.reconstructor.config.image_size
        target = input_image.float()[None]
        if target.shape[-1] != size or target.shape[-2] != size:
            target = F.interpolate(target, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        camera = self._all_view_cameras(azimuth_deg, size)[:1]
        return refine_gaussians(gaussians.to(self.device), target.to(self.device), camera.to(self.device), settings)

    @torch.no_grad()
    def render(self, gaussians: Gaussians, cameras: Cameras, *, background: float = 1.0) -> Float[Tensor, "V 3 H W"]:
        """Render Gaussians at the given cameras (fp32, white background)."""
        return rasterize(gaussians.to(self.device), cameras.to(self.device), background=background).rgb.cpu()

    def fit_settings(
        self, fit_input: RefineSettings | int | None = None, params: str | Sequence[str] | None = None
    ) -> RefineSettings | None:
        """What :meth:`fit_input` runs for ``fit_input``: settings as given, or a number of steps (None:
        :attr:`fit_input_steps`) moving ``params`` (a preset, a comma list or a sequence; None: the pipeline's
        :attr:`fit_input_params`); None when that is no step at all."""
        if isinstance(fit_input, RefineSettings):
            return refine_settings(fit_input)
        steps = _check_count("fit_input_steps", self.fit_input_steps if fit_input is None else fit_input, 0)
        return refine_settings(RefineSettings(steps=steps, params=self.fit_input_params if params is None else params))

    # ---- everything -----------------------------------------------------------------------------------

    def __call__(
        self,
        image,
        *,
        seed: int = 0,
        steps: int = 50,
        guidance: float = 3.0,
        solver: str = "ddim",
        refine: RefineSettings | int | None = None,
        fit_input: RefineSettings | int | None = None,
        num_samples: int | None = None,
        **preprocess_overrides: Any,
    ) -> FaceLiftResult:
        """Photo (path, PIL image, array or tensor) -> :class:`FaceLiftResult` (views, cameras, Gaussians, timings).

        ``refine`` (settings or a number of steps) fits the Gaussians to the generated views after the
        reconstructor (see :meth:`reconstruct`); its time is reported as ``timings["refinement"]``. Then
        ``fit_input`` (settings, steps, 0 for none, None for :attr:`fit_input_steps`) fits them to the photo
        itself (:meth:`fit_input`), timed as ``timings["input_fit"]``. With ``num_samples`` (None:
        :attr:`num_samples`) > 1, the reconstructor runs on each diffusion sample and their Gaussians are averaged
        (:meth:`reconstruct`); the result's ``views`` are the samples' pixel-wise mean.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        pre = self.preprocess(image, **preprocess_overrides)
        timings["preprocess"] = time.perf_counter() - start
        start = time.perf_counter()
        samples = self.generate_samples(pre.image[None], seed=seed, steps=steps, guidance=guidance, solver=solver, num_samples=num_samples)[0]
        views = samples.mean(0)  # what the result shows: the one sample, or the mean of several
        _sync(self.device)
        timings["diffusion"] = time.perf_counter() - start
        start = time.perf_counter()
        cameras = self.view_cameras(pre.azimuth_deg, resolution=views.shape[-1])
        images, view_cameras = self.reconstructor_inputs(pre.image, samples, pre.azimuth_deg)
        gaussians = self.reconstruct(images, view_cameras)
        _sync(self.device)
        timings["reconstruction"] = time.perf_counter() - start
        refine = refine_settings(refine)
        if refine is not None:
            start = time.perf_counter()
            gaussians = refine_gaussians(gaussians, images.mean(0).to(self.device).float(), view_cameras.to(self.device), refine)
            _sync(self.device)
            timings["refinement"] = time.perf_counter() - start
        fit = self.fit_settings(fit_input)
        if fit is not None:  # timed only when it runs
            start = time.perf_counter()
            gaussians = self.fit_input(gaussians, pre.image, pre.azimuth_deg, fit)
            _sync(self.device)
            timings["input_fit"] = time.perf_counter() - start
        return FaceLiftResult(pre, views, self.view_names, cameras, gaussians.to("cpu"), timings)


class ReconstructorOnly:
    """The reconstruction half of a pipeline (:meth:`FaceLiftPipeline.reconstruct` and ``render``), for posed views
    that need no diffusion model (``facelift reconstruct-views``, ``facelift eval --mode reconstructor``).

    :meth:`load` takes a pipeline weights spec (only its GS-LRM and pruning are read, the diffusion model is not
    loaded; its ``gslrm-views/`` when it has one, for a pipeline whose ``gslrm/`` was trained on generated views),
    a bare GS-LRM folder (``config.json`` + ``model.safetensors``, e.g. a training run's ``final/``: pruned like
    facelift's own models) or the authors' GS-LRM checkpoint file alone (``ckpt_*.pt``: the reference rules).
    """

    diffusion = None

    def __init__(self, reconstructor: GSLRM, *, device: torch.device | str = "cpu", prune_settings: PruneSettings | None = None, autocast_dtype: torch.dtype | None = None) -> None:
        self.device = torch.device(device)
        self.reconstructor = reconstructor.to(self.device).eval()
        self.prune_settings = prune_settings or PruneSettings()
        self.autocast_dtype = autocast_dtype

    @classmethod
    def load(cls, spec: str | os.PathLike = "default", *, device: torch.device | str = "cpu") -> ReconstructorOnly:
        """Load from a weights spec, a bare GS-LRM folder or an official checkpoint file (see the class docstring).

        Raises:
            FileNotFoundError: nothing loadable at ``spec`` (the message names what is accepted).
        """
        device = torch.device(device)
        path = Path(str(spec)).expanduser()
        if is_gslrm_folder(path):
            return cls(GSLRM.from_pretrained(path), device=device, prune_settings=PruneSettings.procedural())
        autocast = torch.bfloat16 if device.type == "cuda" else None
        if path.is_file() and path.suffix == ".pt":
            return cls(GSLRM.from_official_checkpoint(path), device=device, autocast_dtype=autocast)
        weights = resolve_weights(spec)
        if weights.kind == "official":
            return cls(GSLRM.from_official_checkpoint(weights.gslrm_checkpoint), device=device, autocast_dtype=autocast)
        meta = _read_meta(weights.folder)
        own, views = reconstructor_folders(weights.folder)
        reconstructor = GSLRM.from_pretrained(views or own)
        return cls(reconstructor, device=device, prune_settings=PruneSettings.from_dict(meta.get("prune", {})))

    reconstruct = FaceLiftPipeline.reconstruct
    render = FaceLiftPipeline.render


def is_gslrm_folder(path: str | os.PathLike) -> bool:
    """True for a bare GS-LRM folder (``config.json`` + ``model.safetensors``)."""
    folder = Path(path)
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def is_pipeline_folder(path: str | os.PathLike) -> bool:
    """True for a weights folder written by :meth:`FaceLiftPipeline.save_pretrained` (``facelift_pipeline.json``)."""
    return (Path(path) / _META).is_file()
