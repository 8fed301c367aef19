"""Loading the authors' released diffusion folder, checked on a tiny folder in the same layout made here."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
    StableUnCLIPImageNormalizer,
)

from facelift.models.mvdiffusion import (
    REFERENCE_SCHEDULER,
    VIEW_PROMPT,
    ClipImageEmbedder,
    MultiViewDiffusion,
)

EMBED = 16  # CLIP projection width (1024 in the release)
CONTEXT = 24  # text hidden width = UNet cross-attention width (1024 in the release)


def _tokenizer_files(folder: Path) -> int:
    """A character-level CLIP BPE vocabulary (no merges) in the legacy vocab.json + merges.txt layout."""
    folder.mkdir(parents=True)
    chars = list(string.ascii_lowercase + string.digits + ",.!'-_")
    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for c in chars:
            vocab[c + suffix] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    config = {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    }  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return len(vocab)


def make_official_folder(root: Path) -> Path:
    """A tiny pipeline folder with the release's layout, component classes and key names."""
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=8, out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(16, 32), layers_per_block=1,
        attention_head_dim=(2, 4), cross_attention_dim=CONTEXT, use_linear_projection=True, class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * EMBED, norm_num_groups=8,
    )  # fmt: skip
    unet.save_pretrained(root / "unet")
    vae = AutoencoderKL(
        block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=4, scaling_factor=0.18215,
    )  # fmt: skip
    vae.save_pretrained(root / "vae")
    vision = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8, projection_dim=EMBED)
    )
    vision.save_pretrained(root / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(root / "feature_extractor")
    StableUnCLIPImageNormalizer(embedding_dim=EMBED).save_pretrained(root / "image_normalizer")
    vocab = _tokenizer_files(root / "tokenizer")
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab, hidden_size=CONTEXT, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
            max_position_embeddings=77, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
        )
    )
    text.save_pretrained(root / "text_encoder")
    DDIMScheduler(**REFERENCE_SCHEDULER).save_config(root / "scheduler")
    index = {
        "_class_name": "StableUnCLIPImg2ImgPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "DDIMScheduler"],
        "image_normalizer": ["stable_diffusion", "StableUnCLIPImageNormalizer"],
    }  # fmt: skip
    (root / "model_index.json").write_text(json.dumps(index))
    return root


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return make_official_folder(tmp_path_factory.mktemp("pipeckpts"))


def test_loads_every_component_with_its_own_weights(official):
    model = MultiViewDiffusion.from_official(official, image_size=16)
    saved = UNet2DConditionModel.from_pretrained(official / "unet").state_dict()
    ours = model.unet.state_dict()
    assert ours.keys() == saved.keys() and all(torch.equal(ours[k], saved[k]) for k in saved)
    assert isinstance(model.image_embedder, ClipImageEmbedder)
    assert model.vae.config.scaling_factor == 0.18215
    assert model.attention == "sparse" and model.num_views == 6
    assert not any(p.requires_grad for p in model.parameters())


def test_view_embeddings_are_the_text_encoder_outputs_of_the_reference_prompts(official):
    from transformers import CLIPTextModel, CLIPTokenizer

    model = MultiViewDiffusion.from_official(official, image_size=16)
    tokenizer = CLIPTokenizer.from_pretrained(official / "tokenizer")
    text = CLIPTextModel.from_pretrained(official / "text_encoder")
    prompts = [VIEW_PROMPT.format(view=v) for v in ("front", "front_right", "right", "back", "left", "front_left")]
    assert prompts[1] == "a rendering image of 3D models, front_right view, color map."
    ids = tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = text(ids).last_hidden_state
    assert model.view_embeddings.shape == (6, 77, CONTEXT)
    torch.testing.assert_close(model.view_embeddings, expected)
    # The six prompts differ, so the six contexts do.
    assert not torch.allclose(model.view_embeddings[0], model.view_embeddings[3])


def test_image_embedding_matches_clip_with_its_processor(official):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    model = MultiViewDiffusion.from_official(official, image_size=16)
    # 8-bit values: the processor may round through uint8, which must not be what the check measures.
    image = torch.randint(0, 256, (1, 3, 16, 16), generator=torch.Generator().manual_seed(0)) / 255.0
    processor = CLIPImageProcessor.from_pretrained(official / "feature_extractor")
    clip = CLIPVisionModelWithProjection.from_pretrained(official / "image_encoder")
    pixels = processor(images=image, do_rescale=False, return_tensors="pt").pixel_values
    with torch.no_grad():
        expected = clip(pixel_values=pixels).image_embeds
        labels = model.class_labels(image)
    assert labels.shape == (1, 2 * EMBED)
    torch.testing.assert_close(labels[:, :EMBED], expected, rtol=1e-4, atol=1e-4)
    assert labels[:, EMBED : EMBED + EMBED // 2].eq(1).all() and labels[:, EMBED + EMBED // 2 :].eq(0).all()


def test_samples_with_the_reference_settings(official):
    model = MultiViewDiffusion.from_official(official, image_size=16)
    image = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(1))  # resized to 16
    a = model.sample(image, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    b = model.sample(image, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert a.images.shape == (1, 6, 3, 16, 16) and torch.equal(a.images, b.images)
    fast = model.sample(image, num_inference_steps=2, solver="dpmsolver++", generator=torch.Generator().manual_seed(0))
    assert fast.images.shape == (1, 6, 3, 16, 16) and torch.isfinite(fast.images).all()


def test_missing_parts_and_folders_are_clear_errors(tmp_path, official):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        MultiViewDiffusion.from_official(tmp_path)
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="lacks the component folders"):
        MultiViewDiffusion.from_official(tmp_path)
    model = MultiViewDiffusion.from_official(official, image_size=16)
    with pytest.raises(TypeError, match="official weights"):
        model.save_pretrained(tmp_path / "copy")
