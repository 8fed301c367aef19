"""``facelift bench``: per-stage latency and peak memory of the photo-to-3D pipeline on one device.

Stages, as ``facelift reconstruct`` runs them on one photo: ``preprocess`` (decode, face detection,
matting, crop), ``diffusion`` (the views), ``reconstruction`` (GS-LRM + pruning), with ``--refine-steps N``
``refinement`` (test-time refinement, :mod:`facelift.pipeline.refine`), ``input_fit`` (fitting the Gaussians
to the photo, when the weights or ``--fit-input-steps`` ask for it), ``rendering`` (the six
renders and the turntable frames, video encoding included) and ``export`` (PLY, SPLAT, mesh). Each stage is
timed over ``repeats`` runs after ``warmup`` runs (CUDA synchronised at stage ends), and the median is
reported with the minimum and maximum. Peak memory per stage: on CUDA the allocator's peak
(``torch.cuda.max_memory_allocated``, reset at each stage start); on the CPU the peak resident set size
of the process: on Linux the kernel's high-water mark (``VmHWM``, reset at each stage start through
``/proc/self/clear_refs``), elsewhere (or where the reset is ignored, as in some sandboxes) the resident size
sampled every 2 ms while the stage runs.

Models are either real weights (``--weights``) or random ones of a named size (``--random default`` /
``--random official``): speed does not depend on the weights' values, except that the renderer's cost grows with the Gaussians'
size: random models' Gaussians are clamped to about a pixel (a trained model's size) before rendering.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import torch

__all__ = ["PAPER_SECONDS", "BenchSettings", "StageMeter", "bench_table", "run_bench"]

PAPER_SECONDS = {"preprocess": 1.5, "diffusion": 5.5, "reconstruction": 1.0, "total": 8.0}
"""The paper's reported inference time on one GPU (reconstruction: "< 1 s")."""
STAGES = ("preprocess", "diffusion", "reconstruction", "rendering", "export")


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: the lifetime peak is the best available
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    # Some kernels and sandboxes accept the write and ignore it: trust the mark only if it now sits at the current RSS.
    peak = _peak_rss_bytes()
    return peak is not None and peak - _rss_bytes() < 16 * 2**20


def _peak_rss_bytes() -> int | None:
    """``VmHWM`` of this process in bytes (None if unreadable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class StageMeter:
    """Peak memory of named stages on one device (see the module docstring).

    Example:
        >>> meter = StageMeter(torch.device("cpu"))
        >>> with meter.stage("work"):
        ...     x = torch.ones(1 << 20)
        >>> meter.peaks["work"] > 0
        True
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device, self.interval = device, interval
        self.peaks: dict[str, float] = {}
        """Peak MiB per stage (the maximum over all runs of that stage)."""
        self.seconds: dict[str, float] = {}
        """Wall seconds of each stage's last run (CUDA synchronised at both ends)."""
        self._open: contextlib.AbstractContextManager | None = None

    def switch(self, name: str | None) -> None:
        """Close the stage opened by the last ``switch`` (if any) and open ``name`` (None: just close)."""
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None
        if name is not None:
            self._open = self.stage(name)
            self._open.__enter__()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Meter (and time) the ``with`` body as stage ``name``."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = time.perf_counter()
            try:
                yield
            finally:
                torch.cuda.synchronize(self.device)
                self.seconds[name] = time.perf_counter() - start
                peak = torch.cuda.max_memory_allocated(self.device) / 2**20
                self.peaks[name] = max(self.peaks.get(name, 0.0), peak)
            return
        kernel_peak = _reset_peak_rss()
        peak = [_rss_bytes()]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(self.interval):
                peak[0] = max(peak[0], _rss_bytes())

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start
            done.set()
            thread.join()
            peak[0] = max(peak[0], _rss_bytes(), (_peak_rss_bytes() or 0) if kernel_peak else 0)
            self.peaks[name] = max(self.peaks.get(name, 0.0), peak[0] / 2**20)


@dataclass(frozen=True)
class BenchSettings:
    """What ``facelift bench`` times."""

    weights: str = "default"
    """default, a weights folder, or official:GSLRM_CKPT,DIFFUSION_FOLDER (ignored with --random)."""
    random: Literal["default", "official", "tiny"] | None = None
    """Time random models of this size instead of loading weights."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    repeats: int = 3
    """Timed runs per stage."""
    warmup: int = 1
    """Untimed runs first (CUDA kernels compile, caches fill)."""
    steps: int = 50
    """Denoising steps (the reference: 50 DDIM steps)."""
    solver: Literal["ddim", "dpmsolver++"] = "ddim"
    """Sampler."""
    guidance: float = 3.0
    """Classifier-free guidance (3.0 doubles the UNet batch, as the reference)."""
    resolution: int | None = None
    """Render and turntable size (default: as facelift reconstruct, twice the model's view size, at most 512)."""
    frames: int = 150
    """Turntable frames."""
    mesh_format: Literal["glb", "obj", "ply", "none"] = "glb"
    """Mesh export."""
    photo: Path | None = None
    """The photo (default: the bundled sample)."""
    crop: bool = True
    """Face detection and cropping in the preprocess stage (--no-crop where facenet-pytorch's weights are absent)."""
    matting: bool = True
    """Background removal in the preprocess stage (--no-matting where mediapipe is absent)."""
    half: bool = True
    """On CUDA: fp16 diffusion and bf16 reconstructor autocast (as the official weights run)."""
    refine_steps: int = 0
    """Also time test-time refinement with this many steps (a ``refinement`` stage; 0: not run)."""
    fit_input_steps: int | None = None
    """Steps fitting the Gaussians to the photo (an ``input_fit`` stage when > 0; default: the weights' own
    setting, as ``facelift reconstruct``; random weights: 0)."""
    fit_input_params: str | None = None
    """Which Gaussian parameters the photo fit moves: all, appearance (opacities and colours), colour, or a comma
    list of means, scales, opacities, quats, sh (default: the weights' own setting)."""
    num_samples: int | None = None
    """Diffusion samples per photo (drawn in the ``diffusion`` stage, each reconstructed and averaged in the
    ``reconstruction`` stage; default: the weights' own setting, as ``facelift reconstruct``; random weights: 1)."""

    def __post_init__(self) -> None:
        fit_ok = self.fit_input_steps is None or self.fit_input_steps >= 0
        samples_ok = self.num_samples is None or self.num_samples >= 1
        if self.repeats < 1 or self.warmup < 0 or self.steps < 1 or self.frames < 0 or self.refine_steps < 0 or not fit_ok or not samples_ok:
            raise ValueError("need repeats >= 1, warmup >= 0, steps >= 1, frames >= 0, refine_steps >= 0, fit_input_steps >= 0 and num_samples >= 1")
        if self.fit_input_params is not None:
            from facelift.pipeline.refine import parse_refine_params

            parse_refine_params(self.fit_input_params)  # fails before any model is loaded


def _random_pipeline(size: str, device: torch.device, half: bool):
    from facelift.models.gslrm.config import GSLRMConfig
    from facelift.models.gslrm.model import GSLRM
    from facelift.models.mvdiffusion import MultiViewDiffusion
    from facelift.models.mvdiffusion.config import MVDiffusionConfig
    from facelift.pipeline.facelift import FaceLiftPipeline

    diffusion = MultiViewDiffusion.from_config(getattr(MVDiffusionConfig, size)())
    config = getattr(GSLRMConfig, size)()
    reconstructor = GSLRM(config) if size != "tiny" else GSLRM(GSLRMConfig.tiny())
    if diffusion.image_size != reconstructor.config.image_size:
        reconstructor = GSLRM(GSLRMConfig(**{**config.to_dict(), "image_size": diffusion.image_size}))
    autocast = torch.bfloat16 if half and device.type == "cuda" else None
    if half and device.type == "cuda":
        diffusion = diffusion.to(dtype=torch.float16)
    return FaceLiftPipeline(diffusion, reconstructor, device=device, autocast_dtype=autocast)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def run_bench(settings: BenchSettings, device: torch.device, *, pipe=None) -> dict[str, Any]:
    """Time every stage; returns the JSON-able report (``stages``: median/min/max seconds and peak MiB)."""
    from facelift.cli.reconstruct import SAMPLE_PHOTO
    from facelift.pipeline.export import ResultSettings, export_result
    from facelift.pipeline.facelift import FaceLiftPipeline, FaceLiftResult
    from facelift.pipeline.refine import RefineSettings, refine_gaussians

    start = time.perf_counter()
    if pipe is None:
        if settings.random is not None:
            pipe = _random_pipeline(settings.random, device, settings.half)
        else:
            pipe = FaceLiftPipeline.from_pretrained(settings.weights, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    load_seconds = time.perf_counter() - start
    photo = settings.photo or SAMPLE_PHOTO
    resolution = settings.resolution or min(512, 2 * pipe.diffusion.image_size)
    result_settings = ResultSettings(resolution, settings.frames, mesh_format=settings.mesh_format)
    meter = StageMeter(device)
    fit_steps, num_samples = pipe.resolve_settings(fit_input_steps=settings.fit_input_steps, num_samples=settings.num_samples)
    fit = pipe.fit_settings(fit_steps, settings.fit_input_params)
    extra = (("refinement",) if settings.refine_steps else ()) + (("input_fit",) if fit_steps else ())
    stage_names = STAGES[:3] + extra + STAGES[3:]
    times: dict[str, list[float]] = {s: [] for s in stage_names}
    num_gaussians = 0
    for run in range(settings.warmup + settings.repeats):
        with meter.stage("preprocess"):
            pre = pipe.preprocess(photo, crop=settings.crop, matting=settings.matting, estimate_yaw=settings.crop)
        with meter.stage("diffusion"):
            samples = pipe.generate_samples(
                pre.image[None], seed=run, steps=settings.steps, guidance=settings.guidance, solver=settings.solver, num_samples=num_samples
            )[0]
            views = samples.mean(0)
        with meter.stage("reconstruction"):
            images, cameras = pipe.reconstructor_inputs(pre.image.to(views.dtype), samples, pre.azimuth_deg)
            gaussians = pipe.reconstruct(images.float(), cameras)
            if settings.random is not None:  # untrained scales: a trained model's pixel-sized Gaussians instead
                gaussians = dataclasses.replace(gaussians, scales=gaussians.scales.clamp(max=2.0 / pipe.diffusion.image_size))
        num_gaussians = gaussians.num
        if settings.refine_steps:
            with meter.stage("refinement"):
                gaussians = refine_gaussians(gaussians, images.mean(0).float(), cameras, RefineSettings(steps=settings.refine_steps))
        if fit_steps:
            with meter.stage("input_fit"):
                gaussians = pipe.fit_input(gaussians, pre.image, pre.azimuth_deg, fit)
        result = FaceLiftResult(pre, views.float(), pipe.view_names, pipe.view_cameras(pre.azimuth_deg, views.shape[-1]), gaussians, {})
        with tempfile.TemporaryDirectory() as tmp:
            try:
                export_result(tmp, result, result_settings, on_stage=meter.switch)  # opens "rendering", then "export"
            finally:
                meter.switch(None)
        if run >= settings.warmup:
            for name in stage_names:
                times[name].append(meter.seconds[name])
    stages = {
        name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "peak_mib": round(meter.peaks.get(name, 0.0), 1)}
        for name, v in times.items()
    }  # fmt: skip
    total = sum(s["median_s"] for s in stages.values())
    return {
        "device": _device_name(device), "torch": torch.__version__, "weights": f"random:{settings.random}" if settings.random else settings.weights,
        "model_resolution": pipe.diffusion.image_size, "render_resolution": resolution, "steps": settings.steps, "solver": settings.solver,
        "guidance": settings.guidance, "refine_steps": settings.refine_steps, "fit_input_steps": fit_steps,
        "fit_input_params": list(fit.params) if fit else None, "num_samples": num_samples, "frames": settings.frames, "crop": settings.crop, "matting": settings.matting, "repeats": settings.repeats, "warmup": settings.warmup,
        "memory": "CUDA allocator peak" if device.type == "cuda" else "process peak RSS", "load_seconds": round(load_seconds, 2),
        "num_gaussians": num_gaussians, "stages": stages, "total_median_s": total,
        "paper_seconds": PAPER_SECONDS,
    }  # fmt: skip


def bench_table(report: dict[str, Any]) -> str:
    """The report as a markdown table (seconds: median [min - max]; memory: peak MiB)."""
    lines = [
        f"facelift bench on {report['device']}, torch {report['torch']}, weights {report['weights']} "
        f"({report['model_resolution']} px views, {report['steps']} {report['solver']} steps, guidance {report['guidance']}, "
        f"{report['frames']} frames at {report['render_resolution']} px; median of {report['repeats']} after {report['warmup']} warm-up; "
        f"memory: {report['memory']})",
        "",
        "| stage | median s | min - max s | peak MiB | paper s |",
        "|---|---|---|---|---|",
    ]
    for name, s in report["stages"].items():
        paper = PAPER_SECONDS.get(name)
        paper_text = "" if paper is None else (f"< {paper:g}" if name == "reconstruction" else f"{paper:g}")
        lines.append(f"| {name} | {s['median_s']:.3f} | {s['min_s']:.3f} - {s['max_s']:.3f} | {s['peak_mib']:.0f} | {paper_text} |")
    core = sum(report["stages"][n]["median_s"] for n in ("preprocess", "diffusion", "reconstruction"))
    lines += [
        f"| preprocess + diffusion + reconstruction | {core:.3f} | | | {PAPER_SECONDS['total']:g} |",
        f"| all {len(report['stages'])} stages | {report['total_median_s']:.3f} | | | |",
        "",
        f"model loading {report['load_seconds']:.2f} s; {report['num_gaussians']:,} Gaussians rendered",
    ]
    return "\n".join(lines) + "\n"
