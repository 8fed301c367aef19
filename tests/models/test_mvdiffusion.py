"""Multi-view diffusion: shapes, attention semantics, key names, weights round trip, schedulers, seeds."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel

from facelift.models.mvdiffusion import (
    REFERENCE_SCHEDULER,
    MultiViewDiffusion,
    MVDiffusionConfig,
    make_scheduler,
    noise_level_embedding,
    remap_view_embeddings,
)

TINY = MVDiffusionConfig.tiny()


@pytest.fixture(scope="module")
def tiny_model() -> MultiViewDiffusion:
    torch.manual_seed(0)
    return MultiViewDiffusion.from_config(TINY, seed=0).eval()


def _inputs(model: MultiViewDiffusion, batch: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = model.latent_size
    x = torch.randn(batch, model.num_views, 4, s, s, generator=g)
    cond = torch.randn(batch, 4, s, s, generator=g)
    images = torch.rand(batch, 3, model.image_size, model.image_size, generator=g)
    return x, cond, images


def test_forward_and_sample_shapes(tiny_model):
    x, cond, images = _inputs(tiny_model, batch=2)
    with torch.no_grad():
        out = tiny_model(x, torch.tensor([10, 500]), cond, cond_images=images)
    assert out.shape == x.shape and torch.isfinite(out).all()
    result = tiny_model.sample(images, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert result.images.shape == (2, 6, 3, 32, 32)
    assert result.latents.shape == (2, 6, 4, 16, 16)
    assert 0 <= float(result.images.min()) and float(result.images.max()) <= 1
    assert result.view_names == ("front", "front_right", "right", "back", "left", "front_left")


def test_without_input_view_reconstruction_generates_five_views():
    model = MultiViewDiffusion.from_config(replace(TINY, reconstruct_input=False)).eval()
    assert model.num_views == 5 and model.generated_views == (1, 2, 3, 4, 5)
    result = model.sample(torch.rand(1, 3, 32, 32), num_inference_steps=1, guidance_scale=1.0)
    assert result.images.shape == (1, 5, 3, 32, 32) and result.view_names[0] == "front_right"
    with pytest.raises(ValueError, match="5"):
        model(torch.zeros(1, 6, 4, 16, 16), 1, torch.zeros(1, 4, 16, 16), cond_images=torch.rand(1, 3, 32, 32))


def test_eight_views_and_remapped_view_embeddings():
    from facelift.cameras import EIGHT_VIEW_NAMES, FACELIFT_VIEW_NAMES

    e = torch.randn(6, 3, 8)
    out = remap_view_embeddings(e, FACELIFT_VIEW_NAMES, EIGHT_VIEW_NAMES)
    assert out.shape == (8, 3, 8)
    for i, name in enumerate(EIGHT_VIEW_NAMES):
        if name in FACELIFT_VIEW_NAMES:
            assert torch.equal(out[i], e[FACELIFT_VIEW_NAMES.index(name)])
    # back_right (135) sits halfway between right (90) and back (180): same direction as their mean, the mean norm.
    mean = (e[2] + e[3]) / 2
    torch.testing.assert_close(out[3] / out[3].norm(dim=-1, keepdim=True), mean / mean.norm(dim=-1, keepdim=True))
    torch.testing.assert_close(out[3].norm(dim=-1), (e[2].norm(dim=-1) + e[3].norm(dim=-1)) / 2)
    # Back to six: exactly the original rows.
    assert torch.equal(remap_view_embeddings(out, EIGHT_VIEW_NAMES, FACELIFT_VIEW_NAMES), e)
    with pytest.raises(ValueError, match="input view"):
        remap_view_embeddings(e, FACELIFT_VIEW_NAMES, ("right", "front"))
    model = MultiViewDiffusion.from_config(TINY, seed=0).eval()
    model.set_view_names(EIGHT_VIEW_NAMES)
    assert model.num_views == 8 and model.config.view_names == EIGHT_VIEW_NAMES
    result = model.sample(torch.rand(1, 3, 32, 32), num_inference_steps=1, guidance_scale=1.0)
    assert result.images.shape == (1, 8, 3, 32, 32) and result.view_names == EIGHT_VIEW_NAMES
    assert MultiViewDiffusion.from_config(replace(TINY, view_names=EIGHT_VIEW_NAMES)).num_views == 8


def _changed_views(model: MultiViewDiffusion, mode: str, perturbed: int) -> list[bool]:
    """Which views' outputs change when the input latent of view ``perturbed`` changes."""
    model.set_attention(mode)
    x, cond, images = _inputs(model, seed=1)
    y = x.clone()
    y[:, perturbed] += torch.randn(y[:, perturbed].shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = model(x, 100, cond, cond_images=images)
        b = model(y, 100, cond, cond_images=images)
    return [not torch.allclose(a[:, i], b[:, i], atol=1e-6, rtol=0) for i in range(model.num_views)]


def test_attention_modes_mix_exactly_the_views_they_should(tiny_model):
    try:
        # off: views are independent.
        assert _changed_views(tiny_model, "off", 3) == [False, False, False, True, False, False]
        # dense: every view sees every other.
        assert _changed_views(tiny_model, "dense", 3) == [True] * 6
        # sparse: a view sees itself and view 0 only.
        assert _changed_views(tiny_model, "sparse", 3) == [False, False, False, True, False, False]
        assert _changed_views(tiny_model, "sparse", 0) == [True] * 6
    finally:
        tiny_model.set_attention("sparse")


def test_processor_matches_explicit_attention_per_mode():
    # One diffusers attention layer, 2 subjects x 3 views x 5 tokens; each mode against attention written out
    # by hand over the intended key sets (view 0 in sparse mode attends to its own tokens once).
    from diffusers.models.attention_processor import Attention

    from facelift.models.mvdiffusion import MultiViewAttnProcessor

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    b, v, length = 2, 3, 5
    x = torch.randn(b * v, length, 16)

    def explicit(rows_q: torch.Tensor, rows_kv: torch.Tensor) -> torch.Tensor:
        q = attn.to_q(rows_q).view(-1, 2, 8).transpose(0, 1)  # [heads, Lq, d]
        k = attn.to_k(rows_kv).view(-1, 2, 8).transpose(0, 1)
        val = attn.to_v(rows_kv).view(-1, 2, 8).transpose(0, 1)
        w = torch.softmax(q @ k.transpose(1, 2) / 8**0.5, dim=-1)
        return attn.to_out[0]((w @ val).transpose(0, 1).reshape(-1, 16))

    xs = x.view(b, v, length, 16)
    keys = {
        "off": lambda i, j: xs[i, j],
        "dense": lambda i, j: xs[i].reshape(-1, 16),
        "sparse": lambda i, j: xs[i, j] if j == 0 else torch.cat([xs[i, j], xs[i, 0]]),
    }
    for mode, kv in keys.items():
        attn.set_processor(MultiViewAttnProcessor(mode))
        with torch.no_grad():
            got = attn(x, num_views=v).view(b, v, length, 16)
            want = torch.stack([torch.stack([explicit(xs[i, j], kv(i, j)) for j in range(v)]) for i in range(b)])
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=mode)
    with pytest.raises(ValueError, match="whole number"):
        attn(x[:4], num_views=3)


def test_unet_keys_match_a_plain_unet_of_the_same_config(tiny_model):
    plain = UNet2DConditionModel(**TINY.unet_kwargs())
    ours = {k: v.shape for k, v in tiny_model.unet.state_dict().items()}
    assert ours == {k: v.shape for k, v in plain.state_dict().items()}
    assert tiny_model.unet.conv_in.weight.shape[1] == 8


def test_official_size_unet_has_the_reference_layout():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**MVDiffusionConfig.official().unet_kwargs())
    before = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    from facelift.models.mvdiffusion import set_multiview_attention

    set_multiview_attention(unet, "sparse")
    after = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert before == after
    assert len(after) == 690
    assert round(sum(torch.Size(s).numel() for s in after.values()) / 1e6, 1) == 870.2
    assert after["conv_in.weight"] == (320, 8, 3, 3)
    assert after["class_embedding.linear_1.weight"] == (1280, 2048)


def test_condition_masks_zero_the_conditioning(tiny_model):
    x, cond, images = _inputs(tiny_model, batch=2, seed=4)
    labels = tiny_model.class_labels(images)
    zero = torch.zeros(2)
    with torch.no_grad():
        masked = tiny_model(x, 10, cond, class_labels=labels, keep_image=zero, keep_latent=zero)
        explicit = tiny_model(x, 10, torch.zeros_like(cond), class_labels=torch.zeros_like(labels))
        kept = tiny_model(x, 10, cond, class_labels=labels, keep_image=torch.ones(2), keep_latent=torch.ones(2))
    torch.testing.assert_close(masked, explicit)
    assert not torch.allclose(masked, kept)


def test_noise_level_embedding_at_zero():
    emb = noise_level_embedding(2, 8)
    assert emb.shape == (2, 8)
    assert emb[:, :4].eq(1).all() and emb[:, 4:].eq(0).all()


def test_seeds_reproduce_and_per_subject_generators_are_batch_independent(tiny_model):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    kwargs = {"num_inference_steps": 3, "guidance_scale": 3.0, "eta": 1.0}
    a = tiny_model.sample(images, generator=torch.Generator().manual_seed(7), **kwargs).images
    b = tiny_model.sample(images, generator=torch.Generator().manual_seed(7), **kwargs).images
    c = tiny_model.sample(images, generator=torch.Generator().manual_seed(8), **kwargs).images
    assert torch.equal(a, b) and not torch.allclose(a, c)
    gens = [torch.Generator().manual_seed(11), torch.Generator().manual_seed(12)]
    pair = tiny_model.sample(images, generator=gens, **kwargs).images
    alone = tiny_model.sample(images[1:], generator=[torch.Generator().manual_seed(12)], **kwargs).images
    torch.testing.assert_close(pair[1:], alone, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="generators"):
        tiny_model.sample(images, generator=gens[:1], **kwargs)


def test_ddim_noise_follows_the_generator_step_by_step(tiny_model):
    """sample() draws DDIM's per-step noise up front (one device copy); the numbers are those of drawing it
    step by step, as this hand-written loop does."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = tiny_model.sample(image, num_inference_steps=3, guidance_scale=1.0, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    scheduler = make_scheduler(tiny_model.scheduler_config, "ddim")
    scheduler.set_timesteps(3)
    with torch.no_grad():
        cond, labels = tiny_model.encode_latents(image).float(), tiny_model.class_labels(image).float()
        s = cond.shape[-1]
        latents = torch.randn((1, tiny_model.num_views, cond.shape[1], s, s), generator=g) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            pred = tiny_model(scheduler.scale_model_input(latents, t), t, cond, class_labels=labels).float()
            latents = scheduler.step(pred, t, latents, eta=1.0, variance_noise=torch.randn(latents.shape, generator=g)).prev_sample
    torch.testing.assert_close(out.latents, latents)


def test_guidance_and_solver_change_the_result(tiny_model):
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))

    def run(**kw):
        return tiny_model.sample(images, num_inference_steps=3, generator=torch.Generator().manual_seed(0), **kw).images

    ddim = run(guidance_scale=3.0)
    assert not torch.allclose(ddim, run(guidance_scale=1.0))
    fast = run(solver="dpmsolver++")
    assert fast.shape == ddim.shape and not torch.allclose(ddim, fast)
    with pytest.raises(ValueError, match="solver"):
        run(solver="euler")
    with pytest.raises(ValueError, match="guidance_scale"):
        run(guidance_scale=0.5)


def test_schedulers_round_trip_through_their_config(tmp_path):
    for solver, cls in (("ddim", DDIMScheduler), ("dpmsolver++", DPMSolverMultistepScheduler)):
        sched = make_scheduler(REFERENCE_SCHEDULER, solver)
        assert isinstance(sched, cls) and sched.config.prediction_type == "v_prediction"
        sched.save_config(tmp_path / solver)
        again = cls.from_pretrained(tmp_path / solver)
        def public(config) -> dict:
            return {k: v for k, v in dict(config).items() if not k.startswith("_")}

        assert public(again.config) == public(sched.config)
        sched.set_timesteps(50)
        again.set_timesteps(50)
        assert torch.equal(sched.timesteps, again.timesteps)
    ddim = make_scheduler(REFERENCE_SCHEDULER)
    ddim.set_timesteps(50)
    assert ddim.timesteps[0] == 981 and ddim.timesteps[-1] == 1  # SD2.1's leading spacing, steps_offset 1
    assert ddim.config.beta_schedule == "scaled_linear" and ddim.config.beta_end == 0.012


def test_save_and_load_pretrained_give_identical_outputs(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "facelift_mvdiffusion.json").read_text())
    assert meta["format"] == "facelift.mvdiffusion/1" and meta["attention"] == "sparse"
    for part in ("unet", "vae", "image_encoder"):
        assert (tmp_path / "m" / part / "config.json").is_file()
    loaded = MultiViewDiffusion.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == TINY
    x, cond, images = _inputs(tiny_model, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 3, cond, cond_images=images), tiny_model(x, 3, cond, cond_images=images), rtol=0, atol=0)
    # Half-precision storage loads back as float32 with the rounded weights.
    tiny_model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    half = MultiViewDiffusion.from_pretrained(tmp_path / "half")
    assert half.dtype == torch.float32
    w = tiny_model.unet.conv_in.weight
    torch.testing.assert_close(half.unet.conv_in.weight, w.half().float())


def test_from_pretrained_rejects_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a facelift multi-view diffusion folder"):
        MultiViewDiffusion.from_pretrained(tmp_path)
    (tmp_path / "facelift_mvdiffusion.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="unsupported format"):
        MultiViewDiffusion.from_pretrained(tmp_path)


def test_config_validation_and_json_round_trip():
    config = MVDiffusionConfig.default()
    assert MVDiffusionConfig.from_dict(json.loads(config.to_json())) == config
    assert config.latent_size == 32 and config.num_views == 6
    with pytest.raises(ValueError, match="multiple of"):
        replace(config, image_size=100)
    with pytest.raises(ValueError, match="attention"):
        replace(config, attention="full")
    with pytest.raises(ValueError, match="unknown"):
        MVDiffusionConfig.from_dict({"widths": 3})


@pytest.mark.gpu
def test_cuda_sampling_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = MultiViewDiffusion.from_config(TINY, seed=0).eval()
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kwargs = {"num_inference_steps": 3, "generator": None}
    cpu = model.sample(image, **{**kwargs, "generator": torch.Generator().manual_seed(0)}).images
    gpu = model.to("cuda").sample(image, **{**kwargs, "generator": torch.Generator().manual_seed(0)}).images.cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=2e-3)


def test_image_encoder_takes_fp32_photos_in_half_precision():
    """The pipeline casts the diffusion model to fp16 on CUDA but hands it fp32 photos (bf16 here: the CPU's half type)."""
    from facelift.models.mvdiffusion.conditioning import ImageEncoder

    enc = ImageEncoder(channels=(8, 8), embed_dim=4, image_size=16, norm_num_groups=4)
    photos = torch.rand(2, 3, 32, 32)
    full = enc(photos)
    half = enc.to(torch.bfloat16)(photos)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, atol=0.1, rtol=0.1)
