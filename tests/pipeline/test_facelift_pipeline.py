"""The pipeline API on tiny random weights: stages alone and together, seeds, weights specs."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("mediapipe")
from _pipeline_helpers import SAMPLE_PHOTO, make_tiny_pipeline

from facelift.cameras import facelift_views
from facelift.pipeline.facelift import FaceLiftPipeline, resolve_weights


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> FaceLiftPipeline:
    return FaceLiftPipeline.from_pretrained(make_tiny_pipeline(tmp_path_factory.mktemp("weights") / "tiny"))


def test_photo_to_gaussians_with_timings(pipe):
    result = pipe(SAMPLE_PHOTO, seed=0, steps=2)
    assert result.input.image.shape == (3, 32, 32)
    assert result.views.shape == (6, 3, 32, 32) and result.view_names[0] == "front"
    assert tuple(result.cameras.batch_shape) == (6,)
    assert result.gaussians.num > 0 and len(result.gaussians.shape) == 1
    assert set(result.timings) == {"preprocess", "diffusion", "reconstruction"}
    again = pipe(SAMPLE_PHOTO, seed=0, steps=2)
    other = pipe(SAMPLE_PHOTO, seed=1, steps=2)
    assert torch.equal(result.views, again.views) and not torch.equal(result.views, other.views)
    assert torch.equal(result.gaussians.means, again.gaussians.means)


def test_stages_work_alone(pipe):
    views = pipe.generate_views(torch.rand(2, 3, 32, 32), seed=[3, 4], steps=1)
    assert views.shape == (2, 6, 3, 32, 32)
    # Reconstruction from the user's own posed images at another size (resized, cameras rescaled).
    images = torch.rand(6, 3, 48, 48)
    cams = facelift_views(resolution=48)
    g = pipe.reconstruct(images, cams, prune=False, resolution=32)
    assert g.num == 6 * 32 * 32 + 2
    renders = pipe.render(g, facelift_views(resolution=24)[:2])
    assert renders.shape == (2, 3, 24, 24)
    with pytest.raises(ValueError, match="one camera per image"):
        pipe.reconstruct(images, cams[:5])
    with pytest.raises(ValueError, match="multiple of the patch size"):
        pipe.reconstruct(torch.rand(6, 3, 30, 30), facelift_views(resolution=30))


def test_an_eight_view_diffusion_model_runs_end_to_end(tmp_path):
    from facelift.cameras import EIGHT_VIEW_NAMES
    from facelift.pipeline.export import ResultSettings, export_result

    eight = FaceLiftPipeline.from_pretrained(make_tiny_pipeline(tmp_path / "tiny"))
    eight.diffusion.set_view_names(EIGHT_VIEW_NAMES)
    saved = eight.save_pretrained(tmp_path / "eight")
    eight = FaceLiftPipeline.from_pretrained(saved)  # the view set is part of the saved model
    result = eight(SAMPLE_PHOTO, seed=0, steps=1)
    assert result.views.shape == (8, 3, 32, 32) and result.view_names == EIGHT_VIEW_NAMES
    torch.testing.assert_close(result.cameras.c2w, facelift_views(result.input.azimuth_deg, resolution=32, view_names=EIGHT_VIEW_NAMES).c2w)
    images, cameras = eight.reconstructor_inputs(result.input.image, result.views, result.input.azimuth_deg, select=(0, 3, 5))
    assert images.shape[0] == 3 and torch.equal(cameras.c2w, result.cameras.c2w[[0, 3, 5]])
    with pytest.raises(ValueError, match="expected 8 views"):
        eight.reconstructor_inputs(result.input.image, result.views[:6])
    out = tmp_path / "out"
    out.mkdir()
    export_result(out, result, ResultSettings(resolution=32, turntable_frames=0, mesh_format="none"))
    assert sorted(p.name for p in (out / "views").glob("*.png"))[3] == "003_back_right.png"


def test_fitting_the_photo_moves_its_render_toward_it_and_travels_with_the_weights(pipe, tmp_path):

    plain = pipe(SAMPLE_PHOTO, seed=0, steps=1)
    fitted = pipe(SAMPLE_PHOTO, seed=0, steps=1, fit_input=20)
    assert set(fitted.timings) == {"preprocess", "diffusion", "reconstruction", "input_fit"}
    camera = facelift_views(fitted.input.azimuth_deg, resolution=32)[:1]

    def error(gaussians) -> float:
        return (pipe.render(gaussians, camera)[0] - fitted.input.image).abs().mean().item()

    assert error(fitted.gaussians) < 0.9 * error(plain.gaussians), (error(fitted.gaussians), error(plain.gaussians))
    assert fitted.gaussians.num == plain.gaussians.num
    # Other cameras of the photo's Gaussians: fit_input resizes the photo to the reconstructor's size.
    assert pipe.fit_input(plain.gaussians, torch.nn.functional.interpolate(plain.input.image[None], size=48)[0], plain.input.azimuth_deg, 2).num == plain.gaussians.num
    # The default number of steps is part of the weights (missing: 0, as folders written before it existed).
    custom = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, fit_input_steps=3)
    folder = custom.save_pretrained(tmp_path / "w")
    loaded = FaceLiftPipeline.from_pretrained(folder)
    assert loaded.fit_input_steps == 3 and "input_fit" in loaded(SAMPLE_PHOTO, seed=0, steps=1).timings
    assert "input_fit" not in loaded(SAMPLE_PHOTO, seed=0, steps=1, fit_input=0).timings
    meta = json.loads((folder / "facelift_pipeline.json").read_text())
    del meta["fit_input_steps"]
    (folder / "facelift_pipeline.json").write_text(json.dumps(meta))
    assert FaceLiftPipeline.from_pretrained(folder).fit_input_steps == 0
    with pytest.raises(ValueError, match="fit_input_steps"):
        FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, fit_input_steps=-1)


def test_photo_fit_parameters_are_part_of_the_weights(pipe, tmp_path):
    from facelift.pipeline.refine import REFINE_PARAMS, RefineSettings

    custom = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, fit_input_steps=2, fit_input_params="appearance")
    assert custom.fit_settings() == RefineSettings(steps=2, params=("opacities", "sh"))
    assert custom.fit_settings(4).params == ("opacities", "sh") and custom.fit_settings(0) is None
    assert custom.fit_settings(RefineSettings(steps=3)).params == REFINE_PARAMS  # explicit settings win
    assert custom.fit_settings(1).params == ("opacities", "sh") and custom.fit_settings(1, "colour").params == ("sh",)
    folder = custom.save_pretrained(tmp_path / "w")
    meta = json.loads((folder / "facelift_pipeline.json").read_text())
    assert meta["fit_input_params"] == "appearance"  # a preset by its name, other subsets as a list
    loaded = FaceLiftPipeline.from_pretrained(folder)
    assert loaded.fit_input_params == ("opacities", "sh")
    result = loaded(SAMPLE_PHOTO, seed=0, steps=1)
    plain = loaded(SAMPLE_PHOTO, seed=0, steps=1, fit_input=0)
    assert torch.equal(result.gaussians.means, plain.gaussians.means)  # the geometry stayed where the reconstructor put it
    assert not torch.equal(result.gaussians.sh, plain.gaussians.sh)
    assert "input_fit" in result.timings
    # Any subset round-trips; a folder without the key moves everything, as before the setting existed.
    meta["fit_input_params"] = ["sh", "scales"]
    (folder / "facelift_pipeline.json").write_text(json.dumps(meta))
    assert FaceLiftPipeline.from_pretrained(folder).fit_input_params == ("scales", "sh")
    odd = FaceLiftPipeline.from_pretrained(folder).save_pretrained(tmp_path / "odd")
    assert json.loads((odd / "facelift_pipeline.json").read_text())["fit_input_params"] == ["scales", "sh"]
    del meta["fit_input_params"]
    (folder / "facelift_pipeline.json").write_text(json.dumps(meta))
    assert FaceLiftPipeline.from_pretrained(folder).fit_input_params == REFINE_PARAMS
    with pytest.raises(ValueError, match="refinement parameters"):
        FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, fit_input_params="geometry")


def test_averaging_samples_is_the_mean_of_seeded_samples_and_travels_with_the_weights(pipe, tmp_path):

    from facelift.pipeline.facelift import sample_seed

    images = torch.rand(2, 3, 32, 32)
    one = pipe.generate_views(images, seed=[3, 4], steps=2, num_samples=1)
    mean = pipe.generate_views(images, seed=[3, 4], steps=2, num_samples=3)
    # Sample k of a subject is the single sample of seed sample_seed(seed, k); sample 0 is the plain result.
    assert sample_seed(3, 0) == 3 and len({sample_seed(s, k) for s in (3, 4) for k in range(3)}) == 6
    extra = [pipe.generate_views(images, seed=[sample_seed(3, k), sample_seed(4, k)], steps=2) for k in (1, 2)]
    torch.testing.assert_close(mean, (one + extra[0] + extra[1]) / 3, atol=1e-5, rtol=0)
    assert (extra[0] - one).abs().mean() > 1e-3  # the samples differ, so the mean is not one of them
    # The reconstructor runs on each sample and their pixel-aligned Gaussians are averaged one to one.
    samples = pipe.generate_samples(images, seed=[3, 4], steps=2, num_samples=3)
    assert samples.shape == (2, 3, 6, 3, 32, 32)
    torch.testing.assert_close(samples.mean(1), mean)
    inputs, cams = pipe.reconstructor_inputs(images[0], samples[0], 0.0, select=(0, 2, 3, 4))
    assert inputs.shape == (3, 4, 3, 32, 32) and tuple(cams.batch_shape) == (4,)
    averaged = pipe.reconstruct(inputs, cams, prune=False)
    each = [pipe.reconstruct(inputs[k], cams, prune=False) for k in range(3)]
    assert averaged.num == each[0].num
    torch.testing.assert_close(averaged.means, sum(g.means for g in each) / 3, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(averaged.opacities, sum(g.opacities for g in each) / 3, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="one camera per image"):
        pipe.reconstruct(inputs, cams[:3])
    # The pipeline's own count is a weights setting (missing: 1); a call can override it.
    custom = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, num_samples=2)
    folder = custom.save_pretrained(tmp_path / "w")
    loaded = FaceLiftPipeline.from_pretrained(folder)
    assert loaded.num_samples == 2
    two = loaded(SAMPLE_PHOTO, seed=0, steps=1)
    single = loaded(SAMPLE_PHOTO, seed=0, steps=1, num_samples=1)
    torch.testing.assert_close(single.views, pipe(SAMPLE_PHOTO, seed=0, steps=1).views)
    assert not torch.allclose(two.views, single.views)
    meta = json.loads((folder / "facelift_pipeline.json").read_text())
    del meta["num_samples"]
    (folder / "facelift_pipeline.json").write_text(json.dumps(meta))
    assert FaceLiftPipeline.from_pretrained(folder).num_samples == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_samples"):
            FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, num_samples=bad)
    with pytest.raises(ValueError, match="num_samples"):
        pipe.generate_views(images, seed=0, steps=1, num_samples=0)
    with pytest.raises(ValueError, match="2 seeds for 1 images"):
        pipe.generate_views(images[:1], seed=[1, 2], steps=1)


def test_refinement_is_timed_and_keeps_the_gaussians(pipe):
    plain = pipe(SAMPLE_PHOTO, seed=0, steps=1)
    refined = pipe(SAMPLE_PHOTO, seed=0, steps=1, refine=3)
    assert set(refined.timings) == {"preprocess", "diffusion", "reconstruction", "refinement"}
    assert refined.gaussians.num == plain.gaussians.num and not torch.equal(refined.gaussians.sh, plain.gaussians.sh)
    images, cameras = torch.rand(6, 3, 16, 16), facelift_views(resolution=16)
    fitted = pipe.reconstruct(images, cameras, refine=3)
    assert fitted.num == pipe.reconstruct(images, cameras).num


def test_pruning_settings_travel_with_the_weights(tmp_path, pipe):

    from facelift.gaussians import PruneSettings

    custom = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, prune_settings=PruneSettings(opacity_threshold=0.5, crop_box=None))
    folder = custom.save_pretrained(tmp_path / "w")
    assert json.loads((folder / "facelift_pipeline.json").read_text())["prune"]["opacity_threshold"] == 0.5
    loaded = FaceLiftPipeline.from_pretrained(folder)
    assert loaded.prune_settings == custom.prune_settings
    g = loaded.reconstruct(torch.rand(6, 3, 16, 16), facelift_views(resolution=16))
    assert (g.opacities > 0.5).all()
    meta = json.loads((folder / "facelift_pipeline.json").read_text())
    del meta["prune"]  # folders written before the setting existed: the reference rules
    (folder / "facelift_pipeline.json").write_text(json.dumps(meta))
    assert FaceLiftPipeline.from_pretrained(folder).prune_settings == PruneSettings()
    meta["prune"] = {"opacity": 0.1}
    (folder / "facelift_pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown pruning settings"):
        FaceLiftPipeline.from_pretrained(folder)


def test_reconstructor_only_loads_each_kind_of_weights(tmp_path, pipe, monkeypatch):
    from facelift.gaussians import PruneSettings
    from facelift.models.gslrm import GSLRM
    from facelift.pipeline.facelift import ReconstructorOnly

    folder = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, prune_settings=PruneSettings(opacity_threshold=0.3)).save_pretrained(tmp_path / "w")
    from_folder = ReconstructorOnly.load(folder)  # a pipeline folder: its GS-LRM and its pruning, no diffusion model
    assert from_folder.diffusion is None and from_folder.prune_settings.opacity_threshold == 0.3
    images, cams = torch.rand(6, 3, 16, 16), facelift_views(resolution=16)
    full = pipe.reconstruct(images, cams, prune=False)
    torch.testing.assert_close(from_folder.reconstruct(images, cams).means, from_folder.prune_settings.apply(full).means)
    bare = ReconstructorOnly.load(folder / "gslrm")  # a training run's final/: pruned like facelift's own weights
    assert bare.prune_settings == PruneSettings.procedural()
    ckpt = tmp_path / "ckpt_0000000000021125.pt"  # the authors' checkpoint alone: the reference rules
    ckpt.write_bytes(b"stand-in")
    monkeypatch.setattr(GSLRM, "from_official_checkpoint", classmethod(lambda cls, path: pipe.reconstructor))
    assert ReconstructorOnly.load(ckpt).prune_settings == PruneSettings()
    with pytest.raises(FileNotFoundError, match="not a facelift weights folder"):
        ReconstructorOnly.load(tmp_path / "nothing")


def test_a_second_reconstructor_for_real_views_round_trips_and_serves_reconstructor_only(tmp_path, pipe):
    # A pipeline whose GS-LRM was trained on generated views keeps a second one for real posed views: the pipeline
    # runs its own, ReconstructorOnly (reconstruct-views, eval --mode reconstructor) the second.
    from facelift.models.gslrm import GSLRM
    from facelift.pipeline.facelift import ReconstructorOnly

    views_model = GSLRM(pipe.reconstructor.config)
    views_model.init_weights(torch.Generator().manual_seed(5))
    folder = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, views_reconstructor=views_model).save_pretrained(tmp_path / "w")
    assert json.loads((folder / "facelift_pipeline.json").read_text())["gslrm_views"] == "gslrm-views"
    images, cams = torch.rand(6, 3, 16, 16), facelift_views(resolution=16)
    own, other = (ReconstructorOnly(m).reconstruct(images, cams, prune=False).means for m in (pipe.reconstructor, views_model))
    assert not torch.allclose(own, other)
    loaded = FaceLiftPipeline.from_pretrained(folder)
    torch.testing.assert_close(loaded.reconstruct(images, cams, prune=False).means, own)
    torch.testing.assert_close(ReconstructorOnly.load(folder).reconstruct(images, cams, prune=False).means, other)
    again = loaded.save_pretrained(tmp_path / "again")  # kept through a load and save
    torch.testing.assert_close(ReconstructorOnly.load(again).reconstruct(images, cams, prune=False).means, other)
    plain = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor).save_pretrained(tmp_path / "plain")
    assert not (plain / "gslrm-views").exists()
    torch.testing.assert_close(ReconstructorOnly.load(plain).reconstruct(images, cams, prune=False).means, own)


def test_weights_specs_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a facelift weights folder"):
        resolve_weights(tmp_path)
    with pytest.raises(ValueError, match="official:GSLRM_CKPT,DIFFUSION_FOLDER"):
        resolve_weights("official:only-one")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        resolve_weights(f"official:{tmp_path / 'ckpt.pt'},{tmp_path}")
