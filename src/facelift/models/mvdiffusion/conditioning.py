"""Image conditioning of the multi-view UNet: the image embedding passed as ``class_labels``.

The reference embeds the input view with CLIP (1024-d) and appends the sinusoidal embedding of the unCLIP
noise level (0): ``class_labels = [embedding, noise_level_embedding(0)]`` (2048-d). facelift's default
replaces CLIP with a small convolutional :class:`ImageEncoder` trained with the UNet on synthetic renders;
:class:`ClipImageEmbedder` wraps the CLIP parts of the authors' released folder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["ClipImageEmbedder", "ImageEncoder", "noise_level_embedding", "resize_images"]


def noise_level_embedding(batch: int, dim: int, noise_level: int = 0, *, device=None, dtype=None) -> Float[Tensor, "B D"]:
    """The unCLIP noise-level embedding appended to the image embedding: ``[B, dim]``.

    Sinusoidal, cosines first (``flip_sin_to_cos=True``, ``downscale_freq_shift=0``), as diffusers' unCLIP
    pipelines build it. At level 0 it is ``[1] * dim/2 + [0] * dim/2``.

    The reference also noises the (normalised) CLIP embedding at that level; at level 0 that noise has a
    standard deviation of about 0.006 of the normalised embedding. facelift leaves it out, so sampling is a
    deterministic function of the seed's initial latents.

    Example:
        >>> noise_level_embedding(1, 4).tolist()
        [[1.0, 1.0, 0.0, 0.0]]
    """
    levels = torch.full((batch,), float(noise_level), device=device)
    out = get_timestep_embedding(levels, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
    return out.to(dtype) if dtype is not None else out


def resize_images(images: Float[Tensor, "B 3 H W"], size: int) -> Float[Tensor, "B 3 size size"]:
    """Antialiased bilinear resize to a square ``size`` (no-op when already that size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class ImageEncoder(ModelMixin, ConfigMixin):
    """A small CNN image embedder (facelift's stand-in for the CLIP image embedding).

    Stride-2 conv stages with GroupNorm and SiLU, global average pooling, a linear map and a final
    LayerNorm. Input images in [0, 1].

    Args:
        channels: widths of the stride-2 stages.
        embed_dim: output width.
        image_size: inputs are resized to this before encoding.
        norm_num_groups: GroupNorm groups.

    Example:
        >>> enc = ImageEncoder(channels=(8, 8), embed_dim=4, image_size=16, norm_num_groups=4)
        >>> enc(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 4])
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 128), embed_dim: int = 128, image_size: int = 128, norm_num_groups: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.GroupNorm(norm_num_groups, width), nn.SiLU()]
            previous = width
        self.stages = nn.Sequential(*layers)
        self.proj = nn.Linear(previous, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, images: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B D"]:
        x = (resize_images(images, self.config.image_size) * 2 - 1).to(self.proj.weight.dtype)  # fp32 photos, fp16 weights
        x = self.stages(x).mean(dim=(-2, -1))  # [B, C]
        return self.norm(self.proj(x))


def _size_value(size, *keys: str) -> int:
    """A processor size given as an int, a dict or transformers' ``SizeDict``: the first key that is set."""
    if isinstance(size, int):
        return size
    for key in keys:
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if value:
            return int(value)
    raise ValueError(f"cannot read {keys} from the image processor size {size!r}")


class ClipImageEmbedder(nn.Module):
    """The reference's image embedding: CLIP vision tower with projection, on CLIP-preprocessed input.

    Preprocessing follows the folder's ``feature_extractor`` config (resize of the short side with bicubic
    antialiasing, centre crop, mean/std normalisation), done in torch so it runs batched on the device.

    Args:
        image_encoder: a ``transformers.CLIPVisionModelWithProjection``.
        feature_extractor: the folder's ``CLIPImageProcessor`` (its size, crop and normalisation are read).
    """

    def __init__(self, image_encoder: nn.Module, feature_extractor) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.resize = _size_value(feature_extractor.size, "shortest_edge", "height")
        self.crop = _size_value(feature_extractor.crop_size, "height")
        self.register_buffer("mean", torch.tensor(feature_extractor.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(feature_extractor.image_std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B D"]:
        h, w = images.shape[-2:]
        scale = self.resize / min(h, w)
        size = (max(self.crop, round(h * scale)), max(self.crop, round(w * scale)))
        x = F.interpolate(images.float(), size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        x = x[..., top : top + self.crop, left : left + self.crop]
        x = (x - self.mean) / self.std
        dtype = next(self.image_encoder.parameters()).dtype
        return self.image_encoder(pixel_values=x.to(dtype)).image_embeds
