"""The web demo (gradio): upload a photo, get the preprocessed input, the six views, an interactive 3D view
of the Gaussians, the turntable and downloads (PLY, SPLAT, mesh, MP4).

Started by ``facelift serve``; nothing in the library imports this module. One job runs at a time, the
queue is bounded and uploads are size-limited; every failure (no face, not an image, ...) is shown as a
one-line message in the page.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoSettings", "build_demo", "serve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSettings:
    """Server and output settings of the demo."""

    weights: str = "default"
    """Weights spec (see ``facelift reconstruct --weights``)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    host: str = "127.0.0.1"
    """Interface to listen on (0.0.0.0 for every interface)."""
    port: int = 7860
    """Port."""
    resolution: int = 512
    """Size of the renders and turntable frames."""
    frames: int = 150
    """Turntable frames."""
    max_queue: int = 8
    """Jobs waiting at most; further requests are turned away until one finishes."""
    max_upload_mb: int = 20
    """Largest accepted upload."""
    keep_results: int = 16
    """Result folders kept on disk (oldest removed first)."""


def build_demo(settings: DemoSettings, pipeline=None):
    """The gradio Blocks app (not launched). ``pipeline`` defaults to ``FaceLiftPipeline.from_pretrained``."""
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError("the web demo needs gradio: pip install gradio") from err
    from facelift.cli.common import resolve_device
    from facelift.pipeline.export import ResultSettings, export_result
    from facelift.pipeline.facelift import FaceLiftPipeline

    if pipeline is None:
        pipeline = FaceLiftPipeline.from_pretrained(settings.weights, device=resolve_device(settings.device))
    workdir = Path(tempfile.mkdtemp(prefix="facelift-demo-"))
    lock = threading.Lock()
    finished: list[Path] = []

    def run(photo: str | None, seed: float, steps: float, guidance: float, solver: str, refine: float, fit: float, samples: float):
        if not photo:
            raise gr.Error("Upload a photo first.")
        try:
            result = pipeline(
                photo, seed=int(seed), steps=int(steps), guidance=float(guidance), solver=solver, refine=int(refine),
                fit_input=int(fit), num_samples=int(samples),
            )  # fmt: skip
            out = Path(tempfile.mkdtemp(prefix="result-", dir=workdir))
            summary = export_result(out, result, ResultSettings(settings.resolution, settings.frames), info={"seed": int(seed)})
        except (ValueError, OSError, RuntimeError) as err:
            raise gr.Error(str(err).replace(str(photo), "the upload")) from err
        with lock:
            finished.append(out)
            while len(finished) > settings.keep_results:
                shutil.rmtree(finished.pop(0), ignore_errors=True)
        mesh = out / summary["mesh"] if summary.get("mesh") else None
        video = out / "turntable.mp4" if summary.get("turntable") else None
        downloads = [str(p) for p in (out / "gaussians.ply", out / "gaussians.splat", mesh, video) if p is not None]
        notes = "; ".join(summary["notes"]) or "ok"
        status = f"{summary['num_gaussians']:,} Gaussians, input azimuth {summary['input_azimuth_deg']} deg. Notes: {notes}. Seconds: {summary['timings']}"
        return str(out / "input.png"), str(out / "multiview.png"), str(out / "gaussians.ply"), str(video) if video else None, downloads, status

    with gr.Blocks(title="facelift: one photo to a 3D head") as demo:
        gr.Markdown("# facelift\nOne photo of a person in, a 360-degree 3D head out (3D Gaussians). Runs offline.")
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(type="filepath", label="Photo", sources=["upload"], elem_id="photo")
                seed = gr.Number(value=0, precision=0, label="Seed")
                steps = gr.Slider(1, 100, value=50, step=1, label="Denoising steps")
                guidance = gr.Slider(1.0, 10.0, value=3.0, step=0.5, label="Guidance")
                solver = gr.Radio(["ddim", "dpmsolver++"], value="ddim", label="Solver")
                refine = gr.Slider(0, 200, value=0, step=10, label="Refinement steps (fit the Gaussians to the views)")
                fit = gr.Slider(0, 200, value=pipeline.fit_input_steps, step=10, label="Photo-fit steps (fit the Gaussians to the photo)")
                samples = gr.Slider(1, 8, value=pipeline.num_samples, step=1, label="Diffusion samples (Gaussians averaged; each one more diffusion run)")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                with gr.Row():
                    pre = gr.Image(label="Preprocessed input", interactive=False, elem_id="input-view", height=256)
                    views = gr.Image(label="Six views", interactive=False, elem_id="views", height=256)
                model3d = gr.Model3D(label="3D Gaussians (drag to rotate)", elem_id="model3d", height=420)
                video = gr.Video(label="Turntable", interactive=False, elem_id="turntable", height=320)
                files = gr.File(label="Downloads (PLY, SPLAT, mesh, MP4)", file_count="multiple", elem_id="downloads")
        button.click(run, [photo, seed, steps, guidance, solver, refine, fit, samples], [pre, views, model3d, video, files, status], concurrency_limit=1)
    demo.queue(max_size=settings.max_queue, default_concurrency_limit=1)
    return demo


def serve(settings: DemoSettings, pipeline=None) -> None:
    """Build and launch the demo (blocks until interrupted)."""
    demo = build_demo(settings, pipeline)
    demo.launch(
        server_name=settings.host, server_port=settings.port, max_file_size=f"{settings.max_upload_mb}mb",
        share=False, show_error=True, prevent_thread_lock=False,
    )  # fmt: skip
