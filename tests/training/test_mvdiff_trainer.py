"""Diffusion and VAE trainers: short runs, bit-exact resume, condition dropout, Min-SNR weights and the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from _ddp_helpers import capture_builds, free_port, join_job, write_replica_hash

from facelift.cli.main import main
from facelift.models.mvdiffusion import MultiViewDiffusion
from facelift.training.checkpoint import latest_checkpoint
from facelift.training.mvdiff_trainer import (
    MVDIFF_PRESETS,
    VAE_PRESETS,
    MVDiffTrainConfig,
    _AutoencoderWithLoss,
    _drop_masks,
    train_mvdiff,
    train_vae,
)

_QUIET = {"device": "cpu", "progress": False, "tensorboard": False}


def _mvdiff(out_dir: Path, **overrides) -> MVDiffTrainConfig:
    base = replace(MVDIFF_PRESETS["tiny"], out_dir=out_dir, total_steps=4, warmup_steps=1, ckpt_every=2, image_every=2, **_QUIET)
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae")
    result = train_vae(replace(VAE_PRESETS["tiny"], out_dir=out, total_steps=2, warmup_steps=1, image_every=1, **_QUIET))
    assert result.step == 2 and result.pretrained_dir == out / "final"
    return result.pretrained_dir


def test_vae_run_writes_a_loadable_vae_with_a_measured_scaling_factor(tiny_vae):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_vae, local_files_only=True)
    assert tuple(vae.config.block_out_channels) == (16, 16)
    assert vae.config.scaling_factor != 1.0 and 0 < vae.config.scaling_factor < 1e3
    run = tiny_vae.parent
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "l1" in r] == [1, 2]
    assert all(r["chroma"] > 0 for r in records if "l1" in r)  # the colour term is computed and logged
    assert (run / "images" / "step_00000001.png").is_file()


def test_vae_posterior_noise_zero_trains_on_the_mode(tiny_vae):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_vae, local_files_only=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        mode = vae.decode(vae.encode(x).latent_dist.mode()).sample
        deterministic = _AutoencoderWithLoss(vae, posterior_noise=0.0)
        torch.testing.assert_close(deterministic(x)[0], mode)
        torch.testing.assert_close(deterministic(x)[0], deterministic(x)[0])
        noisy = _AutoencoderWithLoss(vae, posterior_noise=1.0)
        assert not torch.allclose(noisy(x)[0], mode)
    with pytest.raises(ValueError, match="posterior_noise"):
        replace(VAE_PRESETS["tiny"], posterior_noise=-1.0)


def test_vae_trains_on_crops_and_rejects_off_grid_sizes(tmp_path):
    tiny = VAE_PRESETS["tiny"]
    size = tiny.model.image_size
    result = train_vae(replace(tiny, out_dir=tmp_path, total_steps=2, warmup_steps=1, image_every=1, crop_size=size // 2, **_QUIET))
    assert result.step == 2 and (tmp_path / "final" / "config.json").is_file()
    from PIL import Image

    preview = Image.open(tmp_path / "images" / "step_00000001.png")
    assert preview.height == 2 * (size // 2) + 1  # inputs and reconstructions of the crops, one pixel apart
    for bad in (size // 2 + 1, 2 * size, -tiny.model.vae_factor * 2):
        with pytest.raises(ValueError, match="crop_size"):
            replace(tiny, crop_size=bad)


def test_vae_run_continues_from_an_earlier_vae(tmp_path, tiny_vae):
    from diffusers import AutoencoderKL

    start = AutoencoderKL.from_pretrained(tiny_vae, local_files_only=True)
    config = replace(VAE_PRESETS["tiny"], out_dir=tmp_path, total_steps=1, warmup_steps=0, image_every=0, init_from=tiny_vae, lr=1e-12, **_QUIET)
    result = train_vae(config)
    after = AutoencoderKL.from_pretrained(result.pretrained_dir, local_files_only=True)
    for (name, a), b in zip(start.state_dict().items(), after.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)  # one step at lr 1e-12 from the same weights
    with pytest.raises(ValueError, match="different VAE"):
        train_vae(replace(config, out_dir=tmp_path / "other", model=replace(config.model, vae_channels=(16, 32))))


def test_diffusion_run_uses_the_vae_and_saves_ema_weights(tmp_path, tiny_vae):
    from diffusers import AutoencoderKL

    result = train_mvdiff(_mvdiff(tmp_path, total_steps=3, vae_from=tiny_vae))
    assert result.step == 3 and result.skipped_steps == 0 and 0 < result.final_loss < 10
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000003.pt"
    assert sorted(p.name for p in (tmp_path / "images").glob("*.png")) == ["step_00000001.png", "step_00000002.png"]
    model = MultiViewDiffusion.from_pretrained(result.pretrained_dir)
    vae = AutoencoderKL.from_pretrained(tiny_vae, local_files_only=True)
    assert model.vae.config.scaling_factor == vae.config.scaling_factor
    assert all(torch.equal(a, b) for a, b in zip(model.vae.state_dict().values(), vae.state_dict().values(), strict=True))
    # The final folder holds the EMA weights, not the last raw weights.
    payload = torch.load(latest_checkpoint(tmp_path / "checkpoints"), weights_only=False)
    raw = payload["model"]["unet.conv_in.weight"]
    ema = payload["extra"]["task"]["ema"]["shadow"]["unet.conv_in.weight"]
    assert not torch.equal(raw, ema)
    torch.testing.assert_close(model.unet.conv_in.weight, ema)


def test_missing_vae_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train vae"):
        train_mvdiff(_mvdiff(tmp_path, vae_from=tmp_path / "nope"))


def test_ablations_fine_tune_from_the_full_models_weights(tmp_path):
    full = train_mvdiff(_mvdiff(tmp_path / "full", total_steps=1, image_every=0)).pretrained_dir
    tiny = MVDIFF_PRESETS["tiny"].model
    for switch in ({"attention": "off"}, {"reconstruct_input": False}):
        result = train_mvdiff(_mvdiff(tmp_path / str(switch), total_steps=1, image_every=0, init_from=full, model=replace(tiny, **switch)))
        model = MultiViewDiffusion.from_pretrained(result.pretrained_dir)
        assert model.config == replace(tiny, **switch)
        assert model.attention == replace(tiny, **switch).attention and model.reconstruct_input == replace(tiny, **switch).reconstruct_input
    with pytest.raises(ValueError, match="different architecture"):
        train_mvdiff(_mvdiff(tmp_path / "wide", init_from=full, model=replace(tiny, view_tokens=3)))


def test_the_eight_view_ablation_fine_tunes_from_a_six_view_model(tmp_path):
    from facelift.cameras import EIGHT_VIEW_NAMES, FACELIFT_VIEW_NAMES

    full = train_mvdiff(_mvdiff(tmp_path / "full", total_steps=1, image_every=0)).pretrained_dir
    six = MultiViewDiffusion.from_pretrained(full)
    eight = replace(MVDIFF_PRESETS["tiny"].model, view_names=EIGHT_VIEW_NAMES)
    # On-the-fly data with the eight fixed views; lr ~0 so the started-from embeddings are still visible.
    result = train_mvdiff(_mvdiff(tmp_path / "eight", total_steps=1, image_every=1, init_from=full, model=eight, lr=1e-12))
    model = MultiViewDiffusion.from_pretrained(result.pretrained_dir)
    assert model.view_names == EIGHT_VIEW_NAMES and model.config == eight and model.num_views == 8
    for i, name in enumerate(EIGHT_VIEW_NAMES):
        if name in FACELIFT_VIEW_NAMES:
            torch.testing.assert_close(model.view_embeddings[i], six.view_embeddings[FACELIFT_VIEW_NAMES.index(name)], atol=1e-3, rtol=0)
        else:  # back_right, back_left: new, between their neighbours
            assert all((model.view_embeddings[i] - e).abs().max() > 1e-2 for e in six.view_embeddings)
    assert (tmp_path / "eight" / "images" / "step_00000001.png").is_file()  # the preview handles eight views


def test_init_from_keeps_its_vae_unless_replace_vae_names_one(tmp_path, tiny_vae):
    from diffusers import AutoencoderKL

    full = train_mvdiff(_mvdiff(tmp_path / "full", total_steps=1, image_every=0)).pretrained_dir  # random VAE
    kept = MultiViewDiffusion.from_pretrained(full).vae.state_dict()
    new = AutoencoderKL.from_pretrained(tiny_vae, local_files_only=True)
    same = train_mvdiff(_mvdiff(tmp_path / "same", total_steps=1, image_every=0, init_from=full, vae_from=tiny_vae)).pretrained_dir
    assert all(torch.equal(a, b) for a, b in zip(MultiViewDiffusion.from_pretrained(same).vae.state_dict().values(), kept.values(), strict=True))
    swapped = train_mvdiff(_mvdiff(tmp_path / "swapped", total_steps=1, image_every=0, init_from=full, replace_vae=tiny_vae)).pretrained_dir
    model = MultiViewDiffusion.from_pretrained(swapped)
    assert all(torch.equal(a, b) for a, b in zip(model.vae.state_dict().values(), new.state_dict().values(), strict=True))
    assert model.vae.config.scaling_factor == new.config.scaling_factor != 1.0
    with pytest.raises(FileNotFoundError, match="train vae"):
        train_mvdiff(_mvdiff(tmp_path / "missing", init_from=full, replace_vae=tmp_path / "nope"))
    with pytest.raises(ValueError, match="replace_vae"):
        _mvdiff(tmp_path / "scratch", replace_vae=tiny_vae)


def test_kill_and_resume_is_bit_exact(tmp_path):
    straight = train_mvdiff(_mvdiff(tmp_path / "straight"))
    stopped = train_mvdiff(_mvdiff(tmp_path / "resumed"), stop_after=2)
    assert stopped.step == 2 and stopped.pretrained_dir is None
    resumed = train_mvdiff(_mvdiff(tmp_path / "resumed"))
    assert resumed.step == 4 and resumed.resumed_from.name == "step_00000002.pt"
    a = MultiViewDiffusion.from_pretrained(straight.pretrained_dir).state_dict()
    b = MultiViewDiffusion.from_pretrained(resumed.pretrained_dir).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.final_loss == straight.final_loss


def test_condition_dropout_masks_follow_the_reference_split():
    config = MVDIFF_PRESETS["default"]
    u = torch.tensor([0.01, 0.07, 0.12, 0.5, 0.0499, 0.0999, 0.1499, 0.15])
    keep_image, keep_latent = _drop_masks(u, config)
    # [0, .05): image only; [.05, .10): latent only; [.10, .15): both; above: neither.
    assert keep_image.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert keep_latent.tolist() == [1, 0, 0, 1, 1, 0, 0, 1]
    draws = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    ki, kl = _drop_masks(draws, config)
    assert abs(float((1 - ki).mean()) - 0.10) < 0.005 and abs(float((1 - kl).mean()) - 0.10) < 0.005
    assert abs(float(((1 - ki) * (1 - kl)).mean()) - 0.05) < 0.005


def test_min_snr_weight_in_the_loss(monkeypatch):
    # With the model predicting zeros, the per-subject loss is mean(v^2) and its weight min(SNR, 5)/(SNR+1).
    import facelift.training.mvdiff_trainer as trainer

    config = replace(MVDIFF_PRESETS["tiny"], drop_image=0.0, drop_latent=0.0, drop_both=0.0)
    model = MultiViewDiffusion.from_config(config.model).eval()

    def zeros(sample, timestep, cond_latents, **kwargs):
        return torch.zeros_like(sample)

    images = torch.rand(2, 6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    index = torch.tensor([3, 4])
    loss, logs = trainer.diffusion_loss(zeros, model, images, index, config)
    alphas = trainer._alphas_cumprod(model.scheduler_config)
    t_mean = logs["t_mean"]
    assert 0 <= t_mean < 1000
    unweighted, _ = trainer.diffusion_loss(zeros, model, images, index, replace(config, snr_gamma=0.0))
    # Same draws (seeded by the sample index), different weights: the ratio lies within the weights' range.
    snr = alphas / (1 - alphas)
    w = torch.clamp(snr, max=5) / (snr + 1)
    ratio = float(loss / unweighted)
    assert float(w.min()) - 1e-6 <= ratio <= float(w.max()) + 1e-6
    again, _ = trainer.diffusion_loss(zeros, model, images, index, config)
    assert float(again) == float(loss)


def test_fixed_timestep_loss_is_the_v_error_on_given_draws():
    import facelift.training.mvdiff_trainer as trainer

    config = MVDIFF_PRESETS["tiny"]
    model = MultiViewDiffusion.from_config(config.model).eval()
    images = torch.rand(2, 6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    timesteps = [10, 500, 990]
    loss = trainer.fixed_timestep_loss(model, images, timesteps, torch.Generator().manual_seed(7))
    assert loss.shape == (2, 3) and bool((loss > 0).all())
    # Same draws, same numbers; other noise, other numbers.
    assert torch.equal(loss, trainer.fixed_timestep_loss(model, images, timesteps, torch.Generator().manual_seed(7)))
    assert not torch.equal(loss, trainer.fixed_timestep_loss(model, images, timesteps, torch.Generator().manual_seed(8)))

    # A model that predicts zeros scores mean(v^2), v = sqrt(a) noise - sqrt(1 - a) x0, on the generator's draws.
    def zeros(sample, timestep, cond_latents, **kwargs):
        return torch.zeros_like(sample)

    zeros_model = _Delegate(model, zeros)
    zero = trainer.fixed_timestep_loss(zeros_model, images, timesteps, torch.Generator().manual_seed(7))
    latents, _ = trainer._encode_views(model, images)
    alphas = trainer._alphas_cumprod(model.scheduler_config)[torch.tensor(timesteps)].view(-1, 1, 1, 1, 1)
    g = torch.Generator().manual_seed(7)
    for i in range(2):
        noise = torch.randn((3, *latents.shape[1:]), generator=g)
        v = alphas.sqrt() * noise - (1 - alphas).sqrt() * latents[i : i + 1]
        torch.testing.assert_close(zero[i], v.pow(2).flatten(1).mean(1))
    assert zeros_model.calls == 2
    with pytest.raises(ValueError, match="timesteps"):
        trainer.fixed_timestep_loss(model, images, [1000], torch.Generator())


class _Delegate:
    """A diffusion model whose denoiser call is replaced (the VAE and schedule stay the real model's)."""

    def __init__(self, model, fn) -> None:
        self.model, self.fn, self.calls = model, fn, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def test_cli_lists_presets_and_runs_tiny(tmp_path, capsys):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exit_:
        main(["train", "mvdiff", "--help"])
    assert exit_.value.code == 0
    for preset in ("default", "no-input-recon", "no-mv-attention", "views-4", "views-8", "dense", "tiny"):
        assert preset in buf.getvalue()
    code = main([
        "train", "mvdiff", "tiny", "--out-dir", str(tmp_path), "--total-steps", "1", "--warmup-steps", "0", "--device", "cpu",
        "--no-progress", "--no-tensorboard", "--image-every", "0",
    ])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 1 and (Path(summary["pretrained"]) / "facelift_mvdiffusion.json").is_file()


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import facelift.training.mvdiff_trainer as trainer

    join_job(rank, world, port)
    captured = capture_builds(trainer, "_build_diffusion")
    train_mvdiff(_mvdiff(Path(out_dir) / "run", total_steps=2, image_every=0))
    write_replica_hash(captured["model"], out_dir, rank)


def test_ddp_two_processes_keep_replicas_identical(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    hashes = [(tmp_path / f"rank{r}.sha").read_text() for r in range(2)]
    assert hashes[0] == hashes[1]
    assert (tmp_path / "run" / "final" / "facelift_mvdiffusion.json").is_file()
