"""Gaussian file formats: the standard 3DGS PLY and antimatter15's ``.splat``.

PLY (binary little-endian, one ``vertex`` element, every property ``float``), in this order::

    x y z  nx ny nz  f_dc_0..2  f_rest_0..f_rest_{3(K-1)-1}  opacity  scale_0..2  rot_0..3

Raw (pre-activation) values live only in the file: ``opacity`` is a logit, ``scale_*`` are log standard
deviations, ``rot_*`` is a wxyz quaternion and ``f_rest`` is channel-major
(``f_rest_{c (K-1) + (k-1)}`` holds coefficient ``k`` of channel ``c``), as written by 3DGS's
``GaussianModel.save_ply``. Normals are written as zeros and ignored on load.

``.splat`` (antimatter15/splat, read by most web viewers): 32 bytes per Gaussian, no header::

    position 3 x float32 | scale 3 x float32 (linear) | RGBA 4 x uint8 | rotation 4 x uint8 (wxyz)

Writes are atomic (:func:`facelift.utils.io.atomic_write_bytes`): the data goes to a temporary file in the
destination directory, which then replaces the destination; a failed write leaves the destination untouched
and no temporary file behind.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from facelift.cameras.conventions import normalize_quat
from facelift.gaussians.container import Gaussians, rgb_to_sh_dc, sh_dc_to_rgb, sh_degree_from_coeffs
from facelift.utils.io import atomic_write_bytes

__all__ = ["load_gaussians", "load_ply", "load_splat", "ply_property_names", "save_ply", "save_splat"]

PathLike = str | os.PathLike

_OPACITY_EPS = 1e-7
"""Opacities are clamped into ``[eps, 1 - eps]`` before the logit so that 0 and 1 stay finite."""

_MIN_SCALE = float(np.finfo(np.float32).tiny)
"""Zero standard deviations are clamped to this before the log (``log`` stays finite in float32)."""

_SPLAT_DTYPE = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))])
"""One ``.splat`` record, 32 bytes."""


def ply_property_names(sh_degree: int) -> list[str]:
    """The vertex property names, in file order, of a 3DGS PLY with SH degree ``sh_degree``.

    Example:
        >>> len(ply_property_names(0)), len(ply_property_names(3)), ply_property_names(0)[-5:]
        (17, 62, ['scale_2', 'rot_0', 'rot_1', 'rot_2', 'rot_3'])
    """
    if sh_degree < 0:
        raise ValueError(f"sh_degree must be >= 0, got {sh_degree}")
    num_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return [
        "x", "y", "z", "nx", "ny", "nz",
        *(f"f_dc_{i}" for i in range(3)),
        *(f"f_rest_{i}" for i in range(num_rest)),
        "opacity",
        *(f"scale_{i}" for i in range(3)),
        *(f"rot_{i}" for i in range(4)),
    ]  # fmt: skip


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _unbatched_numpy(g: Gaussians, what: str) -> dict[str, np.ndarray]:
    if not isinstance(g, Gaussians):
        raise ValueError(f"{what} expects Gaussians, got {type(g)}")
    if len(g.shape) != 1:
        raise ValueError(f"{what} writes one unbatched set [N], got Gaussians of shape {tuple(g.shape)}")
    return {
        name: getattr(g, name).detach().to("cpu", torch.float64).numpy()
        for name in ("means", "quats", "scales", "opacities", "sh")
    }


def save_ply(path: PathLike, g: Gaussians, *, sh_degree: int | None = None) -> None:
    """Write an unbatched set as a standard 3DGS binary little-endian PLY (atomically).

    Means, quaternions and SH coefficients are stored as float32 unchanged; opacities as
    ``logit(clamp(o, 1e-7, 1 - 1e-7))`` and standard deviations as ``log(s)`` (zeros clamped to the
    smallest normal float32), both computed in float64.

    Args:
        path: destination file; its directory must exist.
        g: Gaussians of shape ``[N]``; scales must be >= 0.
        sh_degree: SH degree to write; None keeps ``g.sh_degree``. Higher degrees are zero-padded (the
            reference release writes ``sh_degree=3``, 45 ``f_rest`` properties), lower ones truncate.

    Raises:
        ValueError: batched input, negative or non-finite scales, or a negative ``sh_degree``.
        FileNotFoundError: the destination directory does not exist.

    Example:
        >>> g = Gaussians.from_rgb(torch.zeros(4, 3), torch.full((4, 3), 0.01), torch.full((4,), 0.5), torch.rand(4, 3))
        >>> save_ply("/tmp/head.ply", g, sh_degree=3)
        >>> load_ply("/tmp/head.ply").sh.shape
        torch.Size([4, 16, 3])
    """
    if sh_degree is not None:
        if sh_degree < 0:
            raise ValueError(f"sh_degree must be >= 0, got {sh_degree}")
        g = g.with_sh_degree(sh_degree)
    arrays = _unbatched_numpy(g, "save_ply")
    scales = arrays["scales"]
    if not np.isfinite(scales).all() or (scales < 0).any():
        raise ValueError(f"scales must be finite and >= 0 to be written as log-scales (writing {path})")
    n, k = arrays["sh"].shape[:2]

    opacity = np.clip(arrays["opacities"], _OPACITY_EPS, 1.0 - _OPACITY_EPS)
    columns = [
        arrays["means"],  # x y z
        np.zeros((n, 3)),  # nx ny nz
        arrays["sh"][:, 0, :],  # f_dc_0..2
        arrays["sh"][:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1)),  # f_rest, channel-major
        (np.log(opacity) - np.log1p(-opacity))[:, None],  # logit
        np.log(np.maximum(scales, _MIN_SCALE)),
        arrays["quats"],  # wxyz
    ]
    table = np.ascontiguousarray(np.concatenate(columns, axis=1), dtype="<f4")  # [N, P]
    names = ply_property_names(sh_degree_from_coeffs(k))
    assert table.shape[1] == len(names)
    header = "\n".join(
        ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
        + [f"property float {name}" for name in names]
        + ["end_header", ""]
    )
    atomic_write_bytes(path, header.encode("ascii") + table.tobytes())


def load_ply(
    path: PathLike, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Gaussians:
    """Read a 3DGS PLY (any SH degree; normals and extra properties are ignored).

    Properties are looked up by name, so their order and storage type do not matter. Opacities and scales
    are activated (sigmoid, exp) in float64 before the cast to ``dtype``.

    Args:
        path: a PLY file with a ``vertex`` element holding ``x, y, z, f_dc_0..2, opacity, scale_0..2,
            rot_0..3`` and 0, 9, 24 or 45 (any ``3 (K - 1)`` with square ``K``) ``f_rest_*`` properties.
        device: device of the returned tensors (CPU by default).
        dtype: floating dtype of the returned tensors.

    Returns:
        Gaussians of shape ``[N]`` with ``sh`` of shape ``[N, K, 3]``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a PLY file, or no ``vertex`` element, or missing / inconsistent properties; the
            message names the file.

    Example:
        >>> g = Gaussians.from_rgb(torch.zeros(4, 3), torch.ones(4, 3), torch.ones(4), torch.rand(4, 3))
        >>> save_ply("/tmp/head.ply", g)
        >>> g = load_ply("/tmp/head.ply", dtype=torch.float64)
        >>> g.means.shape, g.opacities.dtype
        (torch.Size([4, 3]), torch.float64)
    """
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY file not found: {path}")
    try:
        ply = PlyData.read(str(path))
    except (PlyParseError, ValueError, EOFError, UnicodeDecodeError, IndexError) as err:
        raise ValueError(f"{path} is not a readable PLY file: {err}") from err
    if "vertex" not in ply:
        names = [el.name for el in ply.elements]
        raise ValueError(f"{path} has no 'vertex' element (elements: {names})")
    vertex = ply["vertex"].data
    present = set(vertex.dtype.names or ())
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", *(f"scale_{i}" for i in range(3))]
    required += [f"rot_{i}" for i in range(4)]
    missing = [name for name in required if name not in present]
    if missing:
        raise ValueError(f"{path} is not a 3DGS PLY: vertex properties {missing} are missing")
    prefix = "f_rest_"
    suffixes = [name[len(prefix) :] for name in present if name.startswith(prefix)]
    rest = sorted(int(s) for s in suffixes if s.isdigit())
    if rest != list(range(len(rest))):
        raise ValueError(f"{path}: f_rest properties must be numbered f_rest_0, f_rest_1, ... without gaps, got {rest}")
    k = len(rest) // 3 + 1  # SH coefficients per channel
    if len(rest) % 3 or (math.isqrt(k) ** 2 != k):
        raise ValueError(f"{path}: {len(rest)} f_rest properties is not 3 (K - 1) for K = (degree + 1)^2 (0, 9, 24, 45)")

    def cols(*names: str) -> np.ndarray:
        return np.stack([np.asarray(vertex[name], dtype=np.float64) for name in names], axis=-1)

    n = len(vertex)
    f_rest = cols(*(f"f_rest_{i}" for i in range(len(rest)))) if rest else np.zeros((n, 0))
    f_dc = cols("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]  # [N, 1, 3]
    sh = np.concatenate([f_dc, f_rest.reshape(n, 3, k - 1).transpose(0, 2, 1)], axis=1)  # [N, K, 3]
    arrays = {
        "means": cols("x", "y", "z"),
        "quats": cols("rot_0", "rot_1", "rot_2", "rot_3"),
        "scales": np.exp(cols("scale_0", "scale_1", "scale_2")),
        "opacities": _sigmoid(np.asarray(vertex["opacity"], dtype=np.float64)),
        "sh": sh,
    }
    return Gaussians(**{name: torch.from_numpy(a).to(device=device, dtype=dtype) for name, a in arrays.items()})


def save_splat(path: PathLike, g: Gaussians) -> None:
    """Write an unbatched set in antimatter15's ``.splat`` format (32 bytes per Gaussian, atomically).

    Each record is position (3 float32), linear scale (3 float32), RGBA (4 uint8: the DC colour
    ``0.5 + SH_C0 f_dc`` and the opacity, clamped to [0, 1], times 255, rounded half up) and the normalised
    wxyz quaternion as ``round(q * 128 + 128)`` clamped to 0..255. Records are sorted by descending
    ``prod(scales) * opacity`` (= ``exp(sum(log scales)) * opacity``, the order of antimatter15's
    ``convert.py``), ties in input order. Higher SH bands are dropped. Unlike ``convert.py``, which
    truncates, bytes are rounded.

    Args:
        path: destination file; its directory must exist.
        g: Gaussians of shape ``[N]``.

    Raises:
        ValueError: batched input.
        FileNotFoundError: the destination directory does not exist.

    Example:
        >>> g = Gaussians.from_rgb(torch.zeros(4, 3), torch.full((4, 3), 0.01), torch.full((4,), 0.5), torch.rand(4, 3))
        >>> save_splat("/tmp/head.splat", g)
        >>> os.path.getsize("/tmp/head.splat")
        128
    """
    arrays = _unbatched_numpy(g, "save_splat")
    order = np.argsort(-(np.prod(arrays["scales"], axis=-1) * arrays["opacities"]), kind="stable")

    def to_u8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)

    rgb = sh_dc_to_rgb(torch.from_numpy(arrays["sh"][:, 0, :])).numpy()  # [N, 3] DC colour, unclamped
    rgba = np.concatenate([rgb, arrays["opacities"][:, None]], axis=-1)
    quats = normalize_quat(torch.from_numpy(arrays["quats"])).numpy()
    records = np.empty(len(order), dtype=_SPLAT_DTYPE)
    records["position"] = arrays["means"][order]
    records["scale"] = arrays["scales"][order]
    records["rgba"] = to_u8(np.clip(rgba[order], 0.0, 1.0) * 255.0)
    records["rot"] = to_u8(quats[order] * 128.0 + 128.0)
    atomic_write_bytes(path, records.tobytes())


def load_splat(
    path: PathLike, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Gaussians:
    """Read a ``.splat`` file written by :func:`save_splat` or antimatter15's ``convert.py`` (lossy).

    Colours and opacities come back quantised to 1/255 and rotations to 1/128 (quaternions are not
    re-normalised); the SH degree is 0.

    Args:
        path: a ``.splat`` file, 32 bytes per Gaussian.
        device: device of the returned tensors (CPU by default).
        dtype: floating dtype of the returned tensors.

    Returns:
        Gaussians of shape ``[N]`` in file order.

    Raises:
        ValueError: the file size is not a multiple of 32 bytes.

    Example:
        >>> g = Gaussians.from_rgb(torch.zeros(4, 3), torch.ones(4, 3), torch.ones(4), torch.rand(4, 3))
        >>> save_splat("/tmp/head.splat", g)
        >>> load_splat("/tmp/head.splat").num
        4
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f".splat file not found: {path}")
    data = path.read_bytes()
    if len(data) % _SPLAT_DTYPE.itemsize:
        raise ValueError(f"{path} is not a .splat file: size {len(data)} is not a multiple of {_SPLAT_DTYPE.itemsize} bytes")
    records = np.frombuffer(data, dtype=_SPLAT_DTYPE)

    def tensor(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(device=device, dtype=dtype)

    rgba = tensor(records["rgba"]) / 255.0
    return Gaussians(
        means=tensor(records["position"]),
        quats=(tensor(records["rot"]) - 128.0) / 128.0,
        scales=tensor(records["scale"]),
        opacities=rgba[:, 3],
        sh=rgb_to_sh_dc(rgba[:, :3])[:, None, :],
    )


def load_gaussians(
    path: PathLike, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Gaussians:
    """Read Gaussians from a ``.splat`` file (:func:`load_splat`, lossy, SH degree 0) or, for any other name, a
    3DGS PLY (:func:`load_ply`).

    Returns:
        Gaussians of shape ``[N]``.
    """
    load = load_splat if Path(path).suffix.lower() == ".splat" else load_ply
    return load(path, device=device, dtype=dtype)
