"""Reading user images robustly: any PIL format and mode, EXIF orientation, huge and tiny files, clear errors.

Every failure is a :class:`ImageError` (a ``ValueError``) whose message names the file and the reason in one
line, so the CLI can report it and move on to the next image.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

__all__ = ["ImageError", "LoadedImage", "load_image", "to_image"]

MIN_SIDE = 32
"""Smallest accepted side in pixels (a face needs at least MTCNN's 20 px minimum)."""
MAX_SIDE = 4096
"""Larger images are downscaled on load (their long side) so memory stays bounded."""
MAX_PIXELS = 300_000_000
"""Images with more pixels than this are refused before decoding (decompression-bomb guard)."""


class ImageError(ValueError):
    """An input image cannot be used; the message says which file and why."""


@dataclass
class LoadedImage:
    """A decoded image."""

    rgb: Float[Tensor, "3 H W"]
    """Colour in [0, 1] (straight, not premultiplied)."""
    alpha: Float[Tensor, "1 H W"] | None
    """Alpha in [0, 1] when the file has transparency, else None."""
    source: str
    """Where it came from (file name or ``<array>``)."""
    notes: list[str] = field(default_factory=list)
    """What was done on the way (downscaled, first GIF frame, EXIF rotation, ...)."""


def _to_rgba_array(img: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """``(rgb float32 [H, W, 3] in [0, 1], alpha float32 [H, W] or None)`` from any PIL mode."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        notes.append(f"{mode} image scaled from 0..{int(hi)}")
        grey = np.clip(arr / hi, 0, 1).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        grey = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        return np.repeat(grey[..., None], 3, axis=2), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    converted = img.convert("RGBA" if has_alpha else "RGB")
    arr = np.asarray(converted, dtype=np.float32) / 255.0
    if has_alpha:
        alpha = arr[..., 3]
        if alpha.min() >= 1.0:  # an alpha channel that is fully opaque carries no information
            return arr[..., :3], None
        return arr[..., :3], alpha
    return arr, None


def load_image(path: str | os.PathLike, *, max_side: int = MAX_SIDE, min_side: int = MIN_SIDE) -> LoadedImage:
    """Decode an image file for the pipeline.

    Handles every mode PIL reads (palette, grey, 16-bit, CMYK, with or without alpha), applies the EXIF
    orientation, takes the first frame of animations, and downscales images whose long side exceeds
    ``max_side`` (JPEGs are decoded at reduced size directly, so a 12000 x 9000 photo never occupies full
    memory).

    Args:
        path: the file.
        max_side: long-side limit after loading.
        min_side: reject images whose short side is smaller.

    Returns:
        :class:`LoadedImage`.

    Raises:
        ImageError: missing, empty, not an image, truncated, too small or too large.

    Example:
        >>> load_image("photo.jpg").rgb.shape  # doctest: +SKIP
        torch.Size([3, 512, 384])
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise ImageError(f"{name}: no such file")
    if path.is_dir():
        raise ImageError(f"{name}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{name}: the file is empty")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{name}: {w}x{h} pixels is too large (limit {MAX_PIXELS:,} pixels)")
            if getattr(img, "n_frames", 1) > 1:
                notes.append(f"first of {img.n_frames} frames used")
                img.seek(0)
            if img.format == "JPEG" and max(w, h) > max_side:
                img.draft(img.mode, (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(f"{name}: not an image file (or a format PIL cannot read)") from err
    except Image.DecompressionBombError as err:
        raise ImageError(f"{name}: too large to decode safely ({err})") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{name}: cannot decode ({err}); the file may be truncated or corrupt") from err
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        notes.append(f"downscaled from {w}x{h} to {size[0]}x{size[1]}")
        img = img.resize(size, Image.Resampling.LANCZOS) if img.mode not in ("I;16", "I;16B", "I;16L", "I", "F") else img.resize(size)
    if min(img.size) < min_side:
        raise ImageError(f"{name}: {img.size[0]}x{img.size[1]} px is too small (need at least {min_side} px per side)")
    rgb, alpha = _to_rgba_array(img, notes)
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()
    alpha_t = torch.from_numpy(np.ascontiguousarray(alpha))[None] if alpha is not None else None
    return LoadedImage(rgb_t, alpha_t, name, notes)


def to_image(image, *, source: str = "<array>") -> LoadedImage:
    """Accept a path, a PIL image, an ``[H, W, 3|4]`` uint8/float array or a ``[3|4, H, W]`` tensor in [0, 1].

    Raises:
        ImageError: unsupported type or shape.
    """
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    notes: list[str] = []
    if isinstance(image, Image.Image):
        rgb, alpha = _to_rgba_array(ImageOps.exif_transpose(image), notes)
        return LoadedImage(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), None if alpha is None else torch.from_numpy(alpha)[None], source, notes)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ImageError(f"{source}: an array image must be [H, W, 3] or [H, W, 4], got {image.shape}")
        arr = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
        image = torch.from_numpy(arr).permute(2, 0, 1)
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] not in (3, 4):
            raise ImageError(f"{source}: a tensor image must be [3, H, W] or [4, H, W], got {tuple(image.shape)}")
        image = image.detach().float().cpu().clamp(0, 1)
        if min(image.shape[-2:]) < MIN_SIDE:
            raise ImageError(f"{source}: {image.shape[-1]}x{image.shape[-2]} px is too small (need at least {MIN_SIDE} px per side)")
        return LoadedImage(image[:3].contiguous(), image[3:4].contiguous() if image.shape[0] == 4 else None, source, notes)
    raise ImageError(f"{source}: unsupported image type {type(image).__name__}")
