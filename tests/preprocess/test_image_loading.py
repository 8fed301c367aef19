"""Decoding user images: every mode, EXIF rotation, huge, tiny, broken and odd files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facelift.preprocess.image import MAX_SIDE, ImageError, load_image, to_image


def _photo(h: int = 64, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "CMYK", "I;16", "1", "LA", "RGBA"])
def test_modes_decode_to_rgb(tmp_path, mode):
    img = Image.fromarray(_photo())
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    elif mode != "RGB":
        img = img.convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png" if mode != "I;16" else ".tif"
    path = tmp_path / f"x{suffix}"
    img.save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (3, 64, 48) and loaded.rgb.dtype == torch.float32
    assert 0 <= float(loaded.rgb.min()) and float(loaded.rgb.max()) <= 1
    assert loaded.alpha is None  # converted images are fully opaque: an all-one alpha carries nothing


def test_rgba_keeps_its_alpha(tmp_path):
    rgba = np.concatenate([_photo(), np.zeros((64, 48, 1), np.uint8)], axis=2)
    rgba[10:50, 10:40, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.alpha is not None and float(loaded.alpha.mean()) == pytest.approx(40 * 30 / (64 * 48))


def test_palette_transparency_becomes_alpha(tmp_path):
    index = np.zeros((40, 40), np.uint8)
    index[10:30, 10:30] = 1  # colour 1 opaque inside, colour 0 (transparent) around
    img = Image.fromarray(index, "P")
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    assert loaded.alpha is not None and float(loaded.alpha.sum()) == 400
    assert torch.allclose(loaded.rgb[:, 20, 20], torch.tensor([1.0, 0.0, 0.0]))


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(_photo(40, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif)
    loaded = load_image(tmp_path / "r.jpg")
    assert loaded.rgb.shape == (3, 80, 40)


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    loaded = load_image(tmp_path / "a.gif")
    assert any("first of 2 frames" in n for n in loaded.notes)
    assert float(loaded.rgb.mean()) < 0.2


def test_very_large_jpeg_is_downscaled_on_decode(tmp_path):
    Image.new("RGB", (12000, 9000), (120, 80, 60)).save(tmp_path / "big.jpg", quality=50)
    loaded = load_image(tmp_path / "big.jpg")
    assert max(loaded.rgb.shape[-2:]) <= MAX_SIDE
    assert any("downscaled from 12000x9000" in n for n in loaded.notes)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.png", b"", "empty"),
        ("text.png", b"hello, I am not an image", "not an image"),
    ],
)
def test_broken_files_are_clear_errors(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(tmp_path / name)


def test_truncated_and_tiny_and_missing(tmp_path):
    Image.fromarray(_photo(200, 200)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.png")
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    with pytest.raises(ImageError, match="too small"):
        load_image(tmp_path / "one.png")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_to_image_accepts_arrays_tensors_and_pil():
    arr = _photo()
    assert to_image(arr).rgb.shape == (3, 64, 48)
    assert to_image(torch.rand(4, 40, 40)).alpha.shape == (1, 40, 40)
    assert to_image(Image.fromarray(arr)).rgb.shape == (3, 64, 48)
    with pytest.raises(ImageError, match="unsupported"):
        to_image(3.0)
