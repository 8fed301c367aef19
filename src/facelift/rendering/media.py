"""Images, image grids, turntable rendering and MP4 video (imageio-ffmpeg ships its own ffmpeg)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from facelift.cameras.orbits import REFERENCE_RADIUS, turntable_cameras
from facelift.gaussians.container import Gaussians
from facelift.rendering.rasterize import Backend, rasterize
from facelift.utils.io import atomic_path

__all__ = ["to_uint8", "image_grid", "save_image", "write_video", "render_turntable", "read_video_frame_count"]


def to_uint8(images: Float[Tensor, "*batch 3 H W"]) -> np.ndarray:
    """``[..., 3, H, W]`` floats in [0, 1] to ``[..., H, W, 3]`` uint8 (rounded, clipped)."""
    if images.ndim < 3 or images.shape[-3] not in (1, 3, 4):
        raise ValueError(f"images must be [..., C, H, W] with C in (1, 3, 4), got {tuple(images.shape)}")
    arr = (images.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    return arr.movedim(-3, -1).cpu().numpy()


def image_grid(images: Float[Tensor, "V 3 H W"] | Sequence[Tensor], rows: int = 1, pad: int = 0, pad_value: float = 1.0) -> np.ndarray:
    """Views side by side (``rows`` rows, filled row-major) as one ``[rows*H, cols*W, 3]`` uint8 image.

    Example:
        >>> image_grid(torch.zeros(6, 3, 8, 8)).shape
        (8, 48, 3)
    """
    x = torch.stack(list(images)) if not isinstance(images, Tensor) else images
    if x.ndim != 4:
        raise ValueError(f"images must be [V, C, H, W], got {tuple(x.shape)}")
    v, c, h, w = x.shape
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    cols = -(-v // rows)
    canvas = torch.full((c, rows * (h + pad) - pad, cols * (w + pad) - pad), pad_value, dtype=torch.float32)
    for i in range(v):
        r, q = divmod(i, cols)
        canvas[:, r * (h + pad) : r * (h + pad) + h, q * (w + pad) : q * (w + pad) + w] = x[i].detach().float().cpu()
    return to_uint8(canvas)


def save_image(path: str | os.PathLike, image: np.ndarray | Float[Tensor, "3 H W"]) -> None:
    """Save an ``[H, W, 3|4]`` uint8 array or a ``[3|4, H, W]`` float tensor in [0, 1] as PNG/JPEG, atomically."""
    arr = to_uint8(image) if isinstance(image, Tensor) else np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(f"image must be [H, W, C] uint8, got {arr.dtype} {arr.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(tmp)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 30) -> None:
    """Write ``[T, H, W, 3]`` uint8 frames as an H.264 MP4 (yuv420p, plays in browsers), atomically.

    Odd frame sizes are padded by one pixel (H.264 with yuv420p needs even sizes).
    """
    import imageio.v2 as imageio  # lazy: pulls in ffmpeg plumbing

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty [T, H, W, 3] uint8 array, got {frames.dtype} {frames.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, pixelformat="yuv420p", macro_block_size=1, format="FFMPEG")
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()


def read_video_frame_count(path: str | os.PathLike) -> int:
    """Number of frames in a video file (decodes it; for tests and checks)."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()


@torch.no_grad()
def render_turntable(
    gaussians: Gaussians,
    num_frames: int = 150,
    resolution: int = 512,
    *,
    radius: float = REFERENCE_RADIUS,
    elevation_deg: float = 0.0,
    start_azimuth_deg: float = 0.0,
    background: float | Tensor = 1.0,
    chunk: int = 8,
    backend: Backend = "auto",
) -> np.ndarray:
    """Render a turntable around an unbatched set of Gaussians (reference defaults: 150 frames, radius
    2.7, elevation 0, starting at the front).

    Args:
        gaussians: ``[N]`` Gaussians.
        num_frames: frames in a full turn.
        resolution: square frame size in pixels.
        chunk: frames rendered per rasteriser call (bounds memory).

    Returns:
        ``[T, H, W, 3]`` uint8 frames.
    """
    if len(gaussians.shape) != 1:
        raise ValueError(f"render_turntable takes one set of Gaussians [N], got shape {tuple(gaussians.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    cams = turntable_cameras(
        num_frames, elevation_deg=elevation_deg, radius=radius, start_azimuth_deg=start_azimuth_deg,
        resolution=resolution, device=gaussians.device, dtype=gaussians.dtype,
    )  # fmt: skip
    frames = []
    for start in range(0, num_frames, chunk):
        out = rasterize(gaussians, cams[start : start + chunk], background=background, backend=backend)
        frames.append(to_uint8(out.rgb))
    return np.concatenate(frames, 0)
