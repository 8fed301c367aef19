"""``facelift reconstruct``: every output file on the sample photo, batches, and the bad-input matrix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("mediapipe")
from _cli_helpers import listing, run_cli
from _pipeline_helpers import SAMPLE_PHOTO, make_tiny_pipeline

FAST = ["--steps", "2", "--frames", "6", "--resolution", "48", "--no-progress"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return make_tiny_pipeline(tmp_path_factory.mktemp("weights") / "tiny")


def _run(inputs: list[str], out: Path, weights: Path, *extra: str) -> int:
    return run_cli(["reconstruct", *inputs, "-o", str(out), "--weights", str(weights), *FAST, *extra])


def test_sample_photo_writes_every_valid_output(tmp_path, weights, capsys):
    out = tmp_path / "astronaut"
    assert _run([str(SAMPLE_PHOTO)], out, weights, "--json") == 0
    for name in ("input.png", "multiview.png", "gaussians.ply", "gaussians.splat", "turntable.mp4", "mesh.glb", "timings.json", "result.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "views").iterdir())[:2] == ["000_front.png", "001_front_right.png"]
    assert len(list((out / "renders").glob("*.png"))) == 6
    from plyfile import PlyData

    ply = PlyData.read(str(out / "gaussians.ply"))["vertex"]
    names = {p.name for p in ply.properties}
    assert {"x", "y", "z", "f_dc_0", "f_rest_44", "opacity", "scale_0", "rot_3"} <= names and ply.count > 0
    assert (out / "gaussians.splat").stat().st_size == 32 * ply.count
    import imageio.v3 as iio

    frames = list(iio.imiter(out / "turntable.mp4"))
    assert len(frames) == 6 and frames[0].shape[:2] == (48, 48)
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.load(out / "mesh.glb", force="mesh")
    assert len(mesh.faces) > 0
    timings = json.loads((out / "timings.json").read_text())
    assert {"preprocess", "diffusion", "reconstruction", "rendering"} <= set(timings)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["num_gaussians"] == ply.count and summary["faces_found"] == 1 and summary["seed"] == 0
    with Image.open(out / "input.png") as img:
        assert img.size == (32, 32)
    # Same seed, same views.
    assert _run([str(SAMPLE_PHOTO)], tmp_path / "again", weights) == 0
    assert np.array_equal(np.asarray(Image.open(out / "multiview.png")), np.asarray(Image.open(tmp_path / "again" / "multiview.png")))


@pytest.mark.parametrize(
    "flag, recorded, stage",
    [("--refine-steps", "refine_steps", "refinement"), ("--fit-input-steps", "fit_input_steps", "input_fit"), ("--num-samples", "num_samples", "diffusion")],
)
def test_refinement_photo_fit_and_sample_count_are_recorded_and_timed(tmp_path, weights, flag, recorded, stage):
    out = tmp_path / "refined"
    assert _run([str(SAMPLE_PHOTO)], out, weights, flag, "2", "--frames", "0", "--mesh-format", "none") == 0
    assert json.loads((out / "result.json").read_text())[recorded] == 2
    assert json.loads((out / "timings.json").read_text())[stage] > 0
    assert _run([str(SAMPLE_PHOTO)], tmp_path / "bad", weights, flag, "-1") != 0
    assert not (tmp_path / "bad").exists()


def test_photo_fit_parameters_are_chosen_and_recorded(tmp_path, weights, capsys):
    out = tmp_path / "colour"
    args = ("--fit-input-steps", "2", "--frames", "0", "--mesh-format", "none")
    assert _run([str(SAMPLE_PHOTO)], out, weights, *args, "--fit-input-params", "colour") == 0
    assert json.loads((out / "result.json").read_text())["fit_input_params"] == ["sh"]
    assert _run([str(SAMPLE_PHOTO)], tmp_path / "all", weights, *args) == 0  # the weights' own: all of them
    assert json.loads((tmp_path / "all" / "result.json").read_text())["fit_input_params"] == ["means", "scales", "opacities", "quats", "sh"]
    assert _run([str(SAMPLE_PHOTO)], tmp_path / "bad", weights, *args, "--fit-input-params", "geometry") != 0
    assert "refinement parameters must be one of all, appearance, colour" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_batch_continues_past_a_failure_and_exits_non_zero(tmp_path, weights, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SAMPLE_PHOTO, inputs / "a.png")
    (inputs / "b.png").write_bytes(b"not an image")
    shutil.copy(SAMPLE_PHOTO, inputs / "c.jpg")
    out = tmp_path / "out"
    code = _run([str(inputs)], out, weights, "--frames", "0", "--mesh-format", "none")
    err = capsys.readouterr().err
    assert code == 1
    assert "b.png: not an image file" in err and "1 of 3 inputs failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a", "c"]
    assert (out / "a" / "gaussians.ply").is_file() and (out / "c" / "gaussians.ply").is_file()


def _exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # displayed rotated by 90 degrees: stored sideways
    Image.open(SAMPLE_PHOTO).rotate(-90, expand=True).save(path.with_suffix(".jpg"), exif=exif)


def _gif(path: Path) -> None:
    first = Image.open(SAMPLE_PHOTO).convert("P")
    first.save(path.with_suffix(".gif"), save_all=True, append_images=[Image.new("P", first.size)])


def _rgba_face(path: Path) -> None:
    img = Image.open(SAMPLE_PHOTO).convert("RGBA")
    arr = np.asarray(img).copy()
    arr[:40, :, 3] = 0
    Image.fromarray(arr, "RGBA").save(path)


BAD_INPUTS = {
    "empty.png": (lambda p: p.write_bytes(b""), "the file is empty"),
    "text.jpg": (lambda p: p.write_text("hello"), "not an image file"),
    "truncated.png": (lambda p: p.write_bytes(SAMPLE_PHOTO.read_bytes()[:4000]), "truncated or corrupt"),
    "one_pixel.png": (lambda p: Image.new("RGB", (1, 1)).save(p), "too small"),
    "noise.png": (lambda p: Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)).save(p), "no face detected"),
    "missing.png": (lambda p: None, "no such file"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_fail_cleanly_with_nothing_left_behind(tmp_path, weights, capsys, name):
    make, message = BAD_INPUTS[name]
    path = tmp_path / name
    make(path)
    out = tmp_path / "out"
    assert _run([str(path)], out, weights) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facelift: error: ") and name in err[0] and message in err[0], err
    assert not out.exists() or listing(out) == []
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no staging folder left


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Image.open(SAMPLE_PHOTO).convert("L").save(p),  # grayscale
        lambda p: Image.open(SAMPLE_PHOTO).convert("CMYK").save(p.with_suffix(".jpg")),  # CMYK
        lambda p: Image.fromarray(np.asarray(Image.open(SAMPLE_PHOTO).convert("L"), np.uint16) * 257).save(p.with_suffix(".tif")),
        lambda p: Image.open(SAMPLE_PHOTO).convert("P").save(p),  # palette
        _rgba_face,  # RGBA keeps its alpha
        lambda p: Image.open(SAMPLE_PHOTO).resize((3000, 3000)).save(p.with_suffix(".jpg"), quality=80),
        _exif_rotated,
        _gif,
    ],
    ids=["grayscale", "cmyk", "16bit", "palette", "rgba", "large", "exif", "animated-gif"],
)
def test_unusual_but_valid_images_work(tmp_path, weights, make):
    make(tmp_path / "in.png")
    source = next(p for p in tmp_path.iterdir() if p.stem == "in")
    out = tmp_path / "out"
    assert _run([str(source)], out, weights, "--frames", "0", "--mesh-format", "none") == 0
    assert (out / "gaussians.ply").is_file()


def test_existing_output_and_unwritable_parent_are_refused_before_work(tmp_path, weights, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert _run([str(SAMPLE_PHOTO)], out, weights) == 1
    assert "not empty" in capsys.readouterr().err
    assert listing(out) == ["keep.txt"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run([str(SAMPLE_PHOTO)], blocker / "out", weights) == 1
    assert "not a folder" in capsys.readouterr().err


def test_own_cameras_and_a_raised_turntable(tmp_path, weights, capsys):
    import torch

    from facelift.cameras import orbit_cameras, read_opencv_cameras, write_opencv_cameras

    cams = orbit_cameras(torch.tensor([-30.0, 60.0, 180.0]), torch.tensor([5.0, 20.0, 0.0]), width=24, height=32)
    write_opencv_cameras(tmp_path / "cams.json", cams)
    out = tmp_path / "out"
    args = ["--cameras", str(tmp_path / "cams.json"), "--turntable-elevation", "25", "--mesh-format", "none"]
    assert _run([str(SAMPLE_PHOTO)], out, weights, *args) == 0
    back, files, _ = read_opencv_cameras(out / "cameras" / "opencv_cameras.json")
    assert files == ["cam_000.png", "cam_001.png", "cam_002.png"] and (back.width, back.height) == (24, 32)
    with Image.open(out / "cameras" / "cam_002.png") as im:
        assert (im.mode, im.size) == ("RGBA", (24, 32))
    # A bad camera file is refused before the models load, with nothing written.
    (tmp_path / "bad.json").write_text('{"frames": [{"w": 8}]}')
    capsys.readouterr()
    assert _run([str(SAMPLE_PHOTO)], tmp_path / "out2", weights, "--cameras", str(tmp_path / "bad.json")) == 1
    assert "bad.json" in capsys.readouterr().err and not (tmp_path / "out2").exists()


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    assert run_cli(["reconstruct", str(SAMPLE_PHOTO), "-o", str(tmp_path / "o"), "--weights", str(tmp_path / "none")]) == 1
    assert "not a facelift weights folder" in capsys.readouterr().err


def test_face_cut_by_the_border_is_reported(tmp_path, weights):
    Image.open(SAMPLE_PHOTO).crop((0, 90, 512, 512)).save(tmp_path / "cut.png")
    out = tmp_path / "out"
    assert _run([str(tmp_path / "cut.png")], out, weights, "--frames", "0", "--mesh-format", "none") == 0
    notes = json.loads((out / "result.json").read_text())["notes"]
    assert any("cut by the image border" in n for n in notes), notes


def test_disk_full_during_export_leaves_no_output(tmp_path, weights, capsys, monkeypatch):
    import errno

    from facelift.pipeline import export

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "save_ply", full)
    out = tmp_path / "out"
    assert _run([str(SAMPLE_PHOTO)], out, weights, "--frames", "0") == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(SAMPLE_PHOTO) in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_several_faces_use_the_largest_and_say_so(tmp_path, weights):
    photo = Image.open(SAMPLE_PHOTO)
    canvas = Image.new("RGB", (800, 512), "white")
    canvas.paste(photo, (0, 0))
    canvas.paste(photo.resize((256, 256)), (540, 100))
    canvas.save(tmp_path / "two.png")
    out = tmp_path / "out"
    assert _run([str(tmp_path / "two.png")], out, weights, "--frames", "0", "--mesh-format", "none") == 0
    result = json.loads((out / "result.json").read_text())
    assert result["faces_found"] == 2 and "2 faces found; using the largest" in result["notes"]
    assert result["face_box"][2] < 512


@pytest.fixture(scope="module")
def posed_views(tmp_path_factory) -> Path:
    from facelift.synthetic.dataset import generate

    root = tmp_path_factory.mktemp("posed")
    generate("heads", root, 1, split="test", resolution=32, num_random=2, workers=1, progress=False)
    return root / "test" / "head_000000"


def test_reconstruct_views_from_posed_images(tmp_path, weights, posed_views, capsys):
    out = tmp_path / "fit"
    args = ["reconstruct-views", str(posed_views), "-o", str(out), "--weights", str(weights), "--frames", "2", "--resolution", "32"]
    assert run_cli([*args, "--refine-steps", "2"]) == 0
    for name in ("gaussians.ply", "gaussians.splat", "multiview.png", "turntable.mp4", "summary.json", "views/opencv_cameras.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["views"] == 8 and summary["refine_steps"] == 2 and summary["num_gaussians"] > 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["out"] == str(out) and printed["timings"]["reconstruction_and_refinement"] > 0
    # Without refinement or pruning: every pixel of the 8 views (resized to the tiny model's 16 px) plus 2 tokens.
    assert run_cli([*args[:3], str(tmp_path / "raw"), *args[4:], "--refine-steps", "0", "--no-prune"]) == 0
    assert json.loads((tmp_path / "raw" / "summary.json").read_text())["num_gaussians"] == 8 * 16 * 16 + 2
    # A bare GS-LRM folder (a training run's final/) works too, pruned like facelift's own weights.
    assert run_cli([*args[:3], str(tmp_path / "bare"), "--weights", str(weights / "gslrm"), *args[6:], "--refine-steps", "0"]) == 0
    assert json.loads((tmp_path / "bare" / "summary.json").read_text())["prune"]["crop_box"] is None


def test_reconstruct_views_refuses_bad_folders(tmp_path, weights, posed_views, capsys):
    def fails(folder: Path, match: str) -> None:
        out = tmp_path / f"out-{folder.name}"
        assert run_cli(["reconstruct-views", str(folder), "-o", str(out), "--weights", str(weights), "--frames", "0"]) != 0
        assert match in capsys.readouterr().err and not out.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    fails(empty, "no opencv_cameras.json")
    resized = tmp_path / "resized"
    shutil.copytree(posed_views, resized)
    first = sorted((resized / "images").iterdir())[0]
    Image.open(first).resize((40, 40)).save(first)
    fails(resized, "but its camera is 32x32")
    missing = tmp_path / "missing"
    shutil.copytree(posed_views, missing)
    sorted((missing / "images").iterdir())[1].unlink()
    fails(missing, "no such file")
