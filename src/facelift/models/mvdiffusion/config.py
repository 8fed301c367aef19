"""Configuration of the multi-view diffusion model: sizes of the UNet, VAE, image encoder and view embeddings.

Presets: :meth:`MVDiffusionConfig.default` (trains and samples on a CPU, 64 px), :meth:`tiny` (tests) and
:meth:`official` (the SD2.1-unclip layout the authors fine-tuned: 512 px, 870.2M-parameter UNet, 1024-d
image embedding, 77 x 1024 view embeddings; with random weights, for timing. The released weights are loaded
with :meth:`MultiViewDiffusion.from_official`, which reads their own configs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from facelift.cameras.orbits import FACELIFT_VIEW_NAMES
from facelift.models.mvdiffusion.attention import ATTENTION_MODES, AttentionMode

__all__ = ["REFERENCE_SCHEDULER", "VIEW_PROMPT", "MVDiffusionConfig"]

VIEW_PROMPT = "a rendering image of 3D models, {view} view, color map."
"""The reference's per-view text prompt (``view`` in front, front_right, right, back, left, front_left)."""

REFERENCE_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}
"""The DDIM scheduler of SD2.1 (unclip) and the reference: v-prediction, scaled-linear betas, 1000 steps."""


@dataclass(frozen=True)
class MVDiffusionConfig:
    """Architecture of a multi-view diffusion model built from scratch (the default components)."""

    image_size: int = 64
    """Square image size of the views, in pixels (divisible by the VAE factor times the UNet's)."""
    view_names: tuple[str, ...] = FACELIFT_VIEW_NAMES
    """All views the model knows, in order; view 0 is the input (condition) view."""
    reconstruct_input: bool = True
    """Generate view 0 too (the reference: the model reconstructs the input view); False generates only the
    novel views (the ablation)."""
    attention: AttentionMode = "sparse"
    """Multi-view self-attention: sparse (own view + view 0, the reference), dense (all views) or off."""
    unet_channels: tuple[int, ...] = (64, 96, 128)
    """UNet block widths, one per resolution level."""
    unet_attention: tuple[bool, ...] = (False, True, True)
    """Which levels have (multi-view self- and cross-) attention transformer blocks."""
    unet_heads: tuple[int, ...] = (2, 3, 4)
    """Attention heads per level (diffusers' ``attention_head_dim``, which counts heads)."""
    unet_layers_per_block: int = 1
    """ResNet (and transformer) layers per level."""
    cross_attention_dim: int = 128
    """Width of the per-view embeddings the UNet cross-attends to."""
    view_tokens: int = 4
    """Tokens per learned view embedding (the reference's CLIP text embeddings have 77)."""
    image_embed_dim: int = 128
    """Image-embedding width; the UNet's class input is twice this (embedding + noise-level embedding)."""
    image_encoder_channels: tuple[int, ...] = (32, 64, 128, 128)
    """Widths of the image encoder's stride-2 convolution stages (stands in for the CLIP image encoder)."""
    vae_channels: tuple[int, ...] = (32, 64)
    """VAE block widths; the latent is ``2 ** (len - 1)`` times smaller than the image."""
    vae_layers_per_block: int = 1
    """ResNet layers per VAE block."""
    latent_channels: int = 4
    """Latent channels (4, as Stable Diffusion)."""
    norm_num_groups: int = 16
    """GroupNorm groups in the UNet and VAE (must divide every width)."""

    def __post_init__(self) -> None:
        levels = len(self.unet_channels)
        if levels < 1 or len(self.unet_attention) != levels or len(self.unet_heads) != levels:
            raise ValueError(
                f"unet_channels, unet_attention and unet_heads need one entry per level, got {self.unet_channels}, "
                f"{self.unet_attention}, {self.unet_heads}"
            )
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")
        if len(self.view_names) < 2:
            raise ValueError(f"need at least 2 views, got {self.view_names}")
        for name in ("unet_channels", "vae_channels", "image_encoder_channels"):
            if any(c % self.norm_num_groups for c in getattr(self, name)):
                raise ValueError(f"every entry of {name} {getattr(self, name)} must be divisible by norm_num_groups={self.norm_num_groups}")
        for c, h in zip(self.unet_channels, self.unet_heads):
            if h < 1 or c % h:
                raise ValueError(f"UNet width {c} is not divisible by {h} heads")
        factor = self.vae_factor * 2 ** (levels - 1)
        if self.image_size < factor or self.image_size % factor:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {factor} (VAE x UNet downsampling)")
        if min(self.cross_attention_dim, self.view_tokens, self.image_embed_dim, self.latent_channels, self.unet_layers_per_block) < 1:
            raise ValueError("cross_attention_dim, view_tokens, image_embed_dim, latent_channels and unet_layers_per_block must be >= 1")

    # ---- derived -------------------------------------------------------------------------------------

    @property
    def vae_factor(self) -> int:
        """How much smaller the latent is than the image."""
        return 2 ** (len(self.vae_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae_factor

    @property
    def num_views(self) -> int:
        """Views generated per subject (all of ``view_names``, or all but view 0)."""
        return len(self.view_names) - (0 if self.reconstruct_input else 1)

    def unet_kwargs(self) -> dict[str, Any]:
        """Arguments of ``diffusers.UNet2DConditionModel`` for this config (SD2.1-unclip conventions)."""
        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.unet_attention)
        up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.unet_attention))
        return {
            "sample_size": self.latent_size,
            "in_channels": 2 * self.latent_channels,  # noisy latent + the input view's latent
            "out_channels": self.latent_channels,
            "down_block_types": down,
            "up_block_types": up,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "block_out_channels": tuple(self.unet_channels),
            "layers_per_block": self.unet_layers_per_block,
            "attention_head_dim": tuple(self.unet_heads),
            "cross_attention_dim": self.cross_attention_dim,
            "use_linear_projection": True,
            "class_embed_type": "projection",
            "projection_class_embeddings_input_dim": 2 * self.image_embed_dim,
            "norm_num_groups": self.norm_num_groups,
        }

    def vae_kwargs(self) -> dict[str, Any]:
        """Arguments of ``diffusers.AutoencoderKL`` for this config."""
        n = len(self.vae_channels)
        return {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * n,
            "up_block_types": ("UpDecoderBlock2D",) * n,
            "block_out_channels": tuple(self.vae_channels),
            "layers_per_block": self.vae_layers_per_block,
            "latent_channels": self.latent_channels,
            "norm_num_groups": self.norm_num_groups,
            "sample_size": self.image_size,
        }

    # ---- presets and serialisation --------------------------------------------------------------------

    @classmethod
    def default(cls) -> MVDiffusionConfig:
        """The shipped size: 64 px views, 32 x 32 latents (VAE factor 2), a 5.7M-parameter UNet that trains and
        samples on a CPU."""
        return cls()

    @classmethod
    def tiny(cls) -> MVDiffusionConfig:
        """A toy model for tests (32 px, a few thousand parameters per part)."""
        return cls(
            image_size=32, unet_channels=(16, 32), unet_attention=(True, True), unet_heads=(2, 2), cross_attention_dim=16,
            view_tokens=2, image_embed_dim=16, image_encoder_channels=(16, 16), vae_channels=(16, 16), norm_num_groups=8,
        )  # fmt: skip

    @classmethod
    def official(cls) -> MVDiffusionConfig:
        """The reference's sizes (SD2.1-unclip UNet, 8 input channels; the SD VAE; 1024-d embeddings)."""
        return cls(
            image_size=512, unet_channels=(320, 640, 1280, 1280), unet_attention=(True, True, True, False),
            unet_heads=(5, 10, 20, 20), unet_layers_per_block=2, cross_attention_dim=1024, view_tokens=77,
            image_embed_dim=1024, image_encoder_channels=(64, 128, 256, 512), vae_channels=(128, 256, 512, 512),
            vae_layers_per_block=2, norm_num_groups=32,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MVDiffusionConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MVDiffusionConfig fields: {unknown}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)
