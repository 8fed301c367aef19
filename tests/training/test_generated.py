"""Generated training views: the diffusion model's views of training subjects, written, read back and fed to
the reconstructor's trainer in place of the clean fixed views."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _cli_helpers import run_cli
from _pipeline_helpers import make_tiny_pipeline

from facelift.models.mvdiffusion import MultiViewDiffusion, MVDiffusionConfig
from facelift.synthetic.dataset import generate, load_subject
from facelift.training.generated import GeneratedViews, GeneratedViewsSettings, _subject_seed, write_generated_views
from facelift.training.gslrm_trainer import GSLRM_PRESETS, _ReconstructorSamples, train

SETTINGS = GeneratedViewsSettings(samples=2, steps=2, batch_size=2)


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> Path:
    """Three training heads at 16 px (the tiny reconstructor's size), six fixed + two random views each."""
    root = tmp_path_factory.mktemp("heads")
    generate("heads", root, 3, "train", 16, 2, 0, 1, False, supersample=1)
    return root / "train"


@pytest.fixture(scope="module")
def diffusion() -> MultiViewDiffusion:
    return MultiViewDiffusion.from_config(MVDiffusionConfig.tiny(), seed=0).eval()


@pytest.fixture(scope="module")
def generated(heads, diffusion, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    summary = write_generated_views(diffusion, heads, out, SETTINGS)
    assert (summary.written, summary.skipped) == (3, 0)
    return out


def test_strips_hold_the_models_samples_of_each_subjects_front_view(heads, diffusion, generated):
    reader = GeneratedViews(generated)
    assert (reader.num_samples, reader.num_views) == (2, 6)
    assert sorted(p.name for p in generated.iterdir()) == ["generated.json", "head_000000", "head_000001", "head_000002"]
    views = reader.load("head_000001", 1)
    assert views.shape == (6, 3, 32, 32) and 0 <= float(views.min()) and float(views.max()) <= 1
    # The same subject sampled alone with its recorded seed: equal up to the PNG's 8 bits.
    rgba = load_subject(heads / "head_000001", views=[0]).rgba
    front = rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])
    gen = torch.Generator().manual_seed(_subject_seed(SETTINGS.seed, "head_000001", 1))
    with torch.no_grad():
        direct = diffusion.sample(front, num_inference_steps=2, guidance_scale=3.0, solver="dpmsolver++", generator=[gen]).images[0]
    torch.testing.assert_close(views, direct.clamp(0, 1), atol=0.6 / 255, rtol=0)
    # The two samples differ (different noise), the subjects differ.
    assert not torch.equal(reader.load("head_000001", 0), views)
    assert not torch.equal(reader.load("head_000000", 1), views)


def test_resumes_and_refuses_other_settings(heads, diffusion, generated, tmp_path):
    again = write_generated_views(diffusion, heads, generated, SETTINGS)
    assert (again.written, again.skipped) == (0, 3)
    with pytest.raises(ValueError, match="other settings"):
        write_generated_views(diffusion, heads, generated, replace(SETTINGS, steps=3))
    # A partial folder (one subject) completes the rest with the same pixels.
    part = tmp_path / "part"
    write_generated_views(diffusion, heads, part, replace(SETTINGS, batch_size=1), start=1, count=1)
    assert sorted(p.name for p in part.iterdir()) == ["generated.json", "head_000001"]
    rest = write_generated_views(diffusion, heads, part, SETTINGS)  # another batch size: same pixels, so allowed
    assert (rest.written, rest.skipped) == (2, 1)
    for name in ("head_000000", "head_000001", "head_000002"):  # batch-independent up to float rounding
        torch.testing.assert_close(GeneratedViews(part).load(name, 0), GeneratedViews(generated).load(name, 0), atol=1 / 255, rtol=0)


def test_bad_arguments_and_folders_give_clear_errors(heads, diffusion, generated, tmp_path):
    with pytest.raises(ValueError, match="past the 3 subjects"):
        write_generated_views(diffusion, heads, tmp_path / "x", SETTINGS, start=3)
    with pytest.raises(ValueError, match="samples >= 1"):
        GeneratedViewsSettings(samples=0)
    with pytest.raises(FileNotFoundError, match="generated.json"):
        GeneratedViews(tmp_path)
    with pytest.raises(ValueError, match="sample must be in 0..1"):
        GeneratedViews(generated).load("head_000000", 2)
    with pytest.raises(FileNotFoundError, match="head_000009"):
        GeneratedViews(generated).load("head_000009", 0)


def _config(heads: Path, generated: Path, out: Path, **overrides):
    base = replace(
        GSLRM_PRESETS["tiny"], data="heads", data_root=heads, num_random=2, views_per_sample=8, input_views=6, inputs="fixed",
        generated_root=generated, generated_inputs=1.0, out_dir=out, total_steps=2, warmup_steps=1, ckpt_every=2,
        image_every=0, log_every=1, device="cpu", progress=False, tensorboard=False,
    )  # fmt: skip
    return replace(base, **overrides)


def test_trainer_feeds_generated_views_with_clean_targets(heads, generated, tmp_path):
    data = _ReconstructorSamples(_config(heads, generated, tmp_path))
    reader = GeneratedViews(generated)
    for k in range(4):
        item = data[k]
        name = data.folder.folders[data._subject(k)[1]].name
        candidates = [torch.nn.functional.interpolate(reader.load(name, s), size=16, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1) for s in range(2)]
        assert item["input_images"].shape == (6, 3, 16, 16)
        assert any(torch.equal(item["input_images"], c) for c in candidates)  # this subject's views, one of its samples
        assert not torch.equal(item["input_images"], item["images"][:6])  # the targets stay the renders
    # Probability 0.5: some samples get the generated views, the others their clean fixed views (every item
    # carries input_images, so batches collate).
    half = _ReconstructorSamples(_config(heads, generated, tmp_path, generated_inputs=0.5))
    clean = [torch.equal(half[k]["input_images"], half[k]["images"][:6]) for k in range(12)]
    assert any(clean) and not all(clean)


def test_trainer_checks_the_generated_folder_and_config(heads, diffusion, generated, tmp_path):
    with pytest.raises(ValueError, match="inputs='fixed'"):
        _config(heads, generated, tmp_path, inputs="random", input_views=4)
    with pytest.raises(ValueError, match="probability"):
        _config(heads, generated, tmp_path, generated_inputs=2.0)
    # A folder covering some subjects: training draws only those (generating is the costly part).
    part = tmp_path / "part"
    write_generated_views(diffusion, heads, part, SETTINGS, start=1, count=1)
    data = _ReconstructorSamples(_config(heads, part, tmp_path))
    assert len(data) == 1 and {data.folder.folders[data._subject(k)[1]].name for k in range(5)} == {"head_000001"}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "generated.json").write_text((part / "generated.json").read_text())
    with pytest.raises(ValueError, match="none of the subjects"):
        _ReconstructorSamples(_config(heads, empty, tmp_path))


def test_short_training_run_on_generated_inputs(heads, generated, tmp_path):
    result = train(_config(heads, generated, tmp_path))
    assert result.step == 2 and result.skipped_steps == 0 and result.pretrained_dir is not None


def test_cli_writes_generated_views_and_reports_bad_input(heads, tmp_path, capsys):
    weights = make_tiny_pipeline(tmp_path / "weights")
    out = tmp_path / "gen"
    argv = ["synth", "generated", "--data", str(heads), "--out", str(out), "--weights", str(weights), "--count", "2", "--samples", "1", "--steps", "2", "--device", "cpu", "--no-progress"]
    assert run_cli(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["written"], line["skipped"]) == (2, 0)
    assert GeneratedViews(out).load("head_000001", 0).shape == (6, 3, 32, 32)
    assert run_cli([*argv[:3], str(tmp_path / "missing"), *argv[4:]]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert run_cli([*argv[:7], str(tmp_path / "nothing"), *argv[8:]]) == 1
    assert "not default, a weights folder" in capsys.readouterr().err
