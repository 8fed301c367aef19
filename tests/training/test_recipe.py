"""``facelift train all``: the whole recipe in order, resumable stage by stage, assembled into pipeline weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from facelift.cli.main import main
from facelift.models.gslrm import GSLRM
from facelift.models.mvdiffusion import MultiViewDiffusion
from facelift.pipeline.facelift import DEFAULT_WEIGHTS, FaceLiftPipeline
from facelift.training.recipe import (
    DEFAULT_FIT_INPUT_PARAMS,
    DEFAULT_FIT_INPUT_STEPS,
    DEFAULT_NUM_SAMPLES,
    RECIPE_STAGES,
    RecipeConfig,
    assemble_weights,
    assembled_reconstructors,
    recipe_stage_configs,
)


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recipe")
    assert main(["train", "all", "--preset", "tiny", "--out-dir", str(out), "--steps-scale", "0.5", "--device", "cpu", "--no-progress"]) == 0
    return out


def test_tiny_recipe_trains_every_stage_and_assembles_loadable_weights(tiny_recipe, capsys):
    state = json.loads((tiny_recipe / "recipe.json").read_text())
    assert list(state) == ["vae", "mvdiff", "gslrm-objects", "gslrm-heads"]
    assert all(s["steps"] == 2 and Path(s["final"]).is_dir() for s in state.values())
    # The heads stage started from the objects stage (stage II of the paper), with a fresh optimiser.
    heads_log = [json.loads(line) for line in (tiny_recipe / "gslrm-heads" / "log.jsonl").read_text().splitlines() if line.strip()]
    assert heads_log, "the heads stage logged nothing"
    pipe = FaceLiftPipeline.from_pretrained(tiny_recipe / "weights")
    # The assembled models are the stages' final models (fp16 in the folder).
    heads = GSLRM.from_pretrained(tiny_recipe / "gslrm-heads" / "final")
    for name, value in heads.state_dict().items():
        torch.testing.assert_close(pipe.reconstructor.state_dict()[name].float(), value.half().float(), rtol=0, atol=0)
    diffusion = MultiViewDiffusion.from_pretrained(tiny_recipe / "mvdiff" / "final")
    a, b = pipe.diffusion.unet.state_dict(), diffusion.unet.state_dict()
    assert all(torch.equal(a[k].float(), b[k].half().float()) for k in b)
    # The diffusion model was trained on the recipe's own VAE.
    vae = MultiViewDiffusion.from_pretrained(tiny_recipe / "mvdiff" / "final").vae.state_dict()
    from diffusers import AutoencoderKL

    trained_vae = AutoencoderKL.from_pretrained(tiny_recipe / "vae" / "final", local_files_only=True).state_dict()
    assert all(torch.equal(vae[k], trained_vae[k]) for k in trained_vae)


def test_running_the_recipe_again_skips_finished_stages(tiny_recipe, capsys):
    finals = {s: (tiny_recipe / s / "final" / "config.json") for s in ("gslrm-objects", "gslrm-heads")}
    before = {s: p.stat().st_mtime_ns for s, p in finals.items()}
    capsys.readouterr()
    assert main(["train", "all", "--preset", "tiny", "--out-dir", str(tiny_recipe), "--steps-scale", "0.5", "--device", "cpu", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [report[s]["skipped"] for s in ("vae", "mvdiff", "gslrm-objects", "gslrm-heads")] == ["finished"] * 4
    assert {s: p.stat().st_mtime_ns for s, p in finals.items()} == before
    assert report["assemble"]["total_bytes"] == sum(report["assemble"]["files"].values()) > 0


def test_stage_configs_follow_the_recipe(tmp_path):
    configs = recipe_stage_configs(RecipeConfig(out_dir=tmp_path, steps_scale=0.5, device="cpu"))
    assert list(configs) == ["vae", "gslrm-objects", "mvdiff", "gslrm-heads"]
    assert configs["mvdiff"].vae_from == tmp_path / "vae" / "final"
    assert configs["gslrm-objects"].data == "objects" and configs["gslrm-heads"].data == "heads"
    assert configs["gslrm-heads"].init_from == tmp_path / "gslrm-objects" / "final"
    assert configs["gslrm-heads"].lr < configs["gslrm-objects"].lr
    assert configs["vae"].total_steps == 1500 and configs["mvdiff"].total_steps == 400
    assert configs["vae"].crop_size == 32 and configs["vae"].posterior_noise == 0  # the VAE settings that keep colour
    # The default recipe trains the architecture that ships.
    shipped = json.loads((DEFAULT_WEIGHTS / "gslrm" / "config.json").read_text())
    assert configs["gslrm-heads"].model.to_dict() == {**configs["gslrm-heads"].model.to_dict(), **shipped}
    assert configs["gslrm-heads"].resolution == shipped["image_size"]


def test_from_shipped_continues_the_bundled_models(tmp_path):
    configs = recipe_stage_configs(RecipeConfig(out_dir=tmp_path, from_shipped=True))
    assert list(configs) == ["mvdiff", "gslrm-heads"]  # no VAE or objects stage
    assert configs["mvdiff"].init_from == DEFAULT_WEIGHTS / "mvdiffusion" and configs["mvdiff"].vae_from is None
    # The heads stage trains on clean renders: it continues the reconstructor for real views (gslrm-views/), and
    # assembly puts its result back there, beside the shipped pipeline reconstructor (trained on generated views).
    assert configs["gslrm-heads"].init_from == DEFAULT_WEIGHTS / "gslrm-views"
    assert configs["gslrm-heads"].model == GSLRM.from_pretrained(DEFAULT_WEIGHTS / "gslrm-views").config
    final = tmp_path / "gslrm-heads" / "final"
    assert assembled_reconstructors(final, DEFAULT_WEIGHTS) == (DEFAULT_WEIGHTS / "gslrm", final)
    assert assembled_reconstructors(final, None) == (final, None)  # the full recipe: one reconstructor


def test_from_shipped_weights_without_a_views_reconstructor_continue_their_only_one(tiny_recipe, tmp_path):
    configs = recipe_stage_configs(RecipeConfig(out_dir=tmp_path, from_shipped=True, shipped=tiny_recipe / "weights"))
    assert configs["gslrm-heads"].init_from == tiny_recipe / "weights" / "gslrm"
    final = tmp_path / "gslrm-heads" / "final"
    assert assembled_reconstructors(final, tiny_recipe / "weights") == (final, None)


def test_assemble_refuses_oversized_files(tiny_recipe, tmp_path):
    with pytest.raises(ValueError, match="over"):
        assemble_weights(tiny_recipe / "mvdiff" / "final", tiny_recipe / "gslrm-heads" / "final", tmp_path / "w", limit=10_000)
    # The folder is still written, for inspection, and prunes like the bundled weights (no reference crop box).
    meta = json.loads((tmp_path / "w" / "facelift_pipeline.json").read_text())
    assert meta["prune"]["crop_box"] is None
    # ... and asks for the bundled weights' photo fit and sample averaging.
    assert (meta["fit_input_steps"], meta["num_samples"]) == (DEFAULT_FIT_INPUT_STEPS, DEFAULT_NUM_SAMPLES)
    assert meta["fit_input_params"] == DEFAULT_FIT_INPUT_PARAMS == "appearance"


def test_bad_recipe_arguments_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "all", "--preset", "tiny", "--out-dir", str(tmp_path), "--stages", "assemble", "--device", "cpu"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "has not finished" in err and "Traceback" not in err
    assert not (tmp_path / "weights").exists()
    with pytest.raises(ValueError, match="steps_scale"):
        RecipeConfig(steps_scale=0)
    with pytest.raises(ValueError, match="unknown stage"):
        RecipeConfig(stages=("vae", "paint"))  # type: ignore[arg-type]
    assert RECIPE_STAGES[-1] == "assemble"
