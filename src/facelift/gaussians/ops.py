"""Pure operations on :class:`~facelift.gaussians.container.Gaussians`.

* :func:`covariance`: world-frame covariances ``R diag(s^2) R^T``.
* :func:`average_corresponding`: the parameter-wise mean of several sets whose Gaussians correspond one to one
  (pixel-aligned predictions of the same views, e.g. from several diffusion samples).
* :func:`transform`: a similarity transform (rotation, translation, uniform scale) of a whole set,
  including the band-1 spherical harmonics (:func:`rotate_sh`).
* :func:`reference_prune_mask` / :func:`reference_prune`: the reference release's post-processing
  (``GaussianModel.apply_all_filters`` with the thresholds its inference script uses); :class:`PruneSettings`
  holds a set of those thresholds (a weights folder records its own, see :mod:`facelift.pipeline.facelift`).

None of these modify their inputs; all are differentiable with respect to the Gaussian fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from facelift.cameras.conventions import normalize_quat, quat_multiply, quat_to_rotmat, rotmat_to_quat
from facelift.gaussians.container import Gaussians, sh_degree_from_coeffs

__all__ = [
    "PruneSettings",
    "REFERENCE_CROP_BOX",
    "average_corresponding",
    "covariance",
    "reference_prune",
    "reference_prune_mask",
    "rotate_sh",
    "transform",
]

REFERENCE_CROP_BOX = (-0.91, 0.91, -0.91, 0.91, -1.0, 1.0)
"""``(x_min, x_max, y_min, y_max, z_min, z_max)`` of the reference release's final crop (world frame)."""


@dataclass(frozen=True)
class PruneSettings:
    """Thresholds of :func:`reference_prune` (the defaults are the reference release's; None disables a rule).

    The crop box belongs to the reference's data framing: facelift's procedural heads show more of the
    shoulders, which lie outside it, so the bundled default weights prune without it.

    Example:
        >>> PruneSettings.from_dict({"crop_box": None}).crop_box is None
        True
    """

    opacity_threshold: float = 0.04
    scale_threshold: float | None = 0.1
    floater_threshold: float | None = 0.6
    crop_box: tuple[float, float, float, float, float, float] | None = REFERENCE_CROP_BOX

    def __post_init__(self) -> None:
        if self.crop_box is not None:
            box = tuple(float(v) for v in self.crop_box)
            if len(box) != 6 or box[0] > box[1] or box[2] > box[3] or box[4] > box[5]:
                raise ValueError(f"crop_box must be (x_min, x_max, y_min, y_max, z_min, z_max), got {self.crop_box}")
            object.__setattr__(self, "crop_box", box)

    @classmethod
    def procedural(cls) -> "PruneSettings":
        """The rules for models trained on facelift's procedural heads: the reference's without the crop box."""
        return cls(crop_box=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (the crop box as a list)."""
        out = asdict(self)
        out["crop_box"] = list(self.crop_box) if self.crop_box is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PruneSettings":
        """Settings from (some of) the fields; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown pruning settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def apply(self, g: Gaussians) -> Gaussians:
        """The Gaussians of an unbatched set ``[N]`` that pass these rules (see :func:`reference_prune`)."""
        return reference_prune(g, **asdict(self))

# 3DGS evaluates band 1 as ``-C1*y*c1 + C1*z*c2 - C1*x*c3``, i.e. ``C1 * v . d`` with ``v = P @ (c1, c2, c3)``
# and this signed permutation P (rows: the x, y, z components of v).
_BAND1_TO_XYZ = ((0.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def covariance(g: Gaussians) -> Float[Tensor, "*batch N 3 3"]:
    """World-frame covariance ``Sigma = R diag(s^2) R^T`` of every Gaussian.

    Args:
        g: Gaussians of shape ``[..., N]`` (quaternions need not be normalised).

    Returns:
        ``[..., N, 3, 3]`` symmetric positive semi-definite matrices.

    Example:
        >>> g = Gaussians.from_rgb(torch.zeros(1, 3), torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1), torch.zeros(1, 3))
        >>> covariance(g)[0].diagonal()
        tensor([1., 4., 9.])
    """
    rot = quat_to_rotmat(g.quats)  # [..., N, 3, 3]
    rs = rot * g.scales[..., None, :]  # R diag(s): column j scaled by s_j
    return rs @ rs.transpose(-1, -2)


def average_corresponding(gaussians: Gaussians, dim: int = 0) -> Gaussians:
    """Mean of corresponding Gaussians along a batch axis: ``[..., K, ..., N] -> [..., ..., N]``.

    Gaussian ``n`` of every set along ``dim`` must describe the same thing: for GS-LRM's pixel-aligned output,
    the Gaussian of one pixel of one input view, whose centre lies on that pixel's ray, so the mean centre is on
    the ray at the mean depth. Centres, opacities and SH coefficients are averaged; scales geometrically (a
    mean of log-scales, as the reconstructor predicts them); rotations as sign-aligned unit quaternions (``q``
    and ``-q`` are one rotation: each is flipped into the hemisphere of the first set's, summed and normalised).

    Args:
        gaussians: sets stacked along batch axis ``dim`` (not the Gaussian axis).
        dim: the axis to average over.

    Returns:
        :class:`Gaussians` without that axis.
    """
    batch = len(gaussians.shape) - 1
    if batch < 1:
        raise ValueError(f"need a batch axis to average over, got Gaussians of shape {tuple(gaussians.shape)}")
    if not -batch <= dim < batch:
        raise ValueError(f"dim {dim} is not a batch axis of Gaussians of shape {tuple(gaussians.shape)}")
    dim = dim % batch
    q = gaussians.quats
    first = q.narrow(dim, 0, 1)
    sign = torch.where((q * first).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(q.dtype)
    return Gaussians(
        means=gaussians.means.mean(dim),
        quats=normalize_quat((q * sign).sum(dim)),
        scales=gaussians.scales.clamp_min(torch.finfo(gaussians.scales.dtype).tiny).log().mean(dim).exp(),
        opacities=gaussians.opacities.mean(dim),
        sh=gaussians.sh.mean(dim),
    )


def _rotation_from(rotation: Tensor, *, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(R [3, 3], q [4] unit wxyz)`` from a rotation matrix or a quaternion, validated."""
    if not isinstance(rotation, Tensor):
        raise ValueError(f"rotation must be a tensor ([3, 3] matrix or [4] wxyz quaternion), got {type(rotation)}")
    rotation = rotation.to(device=device, dtype=dtype)
    if rotation.shape == (4,):
        if not torch.isfinite(rotation).all() or float(rotation.norm()) < 1e-8:
            raise ValueError(f"rotation quaternion must be finite and non-zero, got {rotation.tolist()}")
        return quat_to_rotmat(rotation), normalize_quat(rotation)
    if rotation.shape == (3, 3):
        eye = torch.eye(3, dtype=dtype, device=device)
        orthonormal = torch.allclose(rotation @ rotation.T, eye, atol=1e-4)
        if not orthonormal or float(torch.linalg.det(rotation)) <= 0:
            raise ValueError(f"rotation must be a proper rotation (R R^T = I, det R = +1), got {rotation.tolist()}")
        return rotation, rotmat_to_quat(rotation)
    raise ValueError(f"rotation must be [3, 3] (matrix) or [4] (wxyz quaternion), got {tuple(rotation.shape)}")


def rotate_sh(sh: Float[Tensor, "*batch K 3"], rotation: Float[Tensor, "3 3"]) -> Float[Tensor, "*batch K 3"]:
    """Coefficients of the rotated colour function: ``f'(R d) = f(d)`` for every direction ``d``.

    Band 0 is invariant. Band 1 uses the 3DGS real-SH ordering ``(y, z, x)`` with signs
    ``(-C1 y, +C1 z, -C1 x)``: the band is ``C1 v . d`` with ``v = P c`` for a signed permutation ``P``, so it
    rotates as ``c' = P^T R P c``. Bands 2 and 3 are not implemented yet; they pass through unchanged only
    when ``rotation`` is the identity.

    Args:
        sh: ``[..., K, 3]`` coefficients (any number of leading axes, e.g. ``[..., N, K, 3]``).
        rotation: ``[3, 3]`` proper rotation matrix.

    Returns:
        ``[..., K, 3]`` rotated coefficients.

    Raises:
        NotImplementedError: ``K > 4`` (degree >= 2) and ``rotation`` is not the identity.

    Example:
        >>> rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
        >>> sh = torch.tensor([[0.0], [0.0], [0.0], [1.0]]).expand(4, 3)  # band 1 = -C1 x: a lobe along -x
        >>> rotate_sh(sh, rz)[:, 0]  # now -C1 y: a lobe along -y
        tensor([0., 1., 0., 0.])
    """
    if sh.ndim < 2 or sh.shape[-1] != 3:
        raise ValueError(f"sh must be [..., K, 3], got {tuple(sh.shape)}")
    if rotation.shape != (3, 3):
        raise ValueError(f"rotation must be [3, 3], got {tuple(rotation.shape)}")
    k = sh.shape[-2]
    sh_degree_from_coeffs(k)  # raises for a non-square K
    rotation = rotation.to(dtype=sh.dtype, device=sh.device)
    if k > 4:
        eye = torch.eye(3, dtype=sh.dtype, device=sh.device)
        if not torch.allclose(rotation, eye, atol=1e-6, rtol=0.0):
            raise NotImplementedError(
                f"rotating spherical harmonics of degree >= 2 is not implemented (got K={k} coefficients); "
                "drop the higher bands first, e.g. g.with_sh_degree(1)"
            )
        return sh
    if k == 1:
        return sh
    perm = sh.new_tensor(_BAND1_TO_XYZ)  # [3, 3]
    d1 = perm.T @ rotation @ perm  # acts on (c1, c2, c3)
    band1 = d1 @ sh[..., 1:4, :]  # [..., 3, 3] (coefficient, channel)
    return torch.cat([sh[..., :1, :], band1], dim=-2)


def transform(
    g: Gaussians,
    rotation: Float[Tensor, "3 3"] | Float[Tensor, "4"],
    translation: Float[Tensor, "3"] | None = None,
    scale: float = 1.0,
) -> Gaussians:
    """Apply ``x -> scale * R x + t`` to every Gaussian of ``g``.

    Means map as points, rotations compose on the left (``q' = q_R * q``, so covariances become
    ``scale^2 R Sigma R^T``), standard deviations multiply by ``scale`` and the view-dependent colour is
    rotated with :func:`rotate_sh` (degree <= 1, or any degree when ``R`` is the identity). Opacities are
    unchanged. The same transform applies to every set of a batched ``g``.

    Args:
        g: Gaussians of shape ``[..., N]``.
        rotation: ``[3, 3]`` proper rotation matrix or ``[4]`` wxyz quaternion (normalised here).
        translation: ``[3]`` translation applied after rotation and scaling; zero when None.
        scale: uniform scale factor, > 0.

    Returns:
        Transformed Gaussians of the same shape, dtype and device as ``g``.

    Raises:
        ValueError: bad shapes, a non-rotation matrix (reflection, shear) or ``scale <= 0``.
        NotImplementedError: SH degree >= 2 with a non-identity rotation.

    Example:
        >>> g = Gaussians.from_rgb(torch.tensor([[1.0, 1.0, 0.0]]), torch.ones(1, 3), torch.ones(1), torch.zeros(1, 3))
        >>> q_z90 = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])  # 90 deg about z
        >>> transform(g, q_z90, torch.tensor([0.0, 0.0, 1.0]), scale=2.0).means.round(decimals=4)
        tensor([[-2.,  2.,  1.]])
    """
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite positive number, got {scale}")
    rot, q_rot = _rotation_from(rotation, dtype=g.dtype, device=g.device)
    if translation is None:
        translation = g.means.new_zeros(3)
    if not isinstance(translation, Tensor) or translation.shape != (3,):
        shape = tuple(translation.shape) if isinstance(translation, Tensor) else type(translation)
        raise ValueError(f"translation must be a [3] tensor, got {shape}")
    translation = translation.to(dtype=g.dtype, device=g.device)

    means = scale * (g.means @ rot.T) + translation  # [..., N, 3]
    quats = quat_multiply(q_rot.expand_as(g.quats), g.quats)  # rotate the local frame: R (R_q)
    return Gaussians(means, quats, g.scales * scale, g.opacities, rotate_sh(g.sh, rot))


def reference_prune_mask(
    g: Gaussians,
    *,
    opacity_threshold: float = 0.04,
    scale_threshold: float | None = 0.1,
    floater_threshold: float | None = 0.6,
    crop_box: Sequence[float] | None = REFERENCE_CROP_BOX,
) -> Bool[Tensor, "*batch N"]:
    """Which Gaussians survive the reference release's pruning (``True`` = keep).

    The reference applies four filters in turn; each is pointwise, so their composition is the AND of:

    1. opacity: ``opacity > opacity_threshold``;
    2. size: ``max(scales) < scale_threshold`` **or** ``z > 0`` (large Gaussians survive only above the
       xy-plane, i.e. in the top half of the head);
    3. floaters: not (``|x| > t`` and ``|y| > t`` and ``z < -t``) with ``t = floater_threshold`` (the four
       bottom corners of the box);
    4. crop: ``x_min <= x <= x_max``, ``y_min <= y <= y_max``, ``z_min <= z <= z_max`` (bounds inclusive).

    Args:
        g: Gaussians of shape ``[..., N]`` in the reference world frame (z up).
        opacity_threshold: keep opacities strictly above this.
        scale_threshold: size limit below the xy-plane; None disables rule 2.
        floater_threshold: corner threshold ``t``; None disables rule 3.
        crop_box: ``(x_min, x_max, y_min, y_max, z_min, z_max)``; None disables rule 4.

    Returns:
        ``[..., N]`` boolean keep-mask.

    Example:
        >>> means = torch.tensor([[0.0, 0.0, 0.0], [0.95, 0.0, 0.0]])
        >>> g = Gaussians.from_rgb(means, torch.full((2, 3), 0.01), torch.ones(2), torch.zeros(2, 3))
        >>> reference_prune_mask(g)
        tensor([ True, False])
    """
    x, y, z = g.means.unbind(-1)
    keep = g.opacities > opacity_threshold
    if scale_threshold is not None:
        keep &= (g.scales.amax(dim=-1) < scale_threshold) | (z > 0)
    if floater_threshold is not None:
        t = floater_threshold
        keep &= ~((x.abs() > t) & (y.abs() > t) & (z < -t))
    if crop_box is not None:
        if len(crop_box) != 6:
            raise ValueError(f"crop_box must be (x_min, x_max, y_min, y_max, z_min, z_max), got {tuple(crop_box)}")
        x0, x1, y0, y1, z0, z1 = (float(v) for v in crop_box)
        if x0 > x1 or y0 > y1 or z0 > z1:
            raise ValueError(f"crop_box minima must not exceed maxima, got {tuple(crop_box)}")
        keep &= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1) & (z >= z0) & (z <= z1)
    return keep


def reference_prune(
    g: Gaussians,
    *,
    opacity_threshold: float = 0.04,
    scale_threshold: float | None = 0.1,
    floater_threshold: float | None = 0.6,
    crop_box: Sequence[float] | None = REFERENCE_CROP_BOX,
) -> Gaussians:
    """The Gaussians of an unbatched set that pass :func:`reference_prune_mask` (order preserved).

    Args:
        g: Gaussians of shape ``[N]``.
        opacity_threshold, scale_threshold, floater_threshold, crop_box: see :func:`reference_prune_mask`.

    Returns:
        Gaussians of shape ``[M]``, ``M <= N``.

    Example:
        >>> means = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        >>> g = Gaussians.from_rgb(means, torch.full((2, 3), 0.01), torch.tensor([0.5, 0.01]), torch.zeros(2, 3))
        >>> reference_prune(g).num
        1
    """
    if len(g.shape) != 1:
        raise ValueError(f"reference_prune needs an unbatched set [N], got shape {tuple(g.shape)}; index a scene first")
    mask = reference_prune_mask(
        g,
        opacity_threshold=opacity_threshold,
        scale_threshold=scale_threshold,
        floater_threshold=floater_threshold,
        crop_box=crop_box,
    )
    return g[mask]
