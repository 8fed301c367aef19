"""The bundled default weights: file sizes, strict loading, and small stored reference outputs (a silent
change of architecture or weights fails here). Regenerate the reference with
``python scripts/make_default_weights_reference.py`` after retraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from facelift.cameras import facelift_views  # noqa: E402
from facelift.pipeline.facelift import DEFAULT_WEIGHTS, FaceLiftPipeline, ReconstructorOnly  # noqa: E402

REFERENCE = Path(__file__).with_name("default_weights_reference.npz")
MIB = 2**20


def reference_outputs() -> dict[str, torch.Tensor]:
    """Denoiser output, reconstructor outputs (the pipeline's, and :class:`ReconstructorOnly`'s, which is another
    model when the folder has a ``gslrm-views/``) and a 2-step sample of the default weights on fixed inputs."""
    pipe = FaceLiftPipeline.from_pretrained()
    size = pipe.diffusion.image_size
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=g)
    s = pipe.diffusion.latent_size
    noisy = torch.randn(1, pipe.diffusion.num_views, 4, s, s, generator=g)
    with torch.no_grad():
        cond = pipe.diffusion.encode_latents(image)
        denoised = pipe.diffusion(noisy, torch.tensor([500]), cond, cond_images=image)
        views = torch.rand(6, 3, size, size, generator=g)
        gaussians = pipe.reconstruct(views, facelift_views(resolution=size), prune=False)
        real_views = ReconstructorOnly.load().reconstruct(views, facelift_views(resolution=size), prune=False)
    sample = pipe.generate_views(image, seed=0, steps=2, solver="dpmsolver++", num_samples=1)
    return {
        "denoiser": denoised[0, :, :, :4, :4].contiguous(),
        "means": gaussians.means[:256].contiguous(),
        "opacities": gaussians.opacities[:256].contiguous(),
        "views_means": real_views.means[:256].contiguous(),
        "sample": sample[0, :, :, :8, :8].contiguous(),
    }


def test_shipped_files_fit_the_limits():
    files = [p for p in DEFAULT_WEIGHTS.rglob("*") if p.is_file()]
    assert (DEFAULT_WEIGHTS / "facelift_pipeline.json").is_file() and len(files) > 5
    assert max(p.stat().st_size for p in files) <= 16 * MIB
    assert sum(p.stat().st_size for p in files) <= 60 * MIB
    assert all(p.read_bytes()[:1] != b"\x80" for p in files if p.suffix in (".bin", ".pt"))  # no pickles


def test_default_weights_prune_without_the_reference_crop_box():
    # The procedural heads' shoulders reach outside the reference's crop box (about 3.5 dB of novel-view
    # PSNR on the held-out set, see the model card).
    from facelift.gaussians import PruneSettings

    assert FaceLiftPipeline.from_pretrained().prune_settings == PruneSettings.procedural()


def test_default_weights_ask_for_the_photo_fit_and_two_averaged_samples():
    # Measured on the held-out heads (docs/evaluation.md): photo fit +0.64 dB, two samples +0.36 dB; the fit moving
    # only opacities and colours +0.36 dB over moving every parameter (twenty-third session, 20 heads).
    pipe = FaceLiftPipeline.from_pretrained()
    assert (pipe.fit_input_steps, pipe.num_samples) == (50, 2)
    assert pipe.fit_input_params == ("opacities", "sh")


@pytest.fixture(scope="module")
def held_out_head():
    """Held-out head 1 rendered on the fly (64 px): the six FaceLift views and 8 random ones."""
    from facelift.evaluation.evalset import EvalSet

    return EvalSet(subjects=2, num_random=8, resolution=64)[1]


@pytest.fixture(scope="module")
def default_pipe():
    return FaceLiftPipeline.from_pretrained()


def test_bundled_reconstructor_quality_on_a_held_out_head(held_out_head):
    # A quality floor, not a stored output: the held-out head's six ground-truth views in (through
    # ReconstructorOnly, as `facelift reconstruct-views` and `facelift eval --mode reconstructor`), 8 random views
    # scored.
    # Measured 2026-11-28 with the eleventh session's reconstructor: 25.68 dB feed-forward and 26.37 dB after 25
    # refinement steps (the tenth session's: 25.35 and 26.12; the ninth's: 25.02 and 25.98; the eighth's: 23.45
    # and 25.42; with the reference crop box 20.56, which this floor rejects).
    from facelift.evaluation.metrics import psnr

    subject, pipe = held_out_head, ReconstructorOnly.load()
    novel = subject.cameras[6:]

    def score(gaussians) -> float:
        return psnr(pipe.render(gaussians, novel).clamp(0, 1), subject.images[6:]).mean().item()

    feed_forward = score(pipe.reconstruct(subject.images[:6], subject.cameras[:6]))
    refined = score(pipe.reconstruct(subject.images[:6], subject.cameras[:6], refine=25))
    assert feed_forward > 24.0, feed_forward
    assert refined > feed_forward + 0.5, (feed_forward, refined)


def test_fitting_the_photo_helps_the_bundled_pipeline_on_a_held_out_head(held_out_head, default_pipe):
    # The held-out head's front view as the photo: six views generated (DPM-Solver++, 10 steps), reconstructed,
    # then fitted to the photo with the weights' default steps and parameters (opacities and colours); the photo
    # itself and 8 random views scored against the ground truth. Measured 2026-11-30 with the twenty-fourth session's
    # weights: the photo 22.13 -> 24.82 dB, the novel views 21.51 -> 21.83 dB (heads 0, 2 and 3: +1.08, +1.00 and
    # +0.32). Over 20 held-out heads with the eval's settings (two samples, DPM-Solver++ 20) this fit gains +0.32 ±
    # 0.08 dB at the novel views over no fit (SSIM -0.0012 ± 0.0012; docs/evaluation.md), so the novel views must
    # gain here too. Until the twenty-third session the fit moved every parameter and was neutral at the novel views
    # (the assertion was "lose no more than 0.15 dB"); earlier models on this head, novel views before -> after: the
    # twenty-second session's diffusion model 21.70 -> 21.80 (photo 22.12 -> 26.93); the twenty-first session's
    # reconstructor 21.53 -> 21.62 (photo 22.24 -> 26.95); the twentieth session's diffusion model 21.46 -> 21.54 (photo 21.95 -> 26.84); the nineteenth
    # session's reconstructor 21.41 -> 21.39 (photo 22.07 -> 26.79); the eighteenth session's diffusion model 20.73
    # -> 20.89 (photo 21.77 -> 26.70); the seventeenth session's weights 20.99 -> 21.05; the sixteenth session's
    # reconstructor 21.12 -> 21.36; the fifteenth session's diffusion model with the eleventh's reconstructor 19.44
    # -> 19.60; the fourteenth's 18.75 -> 18.96; the thirteenth's 16.58 -> 17.64; the twelfth's 16.89 -> 17.07; the
    # third session's diffusion model with the eleventh session's reconstructor 13.62 -> 14.22. One diffusion
    # sample, as before the weights asked for two.
    from facelift.evaluation.metrics import psnr

    subject, pipe = held_out_head, default_pipe
    assert pipe.fit_input_steps == 50 and pipe.fit_input_params == ("opacities", "sh")
    photo = subject.input_image
    views = pipe.generate_views(photo[None], seed=1, steps=10, solver="dpmsolver++", num_samples=1)[0]
    images, cameras = pipe.reconstructor_inputs(photo, views, 0.0)
    plain = pipe.reconstruct(images, cameras)
    fitted = pipe.fit_input(plain, photo, 0.0)

    def score(gaussians, cams, target) -> float:
        return psnr(pipe.render(gaussians, cams).clamp(0, 1), target).mean().item()

    photo_before, photo_after = score(plain, cameras[:1], photo[None]), score(fitted, cameras[:1], photo[None])
    assert photo_after > photo_before + 2.0, (photo_before, photo_after)  # the fit does what it is for
    before = score(plain, subject.cameras[6:], subject.images[6:])
    after = score(fitted, subject.cameras[6:], subject.images[6:])
    assert after > before + 0.1, (before, after)  # and the views it was not fitted to get better
    assert torch.equal(fitted.means, plain.means)  # the geometry is the reconstructor's
    assert after > 20.5, after  # a floor for the whole pipeline (measured 21.83; 19.60 with the fifteenth session's weights)


def test_from_pretrained_loads_the_defaults_and_reproduces_the_reference():
    assert REFERENCE.is_file(), "run python scripts/make_default_weights_reference.py"
    stored = np.load(REFERENCE)
    got = reference_outputs()
    assert set(stored.files) == set(got)
    for key, value in got.items():
        np.testing.assert_allclose(value.numpy(), stored[key], rtol=1e-3, atol=2e-3, err_msg=key)


def test_readme_command_runs_on_the_bundled_weights(tmp_path):
    # The README's first command with fewer steps and frames (the full one is timed in the model card).
    from _cli_helpers import run_cli

    pytest.importorskip("mediapipe")
    out = tmp_path / "astronaut"
    code = run_cli(["reconstruct", "--sample", "-o", str(out), "--steps", "3", "--frames", "4", "--resolution", "64", "--device", "cpu"])
    assert code == 0
    for name in ("input.png", "multiview.png", "gaussians.ply", "gaussians.splat", "turntable.mp4", "mesh.glb", "timings.json"):
        assert (out / name).is_file(), name
