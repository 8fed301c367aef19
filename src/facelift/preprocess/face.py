"""Photo preprocessing of the reference, offline: matting, face detection, scale-and-centre crop, head yaw.

Steps (:func:`preprocess`):

1. background matting with MediaPipe's selfie segmentation (its model ships inside the mediapipe 0.10.21
   wheel), composited on white; an RGBA input keeps its own alpha instead;
2. MTCNN face detection (:mod:`facelift.preprocess.detect`), confidence > 0.8, the largest face;
3. scale so the face size (half the sum of the box's width and height) is 194.27 px at 512 and paste on a
   white square so the box centre lands at (251.83, 280.01) at 512 (scaled for other sizes): the statistics
   of the reference's training renders (FOV 50);
4. beyond the reference: the head's yaw from MediaPipe's face mesh, used as the input azimuth so that a
   three-quarter photo gets views at a, a +- 45, a +- 90, a + 180 and the head comes out facing front.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from facelift.preprocess.detect import FaceBox, detect_faces
from facelift.preprocess.image import ImageError, LoadedImage

__all__ = [
    "REFERENCE_FACE_CENTER", "REFERENCE_FACE_SIZE", "PreprocessSettings", "Preprocessed", "crop_to_reference",
    "estimate_yaw", "matte", "preprocess",
]  # fmt: skip

logger = logging.getLogger(__name__)

REFERENCE_FACE_SIZE = 194.2749650813705
"""Face size (0.5 * (box width + height)) in a 512 px reference input."""
REFERENCE_FACE_CENTER = (251.83270369057132, 280.0133630862363)
"""Face box centre (x, y) in a 512 px reference input."""
YAW_GAIN = 0.8
"""Scale applied to the landmark yaw angle. Measured on synthetic heads (6 identities rendered at camera
azimuths -30, 0, +30 deg): the raw angle of MediaPipe's 3D landmarks overshoots by a factor of about 1.25."""
_YAW_PAIRS = ((234, 454), (33, 263), (61, 291), (132, 361))  # face-mesh points: cheeks, eye corners, mouth, jaw


@dataclass(frozen=True)
class PreprocessSettings:
    """How a photo becomes the model's input view."""

    size: int = 512
    """Output size in pixels (the reference: 512)."""
    crop: bool = True
    """Detect the face and scale/centre it like the reference; False takes the image as prepared (it is
    only resized to a square ``size``)."""
    matting: bool = True
    """Remove the background (RGBA inputs keep their alpha)."""
    estimate_yaw: bool = True
    """Estimate the head's yaw and use it as the input azimuth (else 0, as the reference)."""
    min_score: float = 0.8
    """Face confidence threshold (the reference: 0.8)."""


@dataclass
class Preprocessed:
    """The model's input view and what was found."""

    image: Float[Tensor, "3 S S"]
    """RGB on white, in [0, 1]."""
    alpha: Float[Tensor, "1 S S"]
    """Foreground matte (1 where there is no matte)."""
    azimuth_deg: float
    """Input azimuth: the camera's yaw relative to the face (positive: toward the subject's right)."""
    face: FaceBox | None
    """The face used, in the source image's pixels (None with ``crop=False``)."""
    num_faces: int = 0
    """Faces found above the threshold."""
    notes: list[str] = field(default_factory=list)
    """Messages for the user (several faces, face cut by the border, ...)."""


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 for a moment: MediaPipe's C++ side writes warning lines to stderr on every
    graph start that no setting turns off. Python exceptions are raised after the descriptor is restored."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@lru_cache(maxsize=1)
def _segmenter():
    try:
        from mediapipe.python.solutions import selfie_segmentation
    except ImportError as err:
        raise ImportError(
            f"background matting needs mediapipe 0.10.21 ({err}); install it with scripts/install.sh "
            "(pip install --no-deps mediapipe==0.10.21 plus its runtime packages), or pass --no-matting"
        ) from err
    with _quiet_stderr():
        return selfie_segmentation.SelfieSegmentation(model_selection=0)


@lru_cache(maxsize=1)
def _face_mesh():
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as err:
        raise ImportError(f"yaw estimation needs mediapipe 0.10.21 ({err}); pass --no-yaw to skip it") from err
    with _quiet_stderr():
        return face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False)


def _uint8(rgb: Tensor) -> np.ndarray:
    return np.ascontiguousarray((rgb.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def matte(rgb: Float[Tensor, "3 H W"]) -> Float[Tensor, "1 H W"]:
    """Foreground (person) matte in [0, 1] from MediaPipe's selfie segmentation."""
    segmenter = _segmenter()
    with _quiet_stderr():
        mask = segmenter.process(_uint8(rgb)).segmentation_mask
    if mask is None:
        return torch.ones(1, *rgb.shape[-2:])
    return torch.from_numpy(np.array(mask, dtype=np.float32)).clamp(0, 1)[None]


def estimate_yaw(rgb: Float[Tensor, "3 H W"]) -> float | None:
    """Camera yaw relative to the face in degrees (positive: the camera is toward the subject's right, i.e.
    more of their right cheek shows), from MediaPipe's 3D face-mesh landmarks; None when no face mesh is found.

    The angle of the left-right axis of four symmetric landmark pairs in the image's x-z plane, averaged and
    scaled by :data:`YAW_GAIN`.
    """
    mesh = _face_mesh()
    with _quiet_stderr():
        result = mesh.process(_uint8(rgb))
    if not result.multi_face_landmarks:
        return None
    h, w = rgb.shape[-2:]
    points = np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark])
    angles = [math.atan2(points[b, 2] - points[a, 2], points[b, 0] - points[a, 0]) for a, b in _YAW_PAIRS]
    return math.degrees(YAW_GAIN * float(np.mean(angles)))


def crop_to_reference(
    rgba: Float[Tensor, "4 H W"], face: FaceBox, size: int = 512
) -> Float[Tensor, "4 S S"]:
    """Scale and paste like the reference: face size 194.27 px and box centre (251.83, 280.01) at 512.

    The image is resized (antialiased) by ``s = 194.27 * size / 512 / face.size`` and placed so the face
    centre lands on the reference centre; uncovered pixels are transparent (white after compositing).

    Returns:
        ``[4, size, size]`` straight RGBA.
    """
    unit = size / 512.0
    scale = REFERENCE_FACE_SIZE * unit / max(face.size, 1e-6)
    h, w = rgba.shape[-2:]
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    premul = torch.cat([rgba[:3] * rgba[3:], rgba[3:]])
    resized = F.interpolate(premul[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    cx, cy = face.center
    ox = round(REFERENCE_FACE_CENTER[0] * unit - cx * scale)
    oy = round(REFERENCE_FACE_CENTER[1] * unit - cy * scale)
    canvas = torch.zeros(4, size, size)
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + nw, size), min(oy + nh, size)
    if x1 > x0 and y1 > y0:
        canvas[:, y0:y1, x0:x1] = resized[:, y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    alpha = canvas[3:].clamp(0, 1)
    rgb = torch.where(alpha > 1e-6, canvas[:3] / alpha.clamp(min=1e-6), torch.zeros_like(canvas[:3]))
    return torch.cat([rgb.clamp(0, 1), alpha])


def _square_resize(rgba: Tensor, size: int) -> Tensor:
    """Pad to a square (transparent) around the centre, then resize to ``size``."""
    h, w = rgba.shape[-2:]
    side = max(h, w)
    canvas = torch.zeros(4, side, side)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[:, y0 : y0 + h, x0 : x0 + w] = torch.cat([rgba[:3] * rgba[3:], rgba[3:]])
    out = F.interpolate(canvas[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    alpha = out[3:].clamp(0, 1)
    rgb = torch.where(alpha > 1e-6, out[:3] / alpha.clamp(min=1e-6), torch.zeros_like(out[:3]))
    return torch.cat([rgb.clamp(0, 1), alpha])


def preprocess(image: LoadedImage, settings: PreprocessSettings = PreprocessSettings()) -> Preprocessed:
    """Turn a decoded photo into the model's input view (see the module docstring).

    Raises:
        ImageError: no face was found (with ``crop``).
        ImportError: mediapipe or the MTCNN weights are missing (the message says how to install them).

    Example:
        >>> pre = preprocess(load_image("photo.jpg"))  # doctest: +SKIP
        >>> pre.image.shape, pre.azimuth_deg  # doctest: +SKIP
        (torch.Size([3, 512, 512]), 12.5)
    """
    notes = list(image.notes)
    rgb = image.rgb
    if image.alpha is not None:
        alpha = image.alpha
        notes.append("kept the image's own alpha")
    elif settings.matting:
        alpha = matte(rgb)
    else:
        alpha = torch.ones(1, *rgb.shape[-2:])
    rgba = torch.cat([rgb, alpha])
    # Work at >= 512 px (the face mesh needs a face of some size), then resize to the model's size.
    work = max(settings.size, 512)
    face, found = None, 0
    if settings.crop:
        on_white = rgb * alpha + (1 - alpha)
        faces = detect_faces(on_white, min_score=settings.min_score)
        found = len(faces)
        if not faces:
            raise ImageError(f"{image.source}: no face detected (confidence > {settings.min_score}); pass --no-crop for an already-prepared input")
        face = faces[0]
        if found > 1:
            notes.append(f"{found} faces found; using the largest")
        h, w = rgb.shape[-2:]
        x0, y0, x1, y1 = face.box
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            notes.append("the face is cut by the image border; the missing part is filled with white")
        out = crop_to_reference(rgba, face, work)
    else:
        out = _square_resize(rgba, work)
    composed_work = out[:3] * out[3:] + (1 - out[3:])
    if work != settings.size:
        out = _square_resize(out, settings.size)
    rgb_out, alpha_out = out[:3], out[3:]
    composed = rgb_out * alpha_out + (1 - alpha_out)
    azimuth = 0.0
    if settings.estimate_yaw:
        yaw = estimate_yaw(composed_work)
        if yaw is None:
            notes.append("no face mesh found for the yaw estimate; input azimuth 0")
        else:
            azimuth = yaw
    for note in notes:
        logger.info("%s: %s", image.source, note)
    return Preprocessed(composed, alpha_out, azimuth, face, found, notes)
