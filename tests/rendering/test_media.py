"""Images, grids, PNG/MP4 writing and turntables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facelift.cameras import orbit_cameras
from facelift.gaussians import Gaussians
from facelift.gaussians.procedural import demo_bust
from facelift.rendering import rasterize
from facelift.rendering.media import image_grid, read_video_frame_count, render_turntable, save_image, to_uint8, write_video


@pytest.fixture(scope="module")
def bust() -> Gaussians:
    return demo_bust(2000, seed=0)


def _hidden_or_temp(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


# to_uint8 ----------------------------------------------------------------------------------------------


def test_to_uint8_rounds_half_up_and_clips():
    values = torch.tensor([-1.0, 0.0, 0.4 / 255, 0.6 / 255, 127.49 / 255, 127.51 / 255, 254.6 / 255, 1.0, 7.0])
    img = values.reshape(1, 1, -1).expand(3, 1, -1)  # [3, 1, 9]
    out = to_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (1, 9, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 1, 127, 128, 255, 255, 255])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()


def test_to_uint8_moves_channels_last_and_keeps_batch_dims():
    x = torch.rand(2, 4, 3, 5, 7)  # [B, V, 3, H, W]
    out = to_uint8(x)
    assert out.shape == (2, 4, 5, 7, 3)
    # channel c of pixel (h, w) comes from x[..., c, h, w]
    expected = np.floor(x.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, np.moveaxis(expected, -3, -1))
    assert to_uint8(torch.rand(1, 4, 4)).shape == (4, 4, 1)
    assert to_uint8(torch.rand(4, 4, 4)).shape == (4, 4, 4)


def test_to_uint8_accepts_float64_and_autograd_tensors():
    x = torch.full((3, 2, 2), 0.5, dtype=torch.float64, requires_grad=True)
    assert (to_uint8(x) == 128).all()


@pytest.mark.parametrize("shape", [(8, 8), (2, 8, 8), (5, 8, 8)])
def test_to_uint8_rejects_bad_layouts(shape):
    with pytest.raises(ValueError, match="C, H, W"):
        to_uint8(torch.zeros(shape))


# image_grid --------------------------------------------------------------------------------------------


def _solid(values) -> torch.Tensor:
    """``[V, 3, 4, 5]`` images, image i filled with values[i] / 255 in every channel."""
    return torch.tensor(values, dtype=torch.float32).div(255).reshape(-1, 1, 1, 1).expand(-1, 3, 4, 5).clone()


def test_image_grid_single_row_places_views_left_to_right():
    grid = image_grid(_solid([10, 20, 30]))
    assert grid.shape == (4, 15, 3) and grid.dtype == np.uint8
    for i, v in enumerate([10, 20, 30]):
        assert (grid[:, 5 * i : 5 * i + 5] == v).all()


def test_image_grid_rows_pad_and_fill_row_major():
    # 5 views in 2 rows -> 3 columns; the sixth cell stays padding.
    grid = image_grid(_solid([10, 20, 30, 40, 50]), rows=2, pad=2, pad_value=0.0)
    h, w, pad = 4, 5, 2
    assert grid.shape == (2 * h + pad, 3 * w + 2 * pad, 3)
    for i, v in enumerate([10, 20, 30, 40, 50]):
        r, c = divmod(i, 3)
        y, x = r * (h + pad), c * (w + pad)
        assert (grid[y : y + h, x : x + w] == v).all(), f"cell {i}"
    assert (grid[h : h + pad] == 0).all()  # horizontal gutter
    assert (grid[:, w : w + pad] == 0).all()  # vertical gutter
    assert (grid[h + pad :, 2 * (w + pad) :] == 0).all()  # the empty sixth cell


def test_image_grid_known_pixel_lands_in_its_cell():
    images = torch.zeros(6, 3, 8, 8)
    images[4, :, 3, 6] = torch.tensor([1.0, 0.5, 0.0])  # view 4, row 3, column 6
    grid = image_grid(images, rows=2, pad=1, pad_value=1.0)  # 3 columns: view 4 is row 1, column 1
    y, x = 1 * (8 + 1) + 3, 1 * (8 + 1) + 6
    np.testing.assert_array_equal(grid[y, x], [255, 128, 0])
    lit = (grid != 0) & (grid != 255)
    assert lit.sum() == 1 and lit[y, x, 1]


def test_image_grid_accepts_a_list_of_tensors():
    images = [torch.rand(3, 4, 4) for _ in range(3)]
    np.testing.assert_array_equal(image_grid(images), image_grid(torch.stack(images)))


def test_image_grid_rejects_bad_inputs():
    with pytest.raises(ValueError, match="V, C, H, W"):
        image_grid(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="rows"):
        image_grid(torch.zeros(2, 3, 4, 4), rows=0)


# save_image --------------------------------------------------------------------------------------------


def test_save_image_png_round_trips_exactly(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    save_image(tmp_path / "a.png", arr)
    with Image.open(tmp_path / "a.png") as img:
        assert img.format == "PNG" and img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), arr)
    assert _hidden_or_temp(tmp_path) == []


def test_save_image_accepts_float_tensors_and_rgba(tmp_path):
    x = torch.rand(3, 5, 6)
    save_image(tmp_path / "t.png", x)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "t.png")), to_uint8(x))
    rgba = np.random.default_rng(1).integers(0, 256, size=(4, 4, 4), dtype=np.uint8)
    save_image(tmp_path / "rgba.png", rgba)
    with Image.open(tmp_path / "rgba.png") as img:
        assert img.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(img), rgba)


def test_save_image_rejects_bad_arrays_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_image(tmp_path / "f.png", np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        save_image(tmp_path / "b.png", torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError):  # PIL cannot pick a format without a suffix
        save_image(tmp_path / "nosuffix", np.zeros((4, 4, 3), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


# write_video -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t, h, w", [(5, 16, 16), (3, 9, 13), (1, 1, 1)])
def test_write_video_frame_count_and_size(tmp_path, t, h, w):
    import imageio.v2 as imageio

    frames = np.random.default_rng(t).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=12)
    assert read_video_frame_count(tmp_path / "v.mp4") == t
    reader = imageio.get_reader(tmp_path / "v.mp4", format="FFMPEG")
    try:
        first = reader.get_data(0)
    finally:
        reader.close()
    assert first.shape == (h + h % 2, w + w % 2, 3)  # odd sizes padded to even
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_write_video_content_survives_compression(tmp_path):
    import imageio.v2 as imageio

    frames = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    frames[:, :, :8] = [200, 40, 40]
    frames[:, :, 8:] = [40, 40, 200]
    write_video(tmp_path / "v.mp4", frames)
    reader = imageio.get_reader(tmp_path / "v.mp4", format="FFMPEG")
    try:
        decoded = np.stack([f for f in reader])
    finally:
        reader.close()
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int))[:, :, [2, 3, 12, 13]].max() <= 12


@pytest.mark.parametrize(
    "frames, kwargs",
    [
        (np.zeros((0, 8, 8, 3), np.uint8), {}),
        (np.zeros((2, 8, 8), np.uint8), {}),
        (np.zeros((2, 8, 8, 4), np.uint8), {}),
        (np.zeros((2, 8, 8, 3), np.float32), {}),
        (np.zeros((2, 8, 8, 3), np.uint8), {"fps": 0}),
        (np.zeros((2, 8, 8, 3), np.uint8), {"fps": -5}),
    ],
)
def test_write_video_rejects_bad_inputs(tmp_path, frames, kwargs):
    with pytest.raises(ValueError):
        write_video(tmp_path / "bad.mp4", frames, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_video_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_video(tmp_path / "nope" / "v.mp4", np.zeros((1, 8, 8, 3), np.uint8))


# render_turntable --------------------------------------------------------------------------------------


def test_render_turntable_shape_and_first_frame_is_the_front_view(bust):
    frames = render_turntable(bust, num_frames=5, resolution=32, chunk=2, backend="torch")
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
    front = rasterize(bust, orbit_cameras(torch.tensor([0.0]), 0.0, width=32), backend="torch").rgb
    np.testing.assert_array_equal(frames[0], to_uint8(front[0]))
    assert not (frames[0] == 255).all()  # the bust is visible
    assert not np.array_equal(frames[0], frames[2])  # and the view turns


def test_render_turntable_chunking_does_not_change_frames(bust):
    a = render_turntable(bust, num_frames=4, resolution=16, chunk=1, backend="torch")
    b = render_turntable(bust, num_frames=4, resolution=16, chunk=8, backend="torch")
    np.testing.assert_array_equal(a, b)


def test_render_turntable_matches_orbit_cameras_at_each_azimuth(bust):
    frames = render_turntable(bust, num_frames=4, resolution=24, elevation_deg=10.0, start_azimuth_deg=30.0, backend="torch")
    cams = orbit_cameras(torch.tensor([30.0, 120.0, 210.0, 300.0]), 10.0, width=24)
    np.testing.assert_array_equal(frames, to_uint8(rasterize(bust, cams, backend="torch").rgb))


@pytest.mark.parametrize("background", [1.0, 0.0, torch.tensor([0.2, 0.4, 0.6])])
def test_render_turntable_zero_opacity_renders_only_the_background(bust, background):
    clear = Gaussians(bust.means, bust.quats, bust.scales, torch.zeros_like(bust.opacities), bust.sh)
    frames = render_turntable(clear, num_frames=3, resolution=16, background=background, backend="torch")
    expected = to_uint8(torch.as_tensor(background, dtype=torch.float32).expand(3).reshape(3, 1, 1).expand(3, 16, 16))
    assert (frames == expected[None]).all()


def test_render_turntable_rejects_bad_inputs(bust):
    with pytest.raises(ValueError, match=r"\[N\]"):
        render_turntable(bust.reshape(1, bust.num), num_frames=2, resolution=8)
    with pytest.raises(ValueError, match="chunk"):
        render_turntable(bust, num_frames=2, resolution=8, chunk=0)
    with pytest.raises(ValueError):
        render_turntable(bust, num_frames=0, resolution=8)
