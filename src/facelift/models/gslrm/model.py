"""GS-LRM: posed views in, one 3D Gaussian per input pixel (plus a few learned extra Gaussians) out.

The network (written from the published facts, not the authors' code):

1. Each view becomes a 9-channel image ``[RGB * 2 - 1 | d | o + (-o . d) d]``
   (:func:`facelift.cameras.gslrm_ray_encoding`). Every ``p x p`` patch is flattened pixel-major with the
   channel fastest, ``index = (row_in_patch * p + col_in_patch) * 9 + c``, and embedded by a bias-free
   Linear. Image tokens carry no position embedding: the rays say where they are.
2. The sequence is ``[E learned gaussian tokens ; image tokens of view 0, view 1, ...]`` (patches in
   raster order within a view). One input LayerNorm, then ``depth`` pre-LayerNorm blocks with full
   attention over all tokens.
3. Each image token decodes (LayerNorm + Linear) to ``p * p`` pixels x 14 raw values, pixels in
   raster order inside the patch, values fastest: xyz 3, SH-DC colour 3, scale 3, quaternion wxyz 4,
   opacity 1. The E extra tokens decode through their own LayerNorm + Linear to 14 values each.
4. Activations (:func:`decode_gaussians`): pixel Gaussians sit on their pixel's ray at
   ``depth = (2 sigmoid(mean(xyz)) - 1) * 1.8 + (-o . d)``; extra Gaussians keep their raw xyz.
   ``scale = exp(min(raw - 2.3, -1.2))``, ``opacity = sigmoid(raw - 2)``, the quaternion is normalised and
   the colour is an SH-DC coefficient (rendered as ``0.5 + 0.28209479 f_dc``).

Output order: the E extra Gaussians first, then the pixel Gaussians ordered by view, patch row, patch
column, row inside the patch, column inside the patch (:func:`to_patch_order`,
:func:`output_pixel_indices`).
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from facelift.cameras.cameras import Cameras
from facelift.cameras.rays import camera_rays, gslrm_ray_encoding
from facelift.gaussians.container import Gaussians
from facelift.models.gslrm.config import GSLRMConfig
from facelift.models.gslrm.layers import Block, bias_free_layer_norm
from facelift.models.gslrm.weights import check_state_dict, read_official_checkpoint
from facelift.utils.io import atomic_path, atomic_write_text

__all__ = [
    "GSLRM",
    "RAW_CHANNELS",
    "RAW_LAYOUT",
    "decode_gaussians",
    "gslrm_pixel_rays",
    "output_pixel_indices",
    "to_patch_order",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

RAW_LAYOUT: tuple[tuple[str, int], ...] = (("xyz", 3), ("sh_dc", 3), ("scale", 3), ("quat_wxyz", 4), ("opacity", 1))
"""The 14 raw values decoded per Gaussian, in order (the reference's layout)."""
RAW_CHANNELS = sum(n for _, n in RAW_LAYOUT)


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast so that ray and activation math runs in full precision."""
    is_available = getattr(torch.amp, "is_autocast_available", lambda t: t in ("cpu", "cuda"))
    return torch.autocast(device.type, enabled=False) if is_available(device.type) else contextlib.nullcontext()


def to_patch_order(x: Float[Tensor, "*batch V H W C"], patch_size: int) -> Float[Tensor, "*batch VHW C"]:
    """Per-pixel values ``[..., V, H, W, C]`` reordered as GS-LRM emits its pixel Gaussians.

    The order is view, patch row, patch column, row inside the patch, column inside the patch.

    Args:
        x: ``[..., V, H, W, C]`` with ``H`` and ``W`` divisible by ``patch_size``.
        patch_size: patch side ``p``.

    Returns:
        ``[..., V * H * W, C]``.

    Example:
        >>> grid = torch.arange(16.0).reshape(1, 4, 4, 1)  # one 4x4 view, raster index
        >>> to_patch_order(grid, 2)[:8, 0]
        tensor([0., 1., 4., 5., 2., 3., 6., 7.])
    """
    if x.ndim < 4 or x.shape[-3] % patch_size or x.shape[-2] % patch_size:
        raise ValueError(f"x must be [..., V, H, W, C] with H, W divisible by {patch_size}, got {tuple(x.shape)}")
    return rearrange(x, "... v (hh ph) (ww pw) c -> ... (v hh ww ph pw) c", ph=patch_size, pw=patch_size)


def output_pixel_indices(
    num_views: int,
    height: int,
    width: int,
    patch_size: int,
    num_extra_tokens: int = 2,
    *,
    device: torch.device | str | None = None,
) -> Int[Tensor, "V H W"]:
    """Index, in GS-LRM's output set, of the Gaussian decoded for each input pixel.

    Args:
        num_views, height, width: the input's ``V``, ``H``, ``W``.
        patch_size: patch side ``p`` (divides ``H`` and ``W``).
        num_extra_tokens: number of extra Gaussians stored before the pixel Gaussians.
        device: device of the result.

    Returns:
        ``[V, H, W]`` long indices into ``N = E + V * H * W``.

    Example:
        >>> output_pixel_indices(1, 4, 4, 2)[0, 0]
        tensor([2, 3, 6, 7])
    """
    raster = torch.arange(num_views * height * width, device=device).reshape(num_views, height, width, 1)
    order = to_patch_order(raster, patch_size)[:, 0]  # order[j] = raster index of output pixel j
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=device)
    return inverse.reshape(num_views, height, width) + num_extra_tokens


def gslrm_pixel_rays(cameras: Cameras, patch_size: int) -> tuple[Float[Tensor, "*batch P 3"], Float[Tensor, "*batch P 3"]]:
    """Each pixel's ray (camera centre, unit direction), in the pixel Gaussians' output order.

    Computed with autocast disabled, in the cameras' dtype.

    Args:
        cameras: ``[..., V]`` cameras of size ``W`` x ``H``.
        patch_size: patch side ``p``.

    Returns:
        ``(origins, directions)``, each ``[..., V * H * W, 3]``.
    """
    with _autocast_off(cameras.device):
        origins, directions = camera_rays(cameras)  # [..., V, H, W, 3] each
    return to_patch_order(origins, patch_size), to_patch_order(directions, patch_size)


def decode_gaussians(
    raw: Float[Tensor, "*batch N 14"],
    origins: Float[Tensor, "*batch P 3"],
    directions: Float[Tensor, "*batch P 3"],
    config: GSLRMConfig,
) -> Gaussians:
    """Activate GS-LRM's raw outputs into Gaussians (in at least fp32, autocast disabled).

    The first ``E = config.num_extra_tokens`` rows are the extra Gaussians, whose xyz is used as is; the
    remaining ``P = N - E`` rows are pixel Gaussians placed on their rays:
    ``t = sigmoid(mean(xyz))``, ``depth = (2 t - 1) * depth_range + (-o . d)``, ``mean = o + depth d``.
    For all rows: ``scale = exp(min(raw - scale_offset, scale_max_log))``,
    ``opacity = sigmoid(raw - opacity_offset)``, ``quat = normalize(raw)`` (wxyz) and ``sh[..., 0, :]``
    is the raw colour (an SH-DC coefficient).

    Args:
        raw: ``[..., N, 14]`` in the :data:`RAW_LAYOUT` order.
        origins: ``[..., P, 3]`` ray origins of the pixel Gaussians (camera centres).
        directions: ``[..., P, 3]`` unit ray directions of the pixel Gaussians.
        config: activation constants and ``num_extra_tokens``.

    Returns:
        ``Gaussians`` of shape ``[..., N]``, degree 0, dtype ``promote(raw, origins, float32)``.

    Example:
        >>> cfg = GSLRMConfig.tiny()
        >>> o, d = torch.tensor([[0.0, -2.7, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
        >>> decode_gaussians(torch.zeros(3, 14), o, d, cfg).means[2]  # t = 0.5: the closest point
        tensor([0., 0., 0.])
    """
    num_extra = config.num_extra_tokens
    if raw.shape[-1] != RAW_CHANNELS or raw.ndim < 2:
        raise ValueError(f"raw must be [..., N, {RAW_CHANNELS}], got {tuple(raw.shape)}")
    want = (*raw.shape[:-2], raw.shape[-2] - num_extra, 3)
    if tuple(origins.shape) != want or tuple(directions.shape) != want:
        raise ValueError(
            f"origins and directions must be {want} for raw {tuple(raw.shape)} with {num_extra} extra Gaussians, "
            f"got {tuple(origins.shape)} and {tuple(directions.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(raw.dtype, origins.dtype), torch.float32)
    with _autocast_off(raw.device):
        raw, origins, directions = raw.to(dtype), origins.to(dtype), directions.to(dtype)
        xyz, sh_dc, scale, quat, opacity = raw.split([n for _, n in RAW_LAYOUT], dim=-1)
        t = torch.sigmoid(xyz[..., num_extra:, :].mean(dim=-1, keepdim=True))  # [..., P, 1]
        closest = -(origins * directions).sum(dim=-1, keepdim=True)  # [..., P, 1] ray length to the closest point
        depth = (2.0 * t - 1.0) * config.depth_range + closest  # [..., P, 1]
        means = torch.cat([xyz[..., :num_extra, :], origins + depth * directions], dim=-2)  # [..., N, 3]
        scales = torch.exp(torch.clamp_max(scale - config.scale_offset, config.scale_max_log))
        opacities = torch.sigmoid(opacity[..., 0] - config.opacity_offset)
        quats = F.normalize(quat, dim=-1)
    return Gaussians(means, quats, scales, opacities, sh_dc[..., None, :])


class GaussianUpsampler(nn.Module):
    """Decodes each extra (learned) token to the 14 raw values of one Gaussian."""

    def __init__(
        self,
        width: int,
        eps: float = 1e-5,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.layernorm = bias_free_layer_norm(width, eps, device=device, dtype=dtype)
        self.linear = nn.Linear(width, RAW_CHANNELS, bias=False, device=device, dtype=dtype)

    def forward(self, x: Float[Tensor, "B E D"]) -> Float[Tensor, "B E 14"]:
        return self.linear(self.layernorm(x))


class GSLRM(nn.Module):
    """The GS-LRM reconstructor; parameter names and shapes equal the official checkpoint's.

    Args:
        config: architecture (:class:`GSLRMConfig`).
        device, dtype: factory kwargs of the parameters (``device="meta"`` allocates nothing).

    Example:
        >>> from facelift.cameras import facelift_views
        >>> model = GSLRM(GSLRMConfig.tiny())
        >>> g = model(torch.rand(1, 6, 3, 16, 16), facelift_views(resolution=16)[None])
        >>> g.shape
        torch.Size([1, 1538])
    """

    def __init__(
        self,
        config: GSLRMConfig,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.config = config
        self.grad_checkpointing = config.grad_checkpointing
        p, width = config.patch_size, config.width
        # Index 0 is parameter-free, so the Linear's key is ``patch_embedder.1.weight`` as in the reference.
        self.patch_embedder = nn.Sequential(
            Rearrange("b v c (hh ph) (ww pw) -> b (v hh ww) (ph pw c)", ph=p, pw=p),
            nn.Linear(config.patch_dim, width, bias=False, **dd),
        )
        self.gaussian_position_embeddings = nn.Parameter(torch.empty(config.num_extra_tokens, width, **dd))
        self.input_layer_norm = bias_free_layer_norm(width, config.ln_eps, **dd)
        self.transformer_layers = nn.ModuleList(
            Block(width, config.heads, config.mlp_hidden, config.ln_eps, **dd) for _ in range(config.depth)
        )
        self.gaussian_upsampler = GaussianUpsampler(width, config.ln_eps, **dd)
        self.pixel_gaussian_decoder = nn.Sequential(
            bias_free_layer_norm(width, config.ln_eps, **dd),
            nn.Linear(width, p * p * RAW_CHANNELS, bias=False, **dd),
        )
        if self.gaussian_position_embeddings.device.type != "meta":
            self.init_weights()

    # ---- setup ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Truncated-normal init (std 0.02; residual output projections scaled by ``1/sqrt(2 depth)``)."""
        std = 0.02
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                s = std / math.sqrt(2 * self.config.depth) if name.endswith(("attn.fc", "mlp.mlp.2")) else std
                nn.init.trunc_normal_(module.weight, std=s, a=-2 * s, b=2 * s, generator=generator)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
        nn.init.trunc_normal_(self.gaussian_position_embeddings, std=std, a=-2 * std, b=2 * std, generator=generator)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each transformer block in backward (saves activation memory, costs one forward)."""
        self.grad_checkpointing = bool(enable)

    # ---- forward -------------------------------------------------------------------------------------
    def encode_inputs(
        self,
        images: Float[Tensor, "B V 3 H W"],
        cameras: Cameras,
    ) -> Float[Tensor, "B V 9 H W"]:
        """Check the inputs and build the 9-channel ray encoding (autocast disabled, cameras' dtype).

        Args:
            images: ``[B, V, 3, H, W]`` RGB in [0, 1]; ``H``, ``W`` divisible by the patch size.
            cameras: ``[B, V]`` cameras of size ``W`` x ``H``.

        Returns:
            ``[B, V, 9, H, W]``.
        """
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be [B, V, 3, H, W], got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")
        b, v, _, h, w = images.shape
        p = self.config.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} (HxW) must be divisible by the patch size {p}")
        if tuple(cameras.batch_shape) != (b, v) or (cameras.height, cameras.width) != (h, w):
            raise ValueError(
                f"cameras must be [B, V] = [{b}, {v}] of size {w}x{h} (WxH), "
                f"got {list(cameras.batch_shape)} of size {cameras.width}x{cameras.height}"
            )
        if cameras.device != images.device:
            raise ValueError(f"cameras on {cameras.device} but images on {images.device}")
        with _autocast_off(images.device):
            return gslrm_ray_encoding(images, cameras)

    def forward_features(self, inputs: Float[Tensor, "B V 9 H W"]) -> Float[Tensor, "B L D"]:
        """Transformer features ``[B, E + V * (H/p) * (W/p), D]`` of the 9-channel inputs (extra tokens first)."""
        weight = self.patch_embedder[1].weight
        tokens = self.patch_embedder(inputs.to(weight.dtype))  # [B, V*hh*ww, D]
        extra = self.gaussian_position_embeddings.expand(tokens.shape[0], -1, -1)  # [B, E, D]
        # torch.cat promotes: under autocast the fp32 embeddings stay fp32 beside the bf16 patch tokens.
        x = self.input_layer_norm(torch.cat([extra, tokens], dim=1))  # [B, L, D]
        for block in self.transformer_layers:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward_head(self, features: Float[Tensor, "B L D"]) -> Float[Tensor, "B N 14"]:
        """Raw per-Gaussian values ``[B, E + T * p * p, 14]`` (:data:`RAW_LAYOUT`) in output order."""
        num_extra = self.config.num_extra_tokens
        extra = self.gaussian_upsampler(features[:, :num_extra])  # [B, E, 14]
        pixels = self.pixel_gaussian_decoder(features[:, num_extra:])  # [B, T, p*p*14]
        # Each token's outputs are (p*p pixels, 14 values), values fastest; tokens are already in
        # (view, patch row, patch column) order, so a flat reshape gives the output order.
        pixels = rearrange(pixels, "b t (pix k) -> b (t pix) k", k=RAW_CHANNELS)  # [B, T*p*p, 14]
        return torch.cat([extra, pixels], dim=1)

    def forward(self, images: Float[Tensor, "B V 3 H W"], cameras: Cameras) -> Gaussians:
        """Reconstruct Gaussians from posed views.

        Args:
            images: ``[B, V, 3, H, W]`` RGB in [0, 1], any ``V``, ``H`` and ``W`` divisible by the patch size.
            cameras: ``[B, V]`` OpenCV cameras of size ``W`` x ``H``, on the images' device.

        Returns:
            ``Gaussians`` of shape ``[B, E + V * H * W]`` (E = ``num_extra_tokens``, first), degree 0,
            in fp32 (fp64 for a fp64 model or cameras) even under autocast.
        """
        inputs = self.encode_inputs(images, cameras)  # [B, V, 9, H, W]
        raw = self.forward_head(self.forward_features(inputs))  # [B, N, 14]
        origins, directions = gslrm_pixel_rays(cameras, self.config.patch_size)  # [B, V*H*W, 3] each
        return decode_gaussians(raw, origins, directions, self.config)

    # ---- weights -------------------------------------------------------------------------------------
    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """State-dict key -> shape of this architecture."""
        return {k: tuple(v.shape) for k, v in self.state_dict().items()}

    @classmethod
    def _from_state_dict(
        cls,
        config: GSLRMConfig,
        state_dict: dict[str, Tensor],
        *,
        source: str,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> "GSLRM":
        model = cls(config, device="meta")
        check_state_dict(state_dict, model.expected_shapes(), source=source)
        state_dict = {k: v.to(device=device, dtype=dtype, copy=True) for k, v in state_dict.items()}
        model.load_state_dict(state_dict, strict=True, assign=True)
        return model

    def save_pretrained(self, directory: str | os.PathLike, *, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created; files written atomically).

        Args:
            directory: output folder.
            dtype: store the weights in this dtype (e.g. ``torch.float16``); their own dtype by default.

        Returns:
            The folder.

        Example:
            >>> GSLRM(GSLRMConfig.tiny()).save_pretrained("weights/gslrm-tiny")  # doctest: +SKIP
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to(device="cpu", dtype=dtype).contiguous() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt", "model": "facelift.gslrm"})
        atomic_write_text(directory / CONFIG_NAME, self.config.to_json())
        return directory

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = torch.float32,
    ) -> "GSLRM":
        """Load a folder written by :meth:`save_pretrained` (strict: every key and shape must match).

        Args:
            directory: folder holding ``config.json`` and ``model.safetensors``.
            device: device of the parameters (CPU by default).
            dtype: dtype of the parameters (fp32 by default; ``None`` keeps the stored dtype).

        Raises:
            FileNotFoundError: if a file is missing.
            ValueError: if the weights do not fit the config (naming the keys).

        Example:
            >>> model = GSLRM.from_pretrained("weights/gslrm-tiny")  # doctest: +SKIP
        """
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist (expected a folder written by save_pretrained)")
        config = GSLRMConfig.from_json(config_path.read_text(encoding="utf-8"))
        state_dict = load_file(str(weights_path), device="cpu")
        return cls._from_state_dict(config, state_dict, source=str(weights_path), device=device, dtype=dtype)

    @classmethod
    def from_official_checkpoint(
        cls,
        path: str | os.PathLike,
        config: GSLRMConfig | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = torch.float32,
        weights_only: bool = True,
    ) -> "GSLRM":
        """Load the authors' released checkpoint (e.g. ``ckpt_0000000000021125.pt``).

        Takes its ``"model"`` entry, drops ``loss_calculator.*`` (:func:`remap_official_state_dict`) and loads
        the rest strictly.

        Args:
            path: the torch pickle.
            config: architecture; :meth:`GSLRMConfig.official` by default.
            device, dtype: of the parameters (fp32 by default; ``None`` keeps the stored dtype).
            weights_only: see :func:`read_official_checkpoint`; ``False`` only for trusted files.

        Raises:
            ValueError: naming every missing or unexpected key and shape mismatch.

        Example:
            >>> model = GSLRM.from_official_checkpoint("ckpt_0000000000021125.pt")  # doctest: +SKIP
        """
        config = GSLRMConfig.official() if config is None else config
        state_dict = read_official_checkpoint(path, weights_only=weights_only)
        return cls._from_state_dict(config, state_dict, source=f"checkpoint {path}", device=device, dtype=dtype)
