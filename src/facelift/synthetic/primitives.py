"""Scenes of analytic primitives: the geometry and materials of procedural heads and objects.

A scene is a padded table of ``K`` primitives per subject (``[B, K, ...]`` tensors). Every primitive is an
affine image of a canonical shape (unit sphere, unit cube ``[-1, 1]^3``, capped unit cylinder along z,
capped cone with base radius 1 at z = -1 and apex at z = +1, torus about z with outer radius 1), so one
``world -> local`` affine map and a kind id describe its geometry. Ray-primitive intersections are
closed-form for the quadric shapes (``raycast.py``), which makes rendering exact (depth, normals), cheap
and identical on CPU and GPU; tori and shapes with a surface relief (a height field that pushes the
surface inward) are found by marching inside the closed-form interval of their bounding shape.

Operations: ``ADD`` primitives are unioned; ``SUBTRACT`` primitives carve the ``ADD`` primitives of the
same ``group`` (the carved surface takes the subtracting primitive's material, e.g. a mouth interior).
A ``mask`` (for instance a hair-line) can remove part of a primitive's surface.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = [
    "Kind",
    "Op",
    "Pattern",
    "Mask",
    "PrimitiveTable",
    "PrimitiveBuilder",
    "euler_rotation",
    "seeded_generator",
]


class Kind:
    """Canonical shapes."""

    NONE = -1
    SPHERE = 0
    BOX = 1
    CYLINDER = 2
    CONE = 3
    TORUS = 4
    """About local z: ring radius ``1 - tube``, tube radius ``tube`` (``shape[..., 3]``), outer radius 1."""


class Op:
    ADD = 0
    SUBTRACT = 1


class Pattern:
    """Procedural textures, evaluated in the primitive's local frame."""

    SOLID = 0
    NOISE = 1
    STRIPES = 2
    CHECKER = 3
    GRADIENT = 4
    HAIR = 5
    """Strand-like streaks along the local -z direction with anisotropic highlights."""
    SKIN = 6
    """Low-frequency mottling; combined with the face-feature layer on the head primitive."""
    DOTS = 7
    IRIS = 8
    """Sclera with an iris and pupil disc facing local -y."""


class Mask:
    """Surface masks (a masked-out entry point is no hit)."""

    NONE = 0
    HAIRLINE = 1
    """Keep local directions above a hair-line: params (front height, side height, back height, raggedness)."""
    HALF_SPACE = 2
    """Keep local points with ``p . params[:3] >= params[3]``."""


@dataclass
class PrimitiveTable:
    """``K`` primitives for each of ``B`` subjects (padding has ``kind == Kind.NONE``).

    Attributes:
        kind: ``[B, K]`` canonical shape id.
        op: ``[B, K]`` ``Op.ADD`` or ``Op.SUBTRACT``.
        group: ``[B, K]`` carving scope of subtractions.
        w2l: ``[B, K, 3, 4]`` world -> local affine map (local = A @ world + b).
        colour, colour2: ``[B, K, 3]`` base colours (linear RGB in [0, 1]).
        pattern: ``[B, K]`` :class:`Pattern` id; pattern_scale ``[B, K]`` its frequency.
        roughness, specular, subsurface: ``[B, K]`` material parameters in [0, 1].
        mask: ``[B, K]`` :class:`Mask` id; mask_params ``[B, K, 4]``.
        face: ``[B, K]`` 1 for the head primitive that carries brows, stubble and blush; face_params
            ``[B, K, 8]`` (brow colour/height/thickness, stubble density, blush strength, ...).
        shape: ``[B, K, 4]`` ``(relief depth, relief frequency, relief offset, torus tube radius)``: a
            relief depth ``> 0`` carves a value-noise height field of that depth (in units of the
            canonical shape) and frequency into the surface; the tube radius (in ``(0, 1)``) is read
            for :attr:`Kind.TORUS` only.
    """

    kind: Int[Tensor, "B K"]
    op: Int[Tensor, "B K"]
    group: Int[Tensor, "B K"]
    w2l: Float[Tensor, "B K 3 4"]
    colour: Float[Tensor, "B K 3"]
    colour2: Float[Tensor, "B K 3"]
    pattern: Int[Tensor, "B K"]
    pattern_scale: Float[Tensor, "B K"]
    roughness: Float[Tensor, "B K"]
    specular: Float[Tensor, "B K"]
    subsurface: Float[Tensor, "B K"]
    mask: Int[Tensor, "B K"]
    mask_params: Float[Tensor, "B K 4"]
    face: Int[Tensor, "B K"]
    face_params: Float[Tensor, "B K 8"]
    shape: Float[Tensor, "B K 4"]

    @property
    def batch_size(self) -> int:
        return self.kind.shape[0]

    @property
    def num(self) -> int:
        return self.kind.shape[1]

    def to(self, device: torch.device | str) -> "PrimitiveTable":
        return PrimitiveTable(*(getattr(self, f.name).to(device) for f in fields(self)))

    def __getitem__(self, index) -> "PrimitiveTable":
        """Select subjects (keeps the batch axis for ints: ``table[i]`` is ``[1, K]``)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return PrimitiveTable(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def stack(tables: list["PrimitiveTable"]) -> "PrimitiveTable":
        """Concatenate subjects, padding every table to the largest ``K``."""
        k = max(t.num for t in tables)
        out = []
        for f in fields(PrimitiveTable):
            parts = []
            for t in tables:
                x = getattr(t, f.name)
                if t.num < k:
                    pad_shape = (x.shape[0], k - t.num, *x.shape[2:])
                    fill = Kind.NONE if f.name == "kind" else 0
                    pad = torch.full(pad_shape, fill, dtype=x.dtype, device=x.device)
                    if f.name == "w2l":  # identity maps keep padding invertible
                        pad[..., :3] = torch.eye(3, dtype=x.dtype, device=x.device)
                    x = torch.cat([x, pad], 1)
                parts.append(x)
            out.append(torch.cat(parts, 0))
        return PrimitiveTable(*out)


def euler_rotation(yaw: float, pitch: float, roll: float) -> Tensor:
    """World rotation from yaw about z, then pitch about x, then roll about y (radians), float64."""
    cy, sy = torch.cos(torch.tensor(yaw, dtype=torch.float64)), torch.sin(torch.tensor(yaw, dtype=torch.float64))
    cp, sp = torch.cos(torch.tensor(pitch, dtype=torch.float64)), torch.sin(torch.tensor(pitch, dtype=torch.float64))
    cr, sr = torch.cos(torch.tensor(roll, dtype=torch.float64)), torch.sin(torch.tensor(roll, dtype=torch.float64))
    rz = torch.tensor([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]], dtype=torch.float64)
    rx = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]], dtype=torch.float64)
    ry = torch.tensor([[cr, 0, sr], [0, 1, 0], [-sr, 0, cr]], dtype=torch.float64)
    return rz @ rx @ ry


def seeded_generator(*ids: int) -> torch.Generator:
    """A CPU generator seeded deterministically from a tuple of integer ids (subjects, variants, roles)."""
    seed = 0x5EED
    for i in ids:
        seed = (seed * 1_000_003 + int(i) + 0x9E3779B1) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


class PrimitiveBuilder:
    """Collects primitives of one subject, then builds a ``[1, K]`` :class:`PrimitiveTable`.

    Each primitive is placed by a local->world affine map ``world = R @ diag(size) @ local + centre``;
    a builder-wide ``transform`` (a rigid pose) can be pushed to move groups of primitives together.

    Example:
        >>> b = PrimitiveBuilder()
        >>> b.add(Kind.SPHERE, centre=(0, 0, 0), size=(0.5, 0.6, 0.7), colour=(0.8, 0.6, 0.5))
        0
        >>> b.build().num
        1
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.pose_r = torch.eye(3, dtype=torch.float64)
        self.pose_t = torch.zeros(3, dtype=torch.float64)

    def set_pose(self, rotation: Tensor | None = None, pivot: tuple[float, float, float] = (0.0, 0.0, 0.0), translation=(0.0, 0.0, 0.0)) -> None:
        """Rigid pose applied to primitives added from now on: rotate about ``pivot``, then translate."""
        r = torch.eye(3, dtype=torch.float64) if rotation is None else rotation.to(torch.float64)
        piv = torch.tensor(pivot, dtype=torch.float64)
        self.pose_r = r
        self.pose_t = piv - r @ piv + torch.tensor(translation, dtype=torch.float64)

    def add(
        self,
        kind: int,
        *,
        centre,
        size,
        rotation: Tensor | tuple[float, float, float] | None = None,
        colour=(0.5, 0.5, 0.5),
        colour2=None,
        pattern: int = Pattern.SOLID,
        pattern_scale: float = 1.0,
        roughness: float = 0.6,
        specular: float = 0.2,
        subsurface: float = 0.0,
        op: int = Op.ADD,
        group: int = 0,
        mask: int = Mask.NONE,
        mask_params=(0.0, 0.0, 0.0, 0.0),
        face: int = 0,
        face_params=(0.0,) * 8,
        relief: tuple[float, float, float] = (0.0, 1.0, 0.0),
        tube: float = 0.0,
    ) -> int:
        """Add one primitive; ``rotation`` is a 3x3 matrix or (yaw, pitch, roll) radians. Returns its index.

        ``relief = (depth, frequency, offset)`` carves a height field into the surface (depth 0: none);
        ``tube`` is a torus's tube radius relative to its outer radius (required for :attr:`Kind.TORUS`).
        """
        if isinstance(rotation, Tensor):
            rot = rotation.to(torch.float64)
        elif rotation is None:
            rot = torch.eye(3, dtype=torch.float64)
        else:
            rot = euler_rotation(*rotation)
        size_t = torch.tensor(size, dtype=torch.float64)
        if (size_t <= 0).any():
            raise ValueError(f"primitive size must be positive, got {tuple(size_t.tolist())}")
        if kind == Kind.TORUS and not 0.0 < tube < 1.0:
            raise ValueError(f"a torus needs a tube radius in (0, 1), got {tube}")
        if not 0.0 <= relief[0] < 1.0 or relief[1] <= 0:
            raise ValueError(f"relief depth must be in [0, 1) and its frequency positive, got {relief}")
        l2w_lin = self.pose_r @ rot @ torch.diag(size_t)
        l2w_t = self.pose_r @ torch.tensor(centre, dtype=torch.float64) + self.pose_t
        a = torch.linalg.inv(l2w_lin)
        w2l = torch.cat([a, (-a @ l2w_t)[:, None]], 1)
        self.rows.append(
            dict(
                kind=kind, op=op, group=group, w2l=w2l, colour=colour, colour2=colour if colour2 is None else colour2,
                pattern=pattern, pattern_scale=pattern_scale, roughness=roughness, specular=specular,
                subsurface=subsurface, mask=mask, mask_params=mask_params, face=face, face_params=face_params,
                shape=(float(relief[0]), float(relief[1]), float(relief[2]), float(tube)),
            )  # fmt: skip
        )
        return len(self.rows) - 1

    def build(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> PrimitiveTable:
        if not self.rows:
            raise ValueError("a scene needs at least one primitive")

        def col(name, kind="f"):
            vals = [r[name] for r in self.rows]
            if kind == "i":
                return torch.tensor(vals, dtype=torch.long, device=device)[None]
            if isinstance(vals[0], Tensor):
                return torch.stack(vals).to(device=device, dtype=dtype)[None]
            return torch.tensor(vals, dtype=dtype, device=device)[None]

        return PrimitiveTable(
            kind=col("kind", "i"), op=col("op", "i"), group=col("group", "i"), w2l=col("w2l"),
            colour=col("colour"), colour2=col("colour2"), pattern=col("pattern", "i"),
            pattern_scale=col("pattern_scale"), roughness=col("roughness"), specular=col("specular"),
            subsurface=col("subsurface"), mask=col("mask", "i"), mask_params=col("mask_params"),
            face=col("face", "i"), face_params=col("face_params"), shape=col("shape"),
        )  # fmt: skip
