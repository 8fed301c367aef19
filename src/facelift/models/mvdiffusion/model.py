"""The multi-view latent diffusion model: one image in, the six FaceLift views out.

Components (diffusers and transformers classes, plus facelift's small defaults):

- ``unet``: a plain ``diffusers.UNet2DConditionModel`` with :class:`MultiViewAttnProcessor` installed
  (no extra parameters; SD2.1-unclip key names). Its input is the noisy latent of each view concatenated
  channel-wise with the VAE latent of the input image (``conv_in`` has 8 channels).
- ``vae``: ``diffusers.AutoencoderKL``; latents are ``latent_dist.mode() * scaling_factor``.
- ``image_embedder``: image -> embedding, passed with the unCLIP noise-level embedding as ``class_labels``
  (facelift's :class:`ImageEncoder`, or CLIP for the authors' weights).
- ``view_embeddings [V_all, T, C]``: per-view cross-attention context (learned, or the reference's CLIP text
  embeddings of its six prompts).
- a DDIM scheduler config (v-prediction, SD2.1's betas); DPM-Solver++ is built from the same config.

Rows of the UNet batch are grouped subject by subject (``row = subject * V + view``) with one timestep per
subject. Classifier-free guidance drops both the image embedding and the input latent (zeros), keeping the
view embeddings, as the reference does.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    UNet2DConditionModel,
)
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from facelift.cameras.orbits import FACELIFT_VIEW_NAMES, view_azimuths
from facelift.models.mvdiffusion.attention import (
    ATTENTION_MODES,
    AttentionMode,
    set_multiview_attention,
)
from facelift.models.mvdiffusion.conditioning import (
    ClipImageEmbedder,
    ImageEncoder,
    noise_level_embedding,
    resize_images,
)
from facelift.models.mvdiffusion.config import (
    REFERENCE_SCHEDULER,
    VIEW_PROMPT,
    MVDiffusionConfig,
)
from facelift.utils.io import atomic_write_text, staged_output_dir

__all__ = ["MultiViewDiffusion", "MultiViewOutput", "Solver", "make_scheduler", "remap_view_embeddings"]

logger = logging.getLogger(__name__)

Solver = Literal["ddim", "dpmsolver++"]
SOLVERS: tuple[str, ...] = ("ddim", "dpmsolver++")
FORMAT = "facelift.mvdiffusion/1"
_META = "facelift_mvdiffusion.json"
_VIEW_FILE = "view_embeddings.safetensors"
_OFFICIAL_PARTS = ("unet", "vae", "image_encoder", "feature_extractor", "text_encoder", "tokenizer", "scheduler")


def make_scheduler(config: dict[str, Any], solver: Solver = "ddim"):
    """A fresh sampling scheduler from a DDIM config: ``ddim`` or ``dpmsolver++`` (2nd-order multistep).

    Example:
        >>> make_scheduler(REFERENCE_SCHEDULER, "dpmsolver++").config.algorithm_type
        'dpmsolver++'
    """
    if solver == "ddim":
        return DDIMScheduler.from_config(config)
    if solver == "dpmsolver++":
        # Same betas, prediction type and spacing; sigmas of the final step go to zero (a clean last step).
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero")
    raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")


@dataclass
class MultiViewOutput:
    """What :meth:`MultiViewDiffusion.sample` returns."""

    images: Float[Tensor, "B V 3 H W"]
    """Generated views in [0, 1], in the order of ``view_names``."""
    latents: Float[Tensor, "B V C h w"]
    """Their final latents (scaled, as the UNet sees them)."""
    view_names: tuple[str, ...]
    """Name of each generated view."""


def remap_view_embeddings(
    embeddings: Float[Tensor, "V T C"], names: Sequence[str], new_names: Sequence[str]
) -> Float[Tensor, "N T C"]:
    """View embeddings for another view set: a view the model knows keeps its embedding; a new one is
    interpolated between the two known views nearest in azimuth on either side (each token rescaled to the
    interpolated norm), so e.g. ``back_right`` starts halfway between ``right`` and ``back``.

    Args:
        embeddings: ``[V, T, C]``, one per name of ``names`` (view 0 the input view).
        names, new_names: view names (:data:`~facelift.cameras.VIEW_AZIMUTHS`); ``new_names[0]`` must be
            ``names[0]`` (the input view).

    Returns:
        ``[len(new_names), T, C]``.

    Example:
        >>> e = torch.randn(6, 4, 8)
        >>> out = remap_view_embeddings(e, FACELIFT_VIEW_NAMES, ("front", "right", "back_right", "back"))
        >>> torch.equal(out[1], e[2]), out.shape
        (True, torch.Size([4, 4, 8]))
    """
    names, new_names = tuple(names), tuple(new_names)
    known, wanted = view_azimuths(names), view_azimuths(new_names)
    if embeddings.ndim != 3 or embeddings.shape[0] != len(names):
        raise ValueError(f"embeddings must be [{len(names)}, T, C], got {tuple(embeddings.shape)}")
    if new_names[0] != names[0]:
        raise ValueError(f"view 0 is the input view: {new_names[0]!r} cannot replace {names[0]!r}")
    rows = []
    for name, azimuth in zip(new_names, wanted):
        if name in names:
            rows.append(embeddings[names.index(name)])
            continue
        ahead = min(range(len(names)), key=lambda i: (known[i] - azimuth) % 360)  # next known view, turning right
        behind = min(range(len(names)), key=lambda i: (azimuth - known[i]) % 360)
        gap_behind, gap_ahead = (azimuth - known[behind]) % 360, (known[ahead] - azimuth) % 360
        w = gap_behind / (gap_behind + gap_ahead)  # weight of the view ahead
        a, b = embeddings[behind].float(), embeddings[ahead].float()
        mixed = (1 - w) * a + w * b
        norm = (1 - w) * a.norm(dim=-1, keepdim=True) + w * b.norm(dim=-1, keepdim=True)
        rows.append((mixed * norm / mixed.norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(embeddings.dtype))
    return torch.stack(rows)


def _generators(generator: torch.Generator | Sequence[torch.Generator] | None, batch: int) -> list[torch.Generator | None]:
    if generator is None or isinstance(generator, torch.Generator):
        return [generator] * batch if generator is None else [generator]
    gens = list(generator)
    if len(gens) != batch:
        raise ValueError(f"got {len(gens)} generators for a batch of {batch} subjects")
    return gens


def _randn(shape: Sequence[int], generators: list[torch.Generator | None], device: torch.device, dtype: torch.dtype) -> Tensor:
    """Normal noise ``[B, *shape]`` drawn on the CPU (the same numbers on every device): one generator for
    the whole batch, or one per subject (then a subject's noise does not depend on the batch it is in)."""
    if len(generators) == 1:
        return torch.randn(tuple(shape), generator=generators[0]).to(device, dtype)
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g) for g in generators]).to(device, dtype)


class MultiViewDiffusion(nn.Module):
    """Multi-view latent diffusion: ``sample(image) -> six views``; ``forward`` is the denoiser.

    Build with :meth:`from_config` (random weights), :meth:`from_pretrained` (a folder written by
    :meth:`save_pretrained`) or :meth:`from_official` (the authors' released diffusers folder).

    Args:
        unet: the UNet (its attention processors are replaced).
        vae: the autoencoder (frozen: ``requires_grad_(False)``).
        image_embedder: image ``[B, 3, H, W]`` in [0, 1] -> ``[B, D]``.
        view_embeddings: ``[V_all, T, C]`` context per view in ``view_names``.
        view_names: names of all views, view 0 being the input view.
        image_size: size of the views the model generates.
        reconstruct_input: also generate view 0 (the reference) or only the novel views.
        attention: multi-view attention mode.
        scheduler_config: a DDIM scheduler config (v-prediction).
        learn_view_embeddings: make ``view_embeddings`` a trainable parameter (else a buffer).
        config: the :class:`MVDiffusionConfig` it was built from (None for the official weights).
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        image_embedder: nn.Module,
        view_embeddings: Float[Tensor, "V T C"],
        *,
        view_names: Sequence[str] = FACELIFT_VIEW_NAMES,
        image_size: int,
        reconstruct_input: bool = True,
        attention: AttentionMode = "sparse",
        scheduler_config: dict[str, Any] | None = None,
        learn_view_embeddings: bool = False,
        config: MVDiffusionConfig | None = None,
    ) -> None:
        super().__init__()
        if view_embeddings.ndim != 3 or view_embeddings.shape[0] != len(view_names):
            raise ValueError(f"view_embeddings must be [{len(view_names)}, T, C], got {tuple(view_embeddings.shape)}")
        if unet.config.in_channels != 2 * unet.config.out_channels:
            raise ValueError(f"the UNet must take the noisy and the input latent ({2 * unet.config.out_channels} channels), got {unet.config.in_channels}")
        self.unet, self.vae, self.image_embedder = unet, vae.requires_grad_(False), image_embedder
        if learn_view_embeddings:
            self.view_embeddings = nn.Parameter(view_embeddings.detach().clone())
        else:
            self.register_buffer("view_embeddings", view_embeddings.detach().clone())
        self.view_names = tuple(view_names)
        self.image_size = int(image_size)
        self.reconstruct_input = bool(reconstruct_input)
        self.scheduler_config = dict(scheduler_config or REFERENCE_SCHEDULER)
        self.config = config
        self.attention: AttentionMode = attention
        self.set_attention(attention)

    # ---- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: MVDiffusionConfig, *, seed: int = 0) -> MultiViewDiffusion:
        """Random facelift components of the given sizes (deterministic in ``seed``)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = UNet2DConditionModel(**config.unet_kwargs())
            vae = AutoencoderKL(**config.vae_kwargs())
            encoder = ImageEncoder(
                channels=tuple(config.image_encoder_channels), embed_dim=config.image_embed_dim, image_size=config.image_size,
                norm_num_groups=config.norm_num_groups,
            )  # fmt: skip
            # Unit-variance contexts (like CLIP text embeddings): distinct views are told apart from the start.
            views = torch.randn(len(config.view_names), config.view_tokens, config.cross_attention_dim)
        return cls(
            unet, vae, encoder, views, view_names=config.view_names, image_size=config.image_size,
            reconstruct_input=config.reconstruct_input, attention=config.attention, learn_view_embeddings=True, config=config,
        )  # fmt: skip

    def set_view_names(self, view_names: Sequence[str]) -> None:
        """Switch to another view set in place (e.g. the eight views of the view-count ablation), with the
        view embeddings of :func:`remap_view_embeddings`; the other weights do not depend on the view count."""
        view_names = tuple(view_names)
        new = remap_view_embeddings(self.view_embeddings.detach(), self.view_names, view_names)
        if isinstance(self.view_embeddings, nn.Parameter):
            self.view_embeddings = nn.Parameter(new)
        else:
            self.view_embeddings = new
        self.view_names = view_names
        if self.config is not None:
            self.config = dataclasses.replace(self.config, view_names=view_names)

    def set_attention(self, mode: AttentionMode) -> None:
        """Switch the multi-view attention mode (``sparse``, ``dense`` or ``off``) in place."""
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {mode!r}")
        set_multiview_attention(self.unet, mode)
        self.attention = mode

    @property
    def generated_views(self) -> tuple[int, ...]:
        """Indices (into ``view_names``) of the generated views."""
        return tuple(range(0 if self.reconstruct_input else 1, len(self.view_names)))

    @property
    def num_views(self) -> int:
        return len(self.generated_views)

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    # ---- building blocks ------------------------------------------------------------------------------

    def encode_latents(self, images: Float[Tensor, "N 3 H W"]) -> Float[Tensor, "N C h w"]:
        """Scaled VAE latents (``latent_dist.mode() * scaling_factor``) of images in [0, 1]."""
        x = resize_images(images, self.image_size).to(self.vae.dtype) * 2 - 1
        return self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor

    def decode_latents(self, latents: Float[Tensor, "N C h w"]) -> Float[Tensor, "N 3 H W"]:
        """Images in [0, 1] from scaled latents."""
        x = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return ((x.float() + 1) / 2).clamp(0, 1)

    def class_labels(self, images: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B D2"]:
        """``[image embedding, noise-level embedding(0)]`` of input images in [0, 1]: the UNet's ``class_labels``."""
        embeds = self.image_embedder(images)
        return torch.cat([embeds, noise_level_embedding(embeds.shape[0], embeds.shape[1], device=embeds.device, dtype=embeds.dtype)], dim=1)

    def forward(
        self,
        sample: Float[Tensor, "B V C h w"],
        timestep: Tensor | int,
        cond_latents: Float[Tensor, "B C h w"],
        *,
        cond_images: Float[Tensor, "B 3 H W"] | None = None,
        class_labels: Float[Tensor, "B D2"] | None = None,
        keep_image: Tensor | None = None,
        keep_latent: Tensor | None = None,
    ) -> Float[Tensor, "B V C h w"]:
        """Denoiser output (v-prediction) for every generated view.

        Args:
            sample: noisy latents of the generated views, ``[B, V, C, h, w]`` (V = :attr:`num_views`).
            timestep: one timestep per subject ``[B]`` (or a scalar for all).
            cond_latents: scaled latent of the input image ``[B, C, h, w]``.
            cond_images: input images in [0, 1] (embedded here), or
            class_labels: precomputed :meth:`class_labels` ``[B, 2D]``.
            keep_image, keep_latent: optional ``[B]`` masks (1 keep, 0 drop to zeros) for condition dropout
                and classifier-free guidance.

        Returns:
            ``[B, V, C, h, w]``.
        """
        b, v = sample.shape[:2]
        if v != self.num_views:
            raise ValueError(f"sample has {v} views, the model generates {self.num_views}")
        if class_labels is None:
            if cond_images is None:
                raise ValueError("pass cond_images or class_labels")
            class_labels = self.class_labels(cond_images)
        dtype = self.dtype
        if keep_image is not None:
            class_labels = class_labels * keep_image.to(class_labels.dtype).view(b, 1)
        if keep_latent is not None:
            cond_latents = cond_latents * keep_latent.to(cond_latents.dtype).view(b, 1, 1, 1)
        timestep = torch.as_tensor(timestep, device=sample.device)
        timestep = timestep.expand(b) if timestep.ndim == 0 else timestep
        x = torch.cat([sample, cond_latents[:, None].expand(-1, v, -1, -1, -1)], dim=2).flatten(0, 1)  # [B V, 2C, h, w]
        context = self.view_embeddings[list(self.generated_views)].to(dtype)  # [V, T, C_ctx]
        out = self.unet(
            x.to(dtype),
            timestep.repeat_interleave(v),
            encoder_hidden_states=context.repeat(b, 1, 1),
            class_labels=class_labels.to(dtype).repeat_interleave(v, dim=0),
            cross_attention_kwargs={"num_views": v},
        ).sample
        return out.view(b, v, *out.shape[1:])

    # ---- sampling -------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        images: Float[Tensor, "B 3 H W"],
        *,
        num_inference_steps: int = 50,
        guidance_scale: float = 3.0,
        eta: float = 1.0,
        solver: Solver = "ddim",
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        progress: bool = False,
    ) -> MultiViewOutput:
        """Generate the views of each input image (the reference settings by default).

        Args:
            images: input views in [0, 1] (composited on white), resized to :attr:`image_size` if needed.
            num_inference_steps: denoising steps (reference: 50 DDIM steps; DPM-Solver++ needs about 20).
            guidance_scale: classifier-free guidance (1 disables it; reference 3.0).
            eta: DDIM stochasticity (reference 1.0; ignored by DPM-Solver++).
            solver: ``ddim`` or ``dpmsolver++``.
            generator: one CPU generator for the batch, or one per subject (then each subject's result does
                not depend on the batch it is sampled in). Noise is drawn on the CPU, so a seed gives the
                same starting point on every device.
            progress: show a progress bar.

        Returns:
            :class:`MultiViewOutput` with ``images [B, V, 3, H, W]``.

        Example:
            >>> out = model.sample(image[None], generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if guidance_scale < 1:
            raise ValueError(f"guidance_scale must be >= 1 (1 disables guidance), got {guidance_scale}")
        device, b, v = self.device, images.shape[0], self.num_views
        gens = _generators(generator, b)
        images = resize_images(images.to(device).float(), self.image_size)
        scheduler = make_scheduler(self.scheduler_config, solver)
        scheduler.set_timesteps(num_inference_steps, device=device)
        cond_latents = self.encode_latents(images).float()  # [B, C, h, w]
        labels = self.class_labels(images).float()  # [B, 2D]
        c, s = cond_latents.shape[1], cond_latents.shape[-1]
        latents = _randn((b, v, c, s, s), gens, device, torch.float32) * scheduler.init_noise_sigma
        guided = guidance_scale > 1
        if guided:  # [unconditional; conditional]
            keep = torch.cat([torch.zeros(b, device=device), torch.ones(b, device=device)])
            cond_latents, labels = cond_latents.repeat(2, 1, 1, 1), labels.repeat(2, 1)
        steps = scheduler.timesteps
        noises = None
        if isinstance(scheduler, DDIMScheduler) and eta > 0:
            # DDIM's per-step noise, drawn up front in the order the steps use it (the same numbers) and moved
            # to the device in one copy: a copy per step would make the host wait for the GPU at every step.
            cpu = torch.device("cpu")
            noises = torch.stack([_randn(latents.shape, gens, cpu, torch.float32) for _ in range(len(steps))]).to(device)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"{solver} sampling", unit="step")
        for i, t in enumerate(steps):
            x = scheduler.scale_model_input(latents, t)
            if guided:
                pred = self(x.repeat(2, 1, 1, 1, 1), t, cond_latents, class_labels=labels, keep_image=keep, keep_latent=keep).float()
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            else:
                pred = self(x, t, cond_latents, class_labels=labels).float()
            if isinstance(scheduler, DDIMScheduler):
                noise = noises[i] if noises is not None else None
                latents = scheduler.step(pred, t, latents, eta=eta, variance_noise=noise).prev_sample
            else:
                latents = scheduler.step(pred, t, latents).prev_sample
        decoded = self.decode_latents(latents.flatten(0, 1)).view(b, v, 3, self.image_size, self.image_size)
        return MultiViewOutput(decoded, latents, tuple(self.view_names[i] for i in self.generated_views))

    # ---- weights ------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike, *, overwrite: bool = True, dtype: torch.dtype | None = None) -> Path:
        """Write the model folder atomically (it appears complete or not at all).

        ``dtype`` stores the networks in that precision (e.g. ``torch.float16`` halves the files); they are
        loaded back in float32 unless :meth:`from_pretrained` is told otherwise.

        Layout: ``facelift_mvdiffusion.json`` (format, view names, settings, config), ``unet/``, ``vae/`` and
        ``image_encoder/`` (diffusers ``save_pretrained``: ``config.json`` + safetensors),
        ``view_embeddings.safetensors`` and ``scheduler/scheduler_config.json``.
        """
        if not isinstance(self.image_embedder, ImageEncoder):
            raise TypeError("save_pretrained writes facelift's own components; official weights stay in their folder")
        directory = Path(directory)
        with staged_output_dir(directory, overwrite=overwrite) as tmp:
            for name, part in (("unet", self.unet), ("vae", self.vae), ("image_encoder", self.image_embedder)):
                (copy.deepcopy(part).to(dtype) if dtype is not None else part).save_pretrained(tmp / name, safe_serialization=True)
            save_file({"view_embeddings": self.view_embeddings.detach().float().cpu().contiguous()}, str(tmp / _VIEW_FILE))
            make_scheduler(self.scheduler_config).save_config(tmp / "scheduler")
            meta = {
                "format": FORMAT, "view_names": list(self.view_names), "image_size": self.image_size,
                "reconstruct_input": self.reconstruct_input, "attention": self.attention,
                "config": self.config.to_dict() if self.config is not None else None,
            }  # fmt: skip
            atomic_write_text(tmp / _META, json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MultiViewDiffusion:
        """Load a folder written by :meth:`save_pretrained` (strict; nothing is downloaded)."""
        directory = Path(directory)
        meta_path = directory / _META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{directory} is not a facelift multi-view diffusion folder (no {_META})")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: unsupported format {meta.get('format')!r} (expected {FORMAT})")
        common = {"local_files_only": True, "low_cpu_mem_usage": False}
        unet = UNet2DConditionModel.from_pretrained(directory / "unet", **common)
        vae = AutoencoderKL.from_pretrained(directory / "vae", **common)
        encoder = ImageEncoder.from_pretrained(directory / "image_encoder", **common)
        views = load_file(str(directory / _VIEW_FILE))["view_embeddings"]
        scheduler = DDIMScheduler.from_pretrained(directory / "scheduler", local_files_only=True)
        config = MVDiffusionConfig.from_dict(meta["config"]) if meta.get("config") else None
        model = cls(
            unet, vae, encoder, views, view_names=meta["view_names"], image_size=meta["image_size"],
            reconstruct_input=meta["reconstruct_input"], attention=meta["attention"], scheduler_config=dict(scheduler.config),
            learn_view_embeddings=True, config=config,
        )  # fmt: skip
        return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model

    @classmethod
    def from_official(
        cls,
        path: str | os.PathLike,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        attention: AttentionMode = "sparse",
        reconstruct_input: bool = True,
        image_size: int = 512,
    ) -> MultiViewDiffusion:
        """Load the authors' released diffusers folder (``pipeckpts/``) from a local path.

        Reads ``unet``, ``vae``, ``image_encoder`` + ``feature_extractor`` (CLIP image embedding),
        ``text_encoder`` + ``tokenizer`` (used once, here, to embed the six reference prompts
        ``"a rendering image of 3D models, {view} view, color map."``) and ``scheduler``; the
        ``image_normalizer`` is not needed at noise level 0 (its scale and unscale cancel). Needs
        ``transformers``; nothing is downloaded.

        Args:
            path: the folder holding ``model_index.json`` and the component subfolders.
            device, dtype: where and in which precision to put the networks (e.g. ``torch.float16`` on CUDA).
            attention: multi-view attention mode (the released model was trained with ``sparse``).
            reconstruct_input: generate the input view too (the release does).
            image_size: size of the generated views (the release: 512; the UNet config's ``sample_size`` is
                inherited from SD2.1 and does not say).

        Raises:
            FileNotFoundError: the folder or one of its parts is missing.
            ImportError: ``transformers`` is not installed.
        """
        path = Path(path)
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        missing = [p for p in _OFFICIAL_PARTS if not (path / p).is_dir()]
        if missing:
            raise FileNotFoundError(f"{path} lacks the component folders {missing}")
        try:
            from transformers import (
                CLIPImageProcessor,
                CLIPTextModel,
                CLIPTokenizer,
                CLIPVisionModelWithProjection,
            )
        except ImportError as err:
            raise ImportError("the authors' weights need transformers: pip install transformers") from err
        common = {"local_files_only": True}
        unet = UNet2DConditionModel.from_pretrained(path / "unet", low_cpu_mem_usage=False, **common)
        vae = AutoencoderKL.from_pretrained(path / "vae", low_cpu_mem_usage=False, **common)
        clip = CLIPVisionModelWithProjection.from_pretrained(path / "image_encoder", **common).eval().requires_grad_(False)
        processor = CLIPImageProcessor.from_pretrained(path / "feature_extractor", **common)
        tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer", **common)
        text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", **common).eval()
        prompts = [VIEW_PROMPT.format(view=name) for name in FACELIFT_VIEW_NAMES]
        tokens = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt")
        with torch.no_grad():
            views = text_encoder(tokens.input_ids)[0].float()  # [6, 77, 1024] last hidden state
        scheduler = DDIMScheduler.from_pretrained(path / "scheduler", **common)
        model = cls(
            unet, vae, ClipImageEmbedder(clip, processor), views, view_names=FACELIFT_VIEW_NAMES, image_size=image_size,
            reconstruct_input=reconstruct_input, attention=attention, scheduler_config=dict(scheduler.config),
        )  # fmt: skip
        model.requires_grad_(False).eval()
        return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model
