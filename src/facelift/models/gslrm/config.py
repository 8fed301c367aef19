"""``GSLRMConfig``: the reconstructor's architecture and output activations, with named presets."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["GSLRMConfig"]


@dataclass(frozen=True)
class GSLRMConfig:
    """Architecture of the GS-LRM reconstructor (a plain pre-LayerNorm transformer over patch tokens).

    Every Linear and LayerNorm is bias-free, as in the reference. ``official()`` is the released
    FaceLift model; ``default()`` a small CPU-trainable size; ``tiny()`` is for tests.

    Example:
        >>> GSLRMConfig.official().width
        1024
        >>> GSLRMConfig.from_json(GSLRMConfig.tiny().to_json()) == GSLRMConfig.tiny()
        True
    """

    width: int = 256
    """Token width (transformer hidden size)."""
    depth: int = 6
    """Number of transformer blocks."""
    heads: int = 4
    """Attention heads per block; must divide ``width``."""
    patch_size: int = 8
    """Side ``p`` of the square image patches; one token per ``p x p`` patch of each view."""
    mlp_ratio: float = 4.0
    """MLP hidden size as a multiple of ``width``."""
    image_size: int = 128
    """Training resolution (informative only: any ``H, W`` divisible by ``patch_size`` works)."""
    num_extra_tokens: int = 2
    """Learned "gaussian tokens" prepended to the sequence; each decodes to one extra Gaussian."""
    ln_eps: float = 1e-5
    """LayerNorm epsilon."""
    grad_checkpointing: bool = False
    """Recompute each block in the backward pass instead of storing its activations."""
    depth_range: float = 1.8
    """Half-range of the pixel-aligned depth: ``depth = (2 t - 1) * depth_range + (-o . d)``."""
    scale_offset: float = 2.3
    """Scale activation ``exp(min(raw - scale_offset, scale_max_log))``."""
    scale_max_log: float = -1.2
    """Upper bound of the log-scale (scales never exceed ``exp(scale_max_log)``)."""
    opacity_offset: float = 2.0
    """Opacity activation ``sigmoid(raw - opacity_offset)``."""

    def __post_init__(self) -> None:
        for name in ("width", "depth", "heads", "patch_size", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        extra = self.num_extra_tokens
        if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
            raise ValueError(f"num_extra_tokens must be a non-negative integer, got {extra!r}")
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        if not (math.isfinite(self.mlp_ratio) and self.mlp_ratio > 0 and self.mlp_hidden > 0):
            raise ValueError(f"mlp_ratio must give a positive hidden size, got {self.mlp_ratio!r}")
        if not self.ln_eps > 0:
            raise ValueError(f"ln_eps must be positive, got {self.ln_eps!r}")
        if not self.depth_range > 0:
            raise ValueError(f"depth_range must be positive, got {self.depth_range!r}")

    # ---- derived sizes -------------------------------------------------------------------------------
    @property
    def mlp_hidden(self) -> int:
        """MLP hidden size, ``int(width * mlp_ratio)``."""
        return int(self.width * self.mlp_ratio)

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.width // self.heads

    @property
    def patch_dim(self) -> int:
        """Input values per patch token: 9 channels x ``p * p`` pixels."""
        return 9 * self.patch_size**2

    # ---- presets -------------------------------------------------------------------------------------
    @classmethod
    def official(cls) -> "GSLRMConfig":
        """The released FaceLift reconstructor: width 1024, 24 blocks, 16 heads, 8 x 8 patches, 512 px."""
        return cls(width=1024, depth=24, heads=16, patch_size=8, image_size=512)

    @classmethod
    def default(cls) -> "GSLRMConfig":
        """A small model trainable on a CPU: width 256, 6 blocks, 4 heads of 64, 8 x 8 patches, 128 px.

        Its scale offset is 4.3 instead of the reference's 2.3 so that an untrained model starts with
        Gaussians of about one pixel (exp(-4.3) = 0.014 world units, 0.7 px at 128 px and radius 2.7);
        with 2.3 they start at about 5 px, every Gaussian covers hundreds of pixels and the first training
        steps need tens of GB in the portable renderer.
        """
        return cls(width=256, depth=6, heads=4, patch_size=8, image_size=128, scale_offset=4.3)

    @classmethod
    def tiny(cls) -> "GSLRMConfig":
        """A toy size for tests: width 32, 2 blocks, 2 heads, 4 x 4 patches, 16 px."""
        return cls(width=32, depth=2, heads=2, patch_size=4, image_size=16)

    # ---- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GSLRMConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise (a config from another model is an error).

        Missing keys take the field defaults. Integral floats (``4.0`` from other JSON writers) are
        accepted for integer fields.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a GSLRMConfig dict is needed, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown GSLRMConfig keys {unknown}; known keys are {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be a boolean, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
            elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            kwargs[name] = value
        return cls(**kwargs)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (indented, keys in field order)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "GSLRMConfig":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
