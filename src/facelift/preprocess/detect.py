"""Face detection: MTCNN (P-Net, R-Net, O-Net cascade), written here in PyTorch, with the weights that the
``facenet-pytorch`` wheel ships (``facenet_pytorch/data/{pnet,rnet,onet}.pt``; nothing is downloaded).

Only the weight files of that package are read (its Python modules are not imported: they need
torchvision). Settings are the reference preprocessing's: stage thresholds 0.6 / 0.7 / 0.7, image pyramid
factor 0.709, minimum face 20 px; faces with confidence > 0.8 are kept and the largest is used.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["MTCNN", "FaceBox", "detect_faces", "mtcnn_weights_dir"]


@dataclass(frozen=True)
class FaceBox:
    """One detected face, in pixels of the image it was found in."""

    box: tuple[float, float, float, float]
    """``(x0, y0, x1, y1)``."""
    score: float
    """Face probability of the last stage."""
    landmarks: tuple[tuple[float, float], ...]
    """Five points (left eye, right eye, nose, left mouth corner, right mouth corner) as ``(x, y)``."""

    @property
    def size(self) -> float:
        """The reference's face size: half the sum of the box's width and height."""
        return 0.5 * ((self.box[2] - self.box[0]) + (self.box[3] - self.box[1]))

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.box[0] + self.box[2]), 0.5 * (self.box[1] + self.box[3]))


def mtcnn_weights_dir() -> Path:
    """The folder holding ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` from the installed facenet-pytorch wheel.

    Raises:
        ImportError: facenet-pytorch is not installed (install it with ``pip install --no-deps
            facenet-pytorch==2.6.0``; ``scripts/install.sh`` does).
    """
    env = os.environ.get("FACELIFT_MTCNN_WEIGHTS")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("facenet_pytorch")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "face detection needs the MTCNN weights shipped with facenet-pytorch: "
            "pip install --no-deps facenet-pytorch==2.6.0 (or set FACELIFT_MTCNN_WEIGHTS to a folder with pnet.pt, rnet.pt, onet.pt)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _stage(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k), nn.PReLU(cout)]


class _PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _stage(3, 10, 3)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _stage(10, 16, 3)
        self.conv3, self.prelu3 = _stage(16, 32, 3)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)  # [B, h, w], [B, 4, h, w]


def _flatten_caffe(x: Tensor) -> Tensor:
    # The dense layers were trained on feature maps flattened in (W, H, C) order (the original Caffe/TF
    # layout), not PyTorch's (C, H, W).
    return x.permute(0, 3, 2, 1).flatten(1)


class _RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _stage(3, 28, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _stage(28, 48, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = _stage(48, 64, 2)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(_flatten_caffe(self.prelu3(self.conv3(x)))))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class _ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _stage(3, 32, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _stage(32, 64, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = _stage(64, 64, 3)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = _stage(64, 128, 2)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_flatten_caffe(self.prelu4(self.conv4(x)))))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def _nms(boxes: Tensor, scores: Tensor, threshold: float, mode: str = "union") -> Tensor:
    """Greedy non-maximum suppression; returns kept indices in descending score order.

    ``union`` divides the intersection by the union (IoU), ``min`` by the smaller box's area (MTCNN's last
    stage). Areas use the inclusive-pixel convention ``(x1 - x0 + 1) * (y1 - y0 + 1)`` of MTCNN.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    x0, y0, x1, y1 = boxes.unbind(1)
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = (torch.minimum(x1[i], x1[rest]) - torch.maximum(x0[i], x0[rest]) + 1).clamp(min=0)
        h = (torch.minimum(y1[i], y1[rest]) - torch.maximum(y0[i], y0[rest]) + 1).clamp(min=0)
        inter = w * h
        denom = torch.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return torch.tensor(keep, dtype=torch.long)


def _regress(boxes: Tensor, reg: Tensor) -> Tensor:
    """Apply MTCNN's box offsets (fractions of the box's width and height)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + reg * torch.stack([w, h, w, h], dim=1)


def _square(boxes: Tensor) -> Tensor:
    """Grow each box to a square around its centre."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x0 = boxes[:, 0] + 0.5 * (w - side)
    y0 = boxes[:, 1] + 0.5 * (h - side)
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def _crops(image: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Resample each box of ``image [3, H, W]`` (zero outside) to ``[N, 3, size, size]``.

    Boxes are truncated to whole pixels and cut out inclusively, then resized with area averaging.
    """
    _, h, w = image.shape
    out = []
    for x0, y0, x1, y1 in boxes.trunc().long().tolist():
        x1, y1 = max(x1, x0), max(y1, y0)
        patch = torch.zeros(3, y1 - y0 + 1, x1 - x0 + 1, dtype=image.dtype)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if sx1 >= sx0 and sy1 >= sy0:
            patch[:, sy0 - y0 : sy1 - y0 + 1, sx0 - x0 : sx1 - x0 + 1] = image[:, sy0 : sy1 + 1, sx0 : sx1 + 1]
        out.append(F.interpolate(patch[None], size=(size, size), mode="area")[0])
    return torch.stack(out) if out else torch.zeros(0, 3, size, size)


class MTCNN(nn.Module):
    """The three-stage MTCNN face detector.

    Args:
        weights_dir: folder with ``pnet.pt``, ``rnet.pt``, ``onet.pt`` (default: :func:`mtcnn_weights_dir`).
        thresholds: face-probability thresholds of the three stages.
        factor: image pyramid scale step.
        min_face: smallest face searched for, in pixels.

    Example:
        >>> faces = MTCNN()(image_uint8_like)  # doctest: +SKIP
    """

    def __init__(
        self,
        weights_dir: str | os.PathLike | None = None,
        *,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        min_face: int = 20,
    ) -> None:
        super().__init__()
        folder = Path(weights_dir) if weights_dir is not None else mtcnn_weights_dir()
        self.pnet, self.rnet, self.onet = _PNet(), _RNet(), _ONet()
        for name, net in (("pnet", self.pnet), ("rnet", self.rnet), ("onet", self.onet)):
            path = folder / f"{name}.pt"
            if not path.is_file():
                raise FileNotFoundError(f"MTCNN weights {path} not found")
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        self.thresholds, self.factor, self.min_face = thresholds, factor, min_face
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, rgb: Float[Tensor, "3 H W"]) -> list[FaceBox]:
        """Detect faces in one image (RGB in [0, 1]); returns them by descending score."""
        device = next(self.parameters()).device
        image = (rgb.detach().float().cpu() * 255.0 - 127.5) * 0.0078125  # MTCNN's input normalisation
        _, h, w = image.shape
        t1, t2, t3 = self.thresholds

        # Stage 1: P-Net over an image pyramid (12 px windows, stride 2 at each scale).
        scale = 12.0 / self.min_face
        side = min(h, w) * scale
        found = []
        while side >= 12:
            hs, ws = int(h * scale + 1), int(w * scale + 1)
            level = F.interpolate(image[None], size=(hs, ws), mode="area").to(device)
            prob, reg = self.pnet(level)
            prob, reg = prob[0].cpu(), reg[0].cpu()
            ys, xs = torch.nonzero(prob >= t1, as_tuple=True)
            if ys.numel():
                q0 = torch.stack([xs, ys], 1).float()
                boxes = torch.cat([((2 * q0 + 1) / scale).floor(), ((2 * q0 + 12) / scale).floor()], dim=1)
                scores = prob[ys, xs]
                offsets = reg[:, ys, xs].T
                keep = _nms(boxes, scores, 0.5)
                found.append((boxes[keep], scores[keep], offsets[keep]))
            scale *= self.factor
            side *= self.factor
        if not found:
            return []
        boxes, scores, offsets = (torch.cat(parts) for parts in zip(*found))
        keep = _nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], offsets[keep]))

        # Stage 2: R-Net on 24 x 24 crops.
        prob, reg = self.rnet(_crops(image, boxes, 24).to(device))
        prob, reg = prob.cpu(), reg.cpu()
        ok = prob > t2
        boxes, scores, reg = boxes[ok], prob[ok], reg[ok]
        if boxes.numel() == 0:
            return []
        keep = _nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))

        # Stage 3: O-Net on 48 x 48 crops, with landmarks.
        prob, reg, marks = self.onet(_crops(image, boxes, 48).to(device))
        prob, reg, marks = prob.cpu(), reg.cpu(), marks.cpu()
        ok = prob > t3
        boxes, scores, reg, marks = boxes[ok], prob[ok], reg[ok], marks[ok]
        if boxes.numel() == 0:
            return []
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        px = bw * marks[:, :5] + boxes[:, :1] - 1
        py = bh * marks[:, 5:] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, reg)
        keep = _nms(boxes, scores, 0.7, mode="min")
        return [
            FaceBox(
                tuple(float(v) for v in boxes[i]), float(scores[i]),
                tuple((float(px[i, k]), float(py[i, k])) for k in range(5)),
            )  # fmt: skip
            for i in keep.tolist()
        ]


@lru_cache(maxsize=2)
def _detector(weights_dir: str | None) -> MTCNN:
    return MTCNN(weights_dir)


def detect_faces(rgb: Float[Tensor, "3 H W"], *, min_score: float = 0.8, weights_dir: str | None = None) -> list[FaceBox]:
    """Faces with confidence above ``min_score`` (the reference: 0.8), largest first.

    Example:
        >>> faces = detect_faces(load_image("photo.jpg").rgb)  # doctest: +SKIP
        >>> faces[0].box  # doctest: +SKIP
    """
    faces = [f for f in _detector(weights_dir)(rgb) if f.score > min_score]
    return sorted(faces, key=lambda f: f.area, reverse=True)
