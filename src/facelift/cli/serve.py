"""``facelift serve``: the gradio web demo."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeCommand:
    """Start the web demo: upload a photo, see the six views, the 3D Gaussians and the turntable, download
    PLY, SPLAT, mesh and MP4 (needs gradio: pip install -e ".[demo]")."""

    weights: str = "default"
    """default, a weights folder, or official:GSLRM_CKPT,DIFFUSION_FOLDER."""
    host: str = "127.0.0.1"
    """Interface to listen on (0.0.0.0: every interface)."""
    port: int = 7860
    """Port."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    resolution: int = 512
    """Size of the renders and turntable frames."""
    frames: int = 150
    """Turntable frames."""
    max_queue: int = 8
    """Jobs that may wait; more are turned away."""
    max_upload_mb: int = 20
    """Largest accepted upload in MB."""

    def run(self) -> int:
        from facelift.demo.app import DemoSettings, serve

        if not 0 < self.port < 65536 or self.max_queue < 1 or self.max_upload_mb < 1 or self.frames < 0 or self.resolution < 8:
            raise ValueError("need 0 < --port < 65536, --max-queue >= 1, --max-upload-mb >= 1, --frames >= 0, --resolution >= 8")
        serve(DemoSettings(self.weights, self.device, self.host, self.port, self.resolution, self.frames, self.max_queue, self.max_upload_mb))
        return 0
