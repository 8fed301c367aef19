"""Result folders: the files export_gaussians writes, and the all-or-nothing staging folder."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facelift.cameras import facelift_views, orbit_cameras
from facelift.cameras.io import read_opencv_cameras
from facelift.gaussians import load_ply
from facelift.gaussians.procedural import demo_bust
from facelift.pipeline.export import (
    ExportSettings,
    camera_image_names,
    check_output_dir,
    export_gaussians,
    render_cameras,
    staged_output_dir,
)
from facelift.rendering import rasterize
from facelift.rendering.media import read_video_frame_count, to_uint8

RES, FRAMES = 32, 6
VIEW_FILES = ["000_front.png", "001_front_right.png", "002_right.png", "003_back.png", "004_left.png", "005_front_left.png"]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@pytest.fixture(scope="module")
def bust():
    return demo_bust(2000, seed=0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, bust):
    out = tmp_path_factory.mktemp("export") / "result"
    with staged_output_dir(out) as staging:
        summary = export_gaussians(staging, bust, ExportSettings(resolution=RES, turntable_frames=FRAMES), backend="torch")
    return out, summary


# export_gaussians --------------------------------------------------------------------------------------


# custom cameras ----------------------------------------------------------------------------------------


def test_render_cameras_writes_rgba_that_composites_back_to_the_white_render(bust, tmp_path):
    cams = orbit_cameras(torch.tensor([0.0, 35.0, 190.0]), torch.tensor([10.0, -25.0, 0.0]), width=40, height=30)
    names = render_cameras(tmp_path / "cams", bust, cams, ["images/a.jpg", "images/b.jpg", "c.png"], chunk=2, backend="torch")
    assert names == ["a.png", "b.png", "c.png"]
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == ["a.png", "b.png", "c.png", "opencv_cameras.json"]
    back, files, extras = read_opencv_cameras(tmp_path / "cams" / "opencv_cameras.json")
    assert files == names and extras["id"] == "custom_cameras"
    torch.testing.assert_close(back.c2w, cams.c2w, atol=1e-5, rtol=0)
    white = to_uint8(rasterize(bust, cams, backend="torch").rgb).astype(np.float64)  # [3, 30, 40, 3]
    for name, expected in zip(names, white):
        rgba = np.asarray(Image.open(tmp_path / "cams" / name)).astype(np.float64) / 255.0
        assert rgba.shape == (30, 40, 4)
        alpha = rgba[..., 3:]
        assert 0.05 < alpha.mean() < 0.95  # the bust covers part of each view, not all of it
        over_white = 255.0 * (rgba[..., :3] * alpha + (1.0 - alpha))
        assert np.abs(over_white - expected).mean() < 1.0 and np.abs(over_white - expected).max() <= 6.0


def test_camera_image_names_fall_back_to_indices():
    assert camera_image_names(["x/a.jpg", "y/a.png"], 2) == ["000.png", "001.png"]  # same base name twice
    assert camera_image_names(["a.jpg", ""], 2) == ["000.png", "001.png"]  # one without a file_path
    assert camera_image_names(None, 3) == ["000.png", "001.png", "002.png"]
    assert camera_image_names(["cam_7.jpeg"], 1) == ["cam_7.png"]


def test_export_with_cameras_and_a_raised_turntable(bust, tmp_path):
    cams = orbit_cameras(torch.tensor([20.0]), torch.tensor([0.0]), width=24)
    settings = ExportSettings(resolution=RES, turntable_frames=2, turntable_elevation_deg=30.0, turntable_radius=3.0)
    summary = export_gaussians(tmp_path, bust, settings, cameras=cams, backend="torch")
    assert summary["files"].endswith("cameras/") and (tmp_path / "cameras" / "000.png").is_file()
    import imageio.v2 as imageio

    with imageio.get_reader(tmp_path / "turntable.mp4") as reader:
        first = reader.get_data(0).astype(np.float64)  # [RES, RES, 3], H.264-compressed
    raised, level = (
        to_uint8(rasterize(bust, orbit_cameras(0.0, elevation, radius, width=RES)[None], backend="torch").rgb[0]).astype(np.float64)
        for elevation, radius in ((30.0, 3.0), (0.0, 2.7))
    )
    assert np.abs(first - raised).mean() < 0.5 * np.abs(first - level).mean()
    for bad in ({"turntable_elevation_deg": 90.0}, {"turntable_radius": 0.0}):
        with pytest.raises(ValueError, match="turntable elevation"):
            ExportSettings(**bad)


def test_export_writes_exactly_the_documented_files(exported):
    out, summary = exported
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["gaussians.ply", "gaussians.splat", "multiview.png", "views", "turntable.mp4", "summary.json"]
    )
    assert sorted(p.name for p in (out / "views").iterdir()) == sorted([*VIEW_FILES, "opencv_cameras.json"])
    assert json.loads((out / "summary.json").read_text()) == summary


def test_export_ply_loads_back_with_every_gaussian(exported, bust):
    from plyfile import PlyData

    out, summary = exported
    g = load_ply(out / "gaussians.ply")
    assert g.num == bust.num == summary["num_gaussians"]
    torch.testing.assert_close(g.means, bust.means, rtol=0, atol=0)
    torch.testing.assert_close(g.rgb, bust.rgb, rtol=1e-5, atol=1e-5)
    names = PlyData.read(str(out / "gaussians.ply"))["vertex"].data.dtype.names
    assert [f"f_rest_{i}" for i in range(45)] == [n for n in names if n.startswith("f_rest_")]
    assert g.sh.shape == (bust.num, 16, 3)


def test_export_splat_has_32_bytes_per_gaussian(exported, bust):
    out, _ = exported
    assert (out / "gaussians.splat").stat().st_size == 32 * bust.num


def test_export_renders_match_rasterize(exported, bust):
    out, _ = exported
    cams = facelift_views(resolution=RES)
    expected = to_uint8(rasterize(bust, cams, backend="torch").rgb)  # [6, H, W, 3]
    with Image.open(out / "multiview.png") as img:
        assert img.size == (6 * RES, RES)
        grid = np.asarray(img.convert("RGB"))
    for i, name in enumerate(VIEW_FILES):
        with Image.open(out / "views" / name) as img:
            assert img.size == (RES, RES)
            view = np.asarray(img.convert("RGB"))
        np.testing.assert_array_equal(view, expected[i])
        np.testing.assert_array_equal(grid[:, i * RES : (i + 1) * RES], expected[i])


def test_export_cameras_read_back_as_the_facelift_views(exported):
    out, _ = exported
    cams, file_paths, extras = read_opencv_cameras(out / "views" / "opencv_cameras.json")
    ref = facelift_views(resolution=RES)
    assert list(file_paths) == VIEW_FILES
    assert extras == {"id": "facelift_views"}
    assert (cams.width, cams.height) == (RES, RES)
    torch.testing.assert_close(cams.c2w.float(), ref.c2w, rtol=0, atol=1e-6)
    torch.testing.assert_close(cams.K.float(), ref.K, rtol=1e-6, atol=1e-6)


def test_export_turntable_has_the_requested_frames(exported):
    out, summary = exported
    assert read_video_frame_count(out / "turntable.mp4") == FRAMES
    assert "turntable.mp4" in summary["files"]


def test_export_files_and_folders_get_normal_permissions(exported):
    out, _ = exported
    umask = _umask()
    assert _mode(out) == 0o777 & ~umask
    assert _mode(out / "views") == 0o777 & ~umask
    for p in [*out.iterdir(), *(out / "views").iterdir()]:
        if p.is_file():
            assert _mode(p) == 0o666 & ~umask, p.name
    assert [p.name for p in out.parent.iterdir()] == ["result"]  # no staging or temporary files beside it


def test_export_without_turntable(tmp_path, bust):
    summary = export_gaussians(tmp_path, bust[:200], ExportSettings(resolution=16, turntable_frames=0), backend="torch")
    assert not (tmp_path / "turntable.mp4").exists()
    assert "turntable.mp4" not in summary["files"] and summary["num_gaussians"] == 200


def test_export_rejects_batched_gaussians(tmp_path, bust):
    with pytest.raises(ValueError, match=r"\[N\]"):
        export_gaussians(tmp_path, bust.reshape(1, bust.num), ExportSettings(resolution=16, turntable_frames=0))


@pytest.mark.parametrize(
    "kwargs", [{"resolution": 0}, {"turntable_frames": -1}, {"fps": 0}, {"ply_sh_degree": -1}]
)
def test_export_settings_reject_bad_values(kwargs):
    with pytest.raises(ValueError, match="ExportSettings"):
        ExportSettings(**kwargs)


# staged_output_dir -------------------------------------------------------------------------------------


def test_staged_success_renames_into_place_with_normal_permissions(tmp_path):
    target = tmp_path / "out"
    with staged_output_dir(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".out.")
        assert staging.is_dir() and not any(staging.iterdir())
        assert not target.exists()
        (staging / "a.txt").write_text("a")
    assert (target / "a.txt").read_text() == "a"
    assert _mode(target) == 0o777 & ~_umask() != 0o700
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_exception_leaves_no_target_and_no_staging(tmp_path):
    with pytest.raises(RuntimeError, match="export failed"):
        with staged_output_dir(tmp_path / "out") as staging:
            (staging / "half.ply").write_bytes(b"ply")
            raise RuntimeError("export failed")
    assert list(tmp_path.iterdir()) == []


def test_staged_keyboard_interrupt_cleans_up_too(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with staged_output_dir(tmp_path / "out") as staging:
            (staging / "x").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_staged_non_empty_target_without_overwrite_is_refused(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        with staged_output_dir(target):
            pytest.fail("the block must not run")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_overwrite_replaces_and_leaves_no_old_folder(tmp_path):
    target = tmp_path / "out"
    (target / "sub").mkdir(parents=True)
    (target / "old.txt").write_text("old")
    with staged_output_dir(target, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # the old folder stays until the new one is complete
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_overwrite_failure_keeps_the_old_folder(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OSError):
        with staged_output_dir(target, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
            raise OSError("disk full")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_overwrite_restores_the_old_folder_if_the_final_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name.endswith(".partial"):
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        with staged_output_dir(target, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_empty_existing_folder_is_used_without_overwrite(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with staged_output_dir(target) as staging:
        (staging / "a.txt").write_text("a")
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_creates_missing_parents_and_removes_them_on_failure(tmp_path):
    with staged_output_dir(tmp_path / "a" / "b" / "out") as staging:
        (staging / "x.txt").write_text("x")
    assert (tmp_path / "a" / "b" / "out" / "x.txt").read_text() == "x"
    with pytest.raises(RuntimeError):
        with staged_output_dir(tmp_path / "c" / "d" / "out"):
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # c/d were created, then removed


def test_staged_parent_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        with staged_output_dir(tmp_path / "file" / "out"):
            pytest.fail("the block must not run")


@pytest.mark.parametrize("overwrite", [False, True])
def test_staged_target_that_is_a_file_is_refused(tmp_path, overwrite):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(FileExistsError, match="not a folder"):
        with staged_output_dir(tmp_path / "out", overwrite=overwrite):
            pytest.fail("the block must not run")
    assert (tmp_path / "out").read_text() == "a file"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_relative_paths_and_dot_names(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with staged_output_dir("result") as staging:
        (staging / "a.txt").write_text("a")
    assert (work / "result" / "a.txt").exists()
    with staged_output_dir("result/../other") as staging:  # '..' resolves to a real name
        (staging / "b.txt").write_text("b")
    assert (work / "other" / "b.txt").exists()
    assert sorted(p.name for p in work.iterdir()) == ["other", "result"]


def test_staged_refuses_to_replace_the_working_folder(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("keep")
    monkeypatch.chdir(work)
    for target in (".", "", str(tmp_path)):
        with pytest.raises(ValueError, match="working folder"):
            with staged_output_dir(target, overwrite=True):
                pytest.fail("the block must not run")
    assert [p.name for p in work.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["work"]


def test_check_output_dir_refuses_a_parent_it_cannot_write_in(tmp_path, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):  # what a read-only mount answers, even to root (who passes os.access)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(PermissionError, match="not writable .Read-only file system"):
        check_output_dir(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_check_output_dir_returns_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_dir("new") == tmp_path / "new"
    with pytest.raises(ValueError):
        check_output_dir("/", overwrite=True)
