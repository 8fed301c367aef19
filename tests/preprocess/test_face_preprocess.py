"""Face detection, the reference crop, several faces, and the yaw estimate on rotated synthetic heads."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("mediapipe")
from _pipeline_helpers import SAMPLE_PHOTO

from facelift.preprocess import (
    PreprocessSettings,
    crop_to_reference,
    detect_faces,
    load_image,
    preprocess,
)
from facelift.preprocess.detect import FaceBox
from facelift.preprocess.face import (
    REFERENCE_FACE_CENTER,
    REFERENCE_FACE_SIZE,
    estimate_yaw,
)
from facelift.preprocess.image import ImageError, LoadedImage


@pytest.fixture(scope="module")
def photo():
    return load_image(SAMPLE_PHOTO)


def test_mtcnn_finds_the_astronauts_face(photo):
    faces = detect_faces(photo.rgb)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    # The face of the 512 x 512 sample: about 88 x 113 px around (224, 116) (measured 179.5, 59.8, 267.8, 172.4).
    assert abs(x0 - 179.5) < 4 and abs(y0 - 59.8) < 4 and abs(x1 - 267.8) < 4 and abs(y1 - 172.4) < 4
    assert face.score > 0.99
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lex < nx < rex and mlx < nx < mrx and max(ley, rey) < ny < min(mly, mry)  # eyes, nose, mouth in place
    assert 30 < rex - lex < 60


def test_reference_crop_puts_the_face_where_the_training_renders_have_it(photo):
    face = detect_faces(photo.rgb)[0]
    rgba = torch.cat([photo.rgb, torch.ones(1, 512, 512)])
    out = crop_to_reference(rgba, face, 512)
    assert out.shape == (4, 512, 512)
    again = detect_faces(out[:3] * out[3:] + (1 - out[3:]))[0]
    assert again.size == pytest.approx(REFERENCE_FACE_SIZE, rel=0.08)
    assert again.center[0] == pytest.approx(REFERENCE_FACE_CENTER[0], abs=8)
    assert again.center[1] == pytest.approx(REFERENCE_FACE_CENTER[1], abs=8)
    # Half size: everything scales.
    small = crop_to_reference(rgba, face, 256)
    assert small.shape == (4, 256, 256)


def test_preprocess_mattes_crops_and_is_frontal(photo):
    pre = preprocess(photo, PreprocessSettings(size=256))
    assert pre.image.shape == (3, 256, 256) and pre.alpha.shape == (1, 256, 256)
    assert pre.num_faces == 1 and pre.face is not None
    assert float(pre.alpha[0, :10, :].mean()) < 0.1 and float(pre.alpha[0, 128, 128]) > 0.9  # sky removed, face kept
    assert torch.allclose(pre.image[:, 0, 0], torch.ones(3), atol=0.05)  # background is white
    assert abs(pre.azimuth_deg) < 10


def test_several_faces_pick_the_largest(photo):
    # The photo and a half-size copy side by side: two faces, the larger one is used and the user is told.
    half = torch.nn.functional.interpolate(photo.rgb[None], scale_factor=0.5, mode="bilinear", antialias=True)[0]
    canvas = torch.ones(3, 512, 800)
    canvas[:, :, :512] = photo.rgb
    canvas[:, 100:356, 540:796] = half
    faces = detect_faces(canvas)
    assert len(faces) == 2 and faces[0].area > 3 * faces[1].area
    pre = preprocess(LoadedImage(canvas, None, "two.png"), PreprocessSettings(size=128, matting=False, estimate_yaw=False))
    assert pre.num_faces == 2 and "2 faces found; using the largest" in pre.notes
    assert pre.face.box[2] < 512  # the left (large) face


def test_no_face_is_a_clear_error():
    blank = LoadedImage(torch.rand(3, 128, 128), None, "noise.png")
    with pytest.raises(ImageError, match="no face detected"):
        preprocess(blank, PreprocessSettings(size=64, matting=False, estimate_yaw=False))


def test_yaw_of_rotated_synthetic_heads_has_the_right_sign_and_size():
    from facelift.cameras.orbits import orbit_cameras
    from facelift.synthetic.dataset import SubjectId
    from facelift.synthetic.render import SynthSettings, render_scene

    for index in (0, 21):
        subject = SubjectId("heads", "train", index)
        table, _ = subject.scene("cpu")
        cams = orbit_cameras(torch.tensor([-30.0, 0.0, 30.0]), 0.0, 2.7, 50.0, 384)
        rgba = render_scene(table, cams.reshape(1, -1), subject.lighting(), SynthSettings(supersample=1)).rgba[0]
        images = rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])
        yaws = [estimate_yaw(img) for img in images]
        assert all(y is not None for y in yaws), yaws
        # Differences cancel the head's own random pose: the camera moved 30 deg each way.
        assert yaws[2] - yaws[1] == pytest.approx(30, abs=10), yaws
        assert yaws[0] - yaws[1] == pytest.approx(-30, abs=10), yaws


def test_facebox_geometry():
    box = FaceBox((10.0, 20.0, 50.0, 80.0), 0.9, ((0.0, 0.0),) * 5)
    assert box.size == 50.0 and box.area == 2400.0 and box.center == (30.0, 50.0)
