"""The reference ``opencv_cameras.json`` layout: reading, writing, round trips and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from facelift.cameras import (
    Cameras,
    facelift_views,
    intrinsics_matrix,
    random_cameras,
    read_opencv_cameras,
    write_opencv_cameras,
)
from facelift.cameras import io as cameras_io

REFERENCE_FILE = Path(__file__).with_name("reference_cameras.json")


def _frame(**overrides) -> dict:
    frame = {
        "w": 64, "h": 48, "fx": 60.0, "fy": 61.0, "cx": 32.0, "cy": 24.0,
        "w2c": [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 2.7], [0.0, 0.0, 0.0, 1.0]],
        "file_path": "images/cam_000.png",
    }  # fmt: skip
    frame.update(overrides)
    return frame


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_read_reference_file_equals_facelift_views():
    cams, file_paths, extras = read_opencv_cameras(REFERENCE_FILE, dtype=torch.float64)
    views = facelift_views(dtype=torch.float64)
    assert cams.batch_shape == (6,) and (cams.width, cams.height) == (512, 512)
    assert file_paths == [f"images/cam_{i:03d}.png" for i in range(6)]
    assert extras["id"] == "reference_six_views" and "frames" not in extras
    torch.testing.assert_close(cams.c2w, views.c2w, atol=1e-12, rtol=0)
    torch.testing.assert_close(cams.K, views.K, atol=1e-5, rtol=0)
    assert cams.fx[0].item() == 548.9937744140625


def test_written_layout_matches_reference(tmp_path):
    path = tmp_path / "opencv_cameras.json"
    write_opencv_cameras(path, facelift_views(), id="subject_0001")
    data = json.loads(path.read_text())
    reference = json.loads(REFERENCE_FILE.read_text())
    assert data["id"] == "subject_0001"
    assert len(data["frames"]) == 6
    for ours, theirs in zip(data["frames"], reference["frames"]):
        assert set(ours) == {"w", "h", "fx", "fy", "cx", "cy", "w2c", "file_path"}
        assert (ours["w"], ours["h"]) == (512, 512) and isinstance(ours["w"], int)
        assert ours["file_path"] == theirs["file_path"]
        assert ours["fx"] == pytest.approx(theirs["fx"], abs=1e-5)
        # w2c is row-major: the translation is the last column, (0, 0, 2.7) for every view.
        torch.testing.assert_close(torch.tensor(ours["w2c"]), torch.tensor(theirs["w2c"]), atol=1e-6, rtol=0)
        assert [row[3] for row in ours["w2c"][:3]] == pytest.approx([0.0, 0.0, 2.7], abs=1e-6)


def test_round_trip_float64(tmp_path):
    cams = random_cameras(7, generator=torch.Generator().manual_seed(3), radius_range=(1.5, 4.0), dtype=torch.float64)
    K = intrinsics_matrix(*torch.tensor([[500.0, 501.5, 250.25, 260.75]], dtype=torch.float64).expand(7, 4).unbind(-1))
    cams = Cameras(cams.c2w, K, 500, 520)
    names = [f"frames/{i}.png" for i in range(7)]
    path = tmp_path / "cams.json"
    write_opencv_cameras(path, cams, names, id=42)
    back, file_paths, extras = read_opencv_cameras(path, dtype=torch.float64)
    assert (back.width, back.height) == (500, 520)
    assert file_paths == names and extras == {"id": 42}
    torch.testing.assert_close(back.c2w, cams.c2w, atol=1e-9, rtol=0)
    torch.testing.assert_close(back.K, cams.K, atol=1e-9, rtol=0)


def test_round_trip_flattens_batch_and_keeps_dtype(tmp_path):
    path = tmp_path / "cams.json"
    views = facelift_views(torch.tensor([0.0, 30.0]))  # [2, 6]
    write_opencv_cameras(path, views)
    back, file_paths, extras = read_opencv_cameras(path)
    assert back.batch_shape == (12,) and back.dtype == torch.float32
    assert file_paths[11] == "images/cam_011.png" and extras == {}
    torch.testing.assert_close(back.c2w, views.flatten().c2w, atol=1e-6, rtol=0)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "cams.json"
    write_opencv_cameras(path, facelift_views(), id="first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cams.json"]
    assert (path.stat().st_mode & 0o777) == 0o644
    before = path.read_text()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cameras_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_opencv_cameras(path, facelift_views(30.0), id="second")
    assert path.read_text() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cams.json"]  # no temp file left behind


def test_write_rejects_wrong_number_of_file_paths(tmp_path):
    with pytest.raises(ValueError, match="file_paths"):
        write_opencv_cameras(tmp_path / "cams.json", facelift_views(), ["a.png"])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "data, match",
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"id": 1}, "frames"),
        ({"frames": []}, "frames"),
        ({"frames": [_frame(fx=None)]}, "'fx'"),
        ({"frames": [{k: v for k, v in _frame().items() if k != "cy"}]}, "lacks 'cy'"),
        ({"frames": [_frame(w2c=[[1.0, 0.0, 0.0, 0.0]] * 3)]}, "4x4"),
        ({"frames": [_frame(w2c=[[1.0, 0.0, 0.0]] * 4)]}, "4x4"),
        ({"frames": [_frame(w2c=[[0.0] * 4] * 4)]}, "not invertible"),
        ({"frames": [_frame(), _frame(w=128)]}, "different image sizes"),
        ({"frames": [_frame(h=47.5)]}, "'h'"),
    ],
)
def test_malformed_files_raise_value_error_naming_the_file(tmp_path, data, match):
    path = _write_json(tmp_path / "broken_cameras.json", data)
    with pytest.raises(ValueError, match=match) as info:
        read_opencv_cameras(path)
    assert "broken_cameras.json" in str(info.value)


def test_missing_file_path_reads_as_empty_string(tmp_path):
    frame = {k: v for k, v in _frame().items() if k != "file_path"}
    cams, file_paths, _ = read_opencv_cameras(_write_json(tmp_path / "c.json", {"frames": [frame, frame]}))
    assert file_paths == ["", ""] and cams.batch_shape == (2,)
    torch.testing.assert_close(cams.positions[0], torch.tensor([0.0, -2.7, 0.0]))
