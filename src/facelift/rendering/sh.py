"""Real spherical harmonics up to degree 3, in the 3DGS basis order and sign convention."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from facelift.gaussians.container import SH_C0

__all__ = ["eval_sh"]

_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def eval_sh(sh: Float[Tensor, "*batch K 3"], dirs: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """Evaluate SH colour coefficients along unit directions (the 3DGS formula, without the +0.5 offset).

    Args:
        sh: ``[..., K, 3]`` coefficients, K in {1, 4, 9, 16}.
        dirs: ``[..., 3]`` unit directions (from the camera centre toward the Gaussian).

    Returns:
        ``[..., 3]``; add 0.5 and clamp at 0 to get RGB.

    Example:
        >>> eval_sh(torch.ones(1, 3), torch.tensor([0.0, 0.0, 1.0]))
        tensor([0.2821, 0.2821, 0.2821])
    """
    k = sh.shape[-2]
    out = SH_C0 * sh[..., 0, :]
    if k == 1:
        return out
    x, y, z = (dirs[..., i : i + 1] for i in range(3))
    out = out - _C1 * y * sh[..., 1, :] + _C1 * z * sh[..., 2, :] - _C1 * x * sh[..., 3, :]
    if k == 4:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = (
        out
        + _C2[0] * xy * sh[..., 4, :]
        + _C2[1] * yz * sh[..., 5, :]
        + _C2[2] * (2.0 * zz - xx - yy) * sh[..., 6, :]
        + _C2[3] * xz * sh[..., 7, :]
        + _C2[4] * (xx - yy) * sh[..., 8, :]
    )
    if k == 9:
        return out
    if k != 16:
        raise ValueError(f"SH with {k} coefficients is not supported (1, 4, 9 or 16)")
    return (
        out
        + _C3[0] * y * (3 * xx - yy) * sh[..., 9, :]
        + _C3[1] * xy * z * sh[..., 10, :]
        + _C3[2] * y * (4 * zz - xx - yy) * sh[..., 11, :]
        + _C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[..., 12, :]
        + _C3[4] * x * (4 * zz - xx - yy) * sh[..., 13, :]
        + _C3[5] * z * (xx - yy) * sh[..., 14, :]
        + _C3[6] * x * (xx - 3 * yy) * sh[..., 15, :]
    )
