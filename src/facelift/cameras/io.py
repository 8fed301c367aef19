"""Reading and writing camera files in the reference ``opencv_cameras.json`` layout.

Layout (one file per subject)::

    {"id": ..., "frames": [{"w": 512, "h": 512, "fx": ..., "fy": ..., "cx": ..., "cy": ...,
                            "w2c": [[...4 floats...] x 4],   # row-major, OpenCV world-to-camera
                            "file_path": "images/cam_000.png"}, ...]}

and ``c2w = inverse(w2c)``. Matrices are read and inverted in float64 before any cast.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from facelift.cameras.cameras import Cameras, intrinsics_matrix
from facelift.utils.io import atomic_write_text

__all__ = ["read_opencv_cameras", "write_opencv_cameras"]

logger = logging.getLogger(__name__)

_FRAME_KEYS = ("w", "h", "fx", "fy", "cx", "cy", "w2c")


def _default_file_path(index: int) -> str:
    return f"images/cam_{index:03d}.png"


def _number(path: Path, index: int, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path}: frame {index}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _pixels(path: Path, index: int, key: str, value: Any) -> int:
    number = _number(path, index, key, value)
    if number <= 0 or number != int(number):
        raise ValueError(f"{path}: frame {index}: {key!r} must be a positive integer, got {value!r}")
    return int(number)


def _matrix(path: Path, index: int, value: Any) -> list[list[float]]:
    rows_ok = isinstance(value, list) and len(value) == 4
    if not (rows_ok and all(isinstance(row, list) and len(row) == 4 for row in value)):
        raise ValueError(f"{path}: frame {index}: 'w2c' must be a 4x4 nested list (row-major), got {value!r}")
    return [[_number(path, index, "w2c", x) for x in row] for row in value]


def read_opencv_cameras(
    path: str | os.PathLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Cameras, list[str], dict[str, Any]]:
    """Read an ``opencv_cameras.json`` file.

    Args:
        path: the JSON file.
        device: device of the returned cameras (CPU by default).
        dtype: floating dtype of the returned ``c2w`` and ``K``; ``w2c`` is parsed and inverted in float64
            first.

    Returns:
        ``(cameras, file_paths, extras)``: ``Cameras`` of batch shape ``[N]`` (one per frame, in file
        order), the frames' ``file_path`` strings (``""`` for a frame without one), and the top-level
        fields other than ``"frames"`` (e.g. ``{"id": ...}``).

    Raises:
        ValueError: naming the file, if it is not JSON, has no non-empty ``"frames"`` list, a frame lacks
            one of ``w, h, fx, fy, cx, cy, w2c``, a ``w2c`` is not a finite invertible 4x4 matrix, or the
            frames have different image sizes.

    Example:
        >>> cameras, file_paths, extras = read_opencv_cameras("opencv_cameras.json")  # doctest: +SKIP
        >>> cameras.batch_shape, file_paths[0], extras  # doctest: +SKIP
        (torch.Size([6]), 'images/cam_000.png', {'id': 'subject_0001'})
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{path}: needs a non-empty 'frames' list")

    sizes, intrinsics, w2c_rows, file_paths = [], [], [], []
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise ValueError(f"{path}: frame {index} must be a JSON object, got {type(frame).__name__}")
        missing = [key for key in _FRAME_KEYS if key not in frame]
        if missing:
            raise ValueError(f"{path}: frame {index} lacks {', '.join(repr(k) for k in missing)}")
        sizes.append((_pixels(path, index, "w", frame["w"]), _pixels(path, index, "h", frame["h"])))
        intrinsics.append([_number(path, index, key, frame[key]) for key in ("fx", "fy", "cx", "cy")])
        w2c_rows.append(_matrix(path, index, frame["w2c"]))
        file_path = frame.get("file_path", "")
        if not isinstance(file_path, str):
            raise ValueError(f"{path}: frame {index}: 'file_path' must be a string, got {file_path!r}")
        file_paths.append(file_path)

    if len(set(sizes)) != 1:
        raise ValueError(f"{path}: frames have different image sizes {sorted(set(sizes))}; Cameras share one size")
    width, height = sizes[0]

    w2c = torch.tensor(w2c_rows, dtype=torch.float64)  # [N, 4, 4]
    c2w, info = torch.linalg.inv_ex(w2c)
    singular = (info != 0) | ~torch.isfinite(c2w).flatten(-2).all(-1)  # [N]
    if bool(singular.any()):
        raise ValueError(f"{path}: frame {int(singular.nonzero()[0, 0])}: 'w2c' is not invertible")
    fx, fy, cx, cy = torch.tensor(intrinsics, dtype=torch.float64).unbind(-1)  # 4 x [N]
    K = intrinsics_matrix(fx, fy, cx, cy)  # [N, 3, 3]
    cameras = Cameras(c2w.to(device=device, dtype=dtype), K.to(device=device, dtype=dtype), width, height)
    extras = {key: value for key, value in data.items() if key != "frames"}
    logger.debug("read %d cameras (%dx%d) from %s", len(frames), width, height, path)
    return cameras, file_paths, extras


def write_opencv_cameras(
    path: str | os.PathLike,
    cameras: Cameras,
    file_paths: Sequence[str] | None = None,
    id: str | int | None = None,  # noqa: A002 - the reference file's key
) -> None:
    """Write cameras to an ``opencv_cameras.json`` file, atomically.

    The cameras are flattened to ``[N]`` in row-major batch order. ``w2c`` is the float64 inverse of
    ``c2w``. The file is written to a temporary file in the same directory and moved into place with
    ``os.replace``, so readers never see a partial file.

    Args:
        path: the JSON file to create or replace; its directory must exist.
        cameras: ``Cameras`` of any batch shape ``[...]`` (zero-skew ``K``).
        file_paths: one image path per camera; ``images/cam_000.png, images/cam_001.png, ...`` by default.
        id: the top-level ``"id"`` field; omitted when ``None``.

    Raises:
        ValueError: if ``file_paths`` does not have one entry per camera or a ``K`` has skew.

    Example:
        >>> from facelift.cameras import facelift_views
        >>> write_opencv_cameras("opencv_cameras.json", facelift_views(), id="subject_0001")  # doctest: +SKIP
    """
    path = Path(path)
    flat = cameras.reshape(-1)  # [N]
    num = flat.batch_shape[0]
    if file_paths is None:
        file_paths = [_default_file_path(i) for i in range(num)]
    file_paths = list(file_paths)
    if len(file_paths) != num:
        raise ValueError(f"file_paths has {len(file_paths)} entries for {num} cameras")
    K = flat.K.detach().to(device="cpu", dtype=torch.float64)  # [N, 3, 3]
    if bool((K[:, 0, 1] != 0).any()):
        raise ValueError("the opencv_cameras.json layout cannot store a skewed K (K[..., 0, 1] != 0)")
    w2c = torch.linalg.inv(flat.c2w.detach().to(device="cpu", dtype=torch.float64))  # [N, 4, 4]

    frames = [
        {
            "w": flat.width,
            "h": flat.height,
            "fx": K[i, 0, 0].item(),
            "fy": K[i, 1, 1].item(),
            "cx": K[i, 0, 2].item(),
            "cy": K[i, 1, 2].item(),
            "w2c": w2c[i].tolist(),
            "file_path": file_paths[i],
        }
        for i in range(num)
    ]
    data: dict[str, Any] = {} if id is None else {"id": id}
    data["frames"] = frames

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    logger.debug("wrote %d cameras to %s", num, path)
