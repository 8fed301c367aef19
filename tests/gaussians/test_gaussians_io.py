"""PLY and .splat files: exact layout, round trips, error messages and atomic writes."""

from __future__ import annotations

import math
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from facelift.cameras.conventions import quat_to_rotmat
from facelift.gaussians import (
    SH_C0,
    Gaussians,
    load_ply,
    load_splat,
    ply_property_names,
    save_ply,
    save_splat,
)

DEGREE0_NAMES = [
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
]  # fmt: skip


def _header(path: Path) -> str:
    data = path.read_bytes()
    return data[: data.index(b"end_header\n") + len(b"end_header\n")].decode("ascii")


def _ply_names(path: Path) -> list[str]:
    return [p.name for p in PlyData.read(str(path))["vertex"].properties]


# ---- PLY layout ---------------------------------------------------------------------------------------


def test_ply_property_names_in_order():
    assert ply_property_names(0) == DEGREE0_NAMES
    names3 = ply_property_names(3)
    assert names3[:9] == DEGREE0_NAMES[:9]
    assert names3[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names3[54:] == DEGREE0_NAMES[9:]


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_plyfile_reads_exact_names_types_and_header(tmp_path, make_gaussians, degree):
    path = tmp_path / "g.ply"
    save_ply(path, make_gaussians(n=7, degree=degree))
    ply = PlyData.read(str(path))
    vertex = ply["vertex"]
    assert [p.name for p in vertex.properties] == ply_property_names(degree)
    assert len(vertex.properties) == 17 + 3 * ((degree + 1) ** 2 - 1)
    assert all(vertex.data.dtype[name] == np.dtype("<f4") for name in vertex.data.dtype.names)
    assert len(vertex) == 7 and ply.byte_order == "<"
    header = _header(path)
    assert header.startswith("ply\nformat binary_little_endian 1.0\nelement vertex 7\n")
    assert path.stat().st_size == len(header) + 7 * 4 * len(vertex.properties)


def test_ply_raw_values_are_3dgs_encoded(tmp_path):
    n, k = 2, 4
    sh = torch.arange(n * k * 3, dtype=torch.float32).reshape(n, k, 3)  # sh[n, k, c] = 12 n + 3 k + c
    quats = torch.tensor([[0.5, 0.1, 0.2, 0.3], [1.0, 0.0, 0.0, 0.0]])
    g = Gaussians(
        means=torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]),
        quats=quats,
        scales=torch.tensor([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]]),
        opacities=torch.tensor([0.25, 0.5]),
        sh=sh,
    )
    path = tmp_path / "g.ply"
    save_ply(path, g)
    v = PlyData.read(str(path))["vertex"].data
    np.testing.assert_array_equal(np.stack([v["rot_0"], v["rot_1"], v["rot_2"], v["rot_3"]], -1), quats.numpy())
    np.testing.assert_allclose(v["opacity"], [math.log(0.25 / 0.75), 0.0], atol=1e-7)
    np.testing.assert_allclose(v["scale_1"], np.log([0.2, 2.0]), rtol=1e-7)
    np.testing.assert_array_equal(v["nx"], [0.0, 0.0])
    for c in range(3):
        np.testing.assert_array_equal(v[f"f_dc_{c}"], sh[:, 0, c].numpy())
        for kk in range(1, k):
            # channel-major: f_rest_{c (K-1) + (k-1)}
            np.testing.assert_array_equal(v[f"f_rest_{c * (k - 1) + kk - 1}"], sh[:, kk, c].numpy())


# ---- PLY round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip(tmp_path, make_gaussians, degree):
    g = make_gaussians(n=20, degree=degree)
    path = tmp_path / "g.ply"
    save_ply(path, g)
    back = load_ply(path)
    assert back.sh_degree == degree and back.dtype == torch.float32
    for name in ("means", "quats", "sh"):
        assert torch.equal(getattr(back, name), getattr(g, name)), name
    torch.testing.assert_close(back.scales, g.scales, rtol=1e-6, atol=0)
    torch.testing.assert_close(back.opacities, g.opacities, rtol=1e-6, atol=0)


@pytest.mark.parametrize("degree", [0, 1])
def test_ply_padded_to_degree_3(tmp_path, make_gaussians, degree):
    g = make_gaussians(n=5, degree=degree)
    path = tmp_path / "g.ply"
    save_ply(path, g, sh_degree=3)
    assert _ply_names(path) == ply_property_names(3)
    back = load_ply(path)
    assert back.sh.shape == (5, 16, 3)
    k = (degree + 1) ** 2
    assert torch.equal(back.sh[:, :k], g.sh)
    assert torch.count_nonzero(back.sh[:, k:]) == 0


def test_ply_truncates_to_a_lower_degree(tmp_path, make_gaussians):
    g = make_gaussians(n=3, degree=2)
    save_ply(tmp_path / "g.ply", g, sh_degree=1)
    assert torch.equal(load_ply(tmp_path / "g.ply").sh, g.sh[:, :4])


def test_ply_extreme_opacities_and_zero_scales_stay_finite(tmp_path):
    scales = torch.tensor([[0.0, 1.0, 1.0]] * 3)
    g = Gaussians.from_rgb(torch.zeros(3, 3), scales, torch.tensor([0.0, 1.0, 0.5]), torch.rand(3, 3))
    path = tmp_path / "g.ply"
    save_ply(path, g)
    v = PlyData.read(str(path))["vertex"].data
    assert np.isfinite(v["opacity"]).all() and np.isfinite(v["scale_0"]).all()
    back = load_ply(path)
    torch.testing.assert_close(back.opacities, g.opacities, rtol=0, atol=1e-6)
    assert back.scales[:, 0].max() < 1e-30


def test_ply_load_dtype_and_device(tmp_path, make_gaussians):
    g = make_gaussians(n=4, degree=1)
    save_ply(tmp_path / "g.ply", g)
    back = load_ply(tmp_path / "g.ply", device="cpu", dtype=torch.float64)
    assert back.dtype == torch.float64 and back.device.type == "cpu"
    torch.testing.assert_close(back.means, g.means.double(), rtol=0, atol=0)


def test_ply_load_tolerates_missing_normals_and_other_order(tmp_path):
    # Another writer: no normals, properties shuffled, doubles, an extra property and an extra element.
    names = ["rot_3", "scale_0", "x", "opacity", "rot_0", "f_dc_2", "y", "scale_2", "red", "z", "f_dc_0"]
    names += ["rot_1", "scale_1", "f_dc_1", "rot_2"]
    values = {name: np.array([0.1 * (i + 1)]) for i, name in enumerate(names)}
    rec = np.empty(1, dtype=[(name, "<f8") for name in names])
    for name in names:
        rec[name] = values[name]
    faces = np.empty(0, dtype=[("vertex_indices", "O")])
    ply = PlyData([PlyElement.describe(rec, "vertex"), PlyElement.describe(faces, "face")], text=True)
    ply.write(str(tmp_path / "o.ply"))
    g = load_ply(tmp_path / "o.ply")
    xyz = [[values["x"][0], values["y"][0], values["z"][0]]]
    torch.testing.assert_close(g.means, torch.tensor(xyz, dtype=torch.float32))
    torch.testing.assert_close(g.quats[0, 3], torch.tensor(values["rot_3"][0], dtype=torch.float32))
    torch.testing.assert_close(g.scales[0, 2], torch.tensor(math.exp(values["scale_2"][0]), dtype=torch.float32))
    opacity = 1 / (1 + math.exp(-values["opacity"][0]))
    torch.testing.assert_close(g.opacities[0], torch.tensor(opacity, dtype=torch.float32))
    assert g.sh_degree == 0


def _write_vertex_ply(path: Path, names: list[str], **values: float) -> None:
    rec = np.zeros(2, dtype=[(name, "<f4") for name in names])
    for name, value in values.items():
        rec[name] = value
    PlyData([PlyElement.describe(rec, "vertex")]).write(str(path))


def test_ply_load_extreme_logits_without_overflow_warnings(tmp_path):
    _write_vertex_ply(tmp_path / "x.ply", DEGREE0_NAMES, opacity=-1000.0, rot_0=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = load_ply(tmp_path / "x.ply")
    assert g.opacities.tolist() == [0.0, 0.0]


def test_ply_load_errors_name_the_file(tmp_path):
    not_ply = tmp_path / "notes.ply"
    not_ply.write_text("hello, world\n")
    with pytest.raises(ValueError, match=r"notes\.ply.*not a readable PLY"):
        load_ply(not_ply)

    missing = tmp_path / "missing_opacity.ply"
    _write_vertex_ply(missing, [n for n in DEGREE0_NAMES if n not in ("opacity", "rot_2")])
    with pytest.raises(ValueError, match=r"missing_opacity\.ply.*\['opacity', 'rot_2'\]"):
        load_ply(missing)

    bad_rest = tmp_path / "bad_rest.ply"
    _write_vertex_ply(bad_rest, DEGREE0_NAMES + [f"f_rest_{i}" for i in range(6)])
    with pytest.raises(ValueError, match=r"bad_rest\.ply.*6 f_rest"):
        load_ply(bad_rest)

    gap = tmp_path / "gap.ply"
    _write_vertex_ply(gap, DEGREE0_NAMES + [f"f_rest_{i}" for i in range(10) if i != 4])
    with pytest.raises(ValueError, match=r"gap\.ply.*without gaps"):
        load_ply(gap)

    truncated = tmp_path / "truncated.ply"
    save_ply(truncated, Gaussians.from_rgb(torch.zeros(3, 3), torch.ones(3, 3), torch.ones(3), torch.rand(3, 3)))
    truncated.write_bytes(truncated.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"truncated\.ply"):
        load_ply(truncated)

    with pytest.raises(FileNotFoundError, match="absent"):
        load_ply(tmp_path / "absent.ply")


def test_save_ply_rejects_bad_input(tmp_path, make_gaussians):
    with pytest.raises(ValueError, match="unbatched"):
        save_ply(tmp_path / "b.ply", make_gaussians(n=3, batch=(2,)))
    g = make_gaussians(n=3)
    bad = Gaussians(g.means, g.quats, -g.scales, g.opacities, g.sh)
    with pytest.raises(ValueError, match="scales"):
        save_ply(tmp_path / "n.ply", bad)
    with pytest.raises(ValueError, match="sh_degree"):
        save_ply(tmp_path / "d.ply", g, sh_degree=-1)
    assert list(tmp_path.iterdir()) == []


# ---- atomic writes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("save", [save_ply, save_splat])
def test_writes_leave_no_temporary_files(tmp_path, make_gaussians, save):
    save(tmp_path / "out.bin", make_gaussians(n=4, seed=1))
    save(tmp_path / "out.bin", make_gaussians(n=6, seed=2))  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("save", [save_ply, save_splat])
def test_write_into_missing_directory_fails_cleanly(tmp_path, make_gaussians, save):
    target = tmp_path / "no" / "such" / "dir" / "out.bin"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save(target, make_gaussians(n=4))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("save", [save_ply, save_splat])
def test_failed_write_keeps_the_old_file(tmp_path, make_gaussians, monkeypatch, save):
    path = tmp_path / "out.bin"
    path.write_bytes(b"previous contents")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        save(path, make_gaussians(n=4))
    assert path.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


# ---- .splat -------------------------------------------------------------------------------------------


def test_splat_file_size_and_round_trip(tmp_path, make_gaussians):
    g = make_gaussians(n=9, degree=1)
    path = tmp_path / "g.splat"
    save_splat(path, g)
    assert path.stat().st_size == 32 * 9
    back = load_splat(path)
    assert back.num == 9 and back.sh_degree == 0
    order = torch.argsort(g.scales.prod(-1) * g.opacities, descending=True, stable=True)
    assert torch.equal(back.means, g.means[order]) and torch.equal(back.scales, g.scales[order])
    torch.testing.assert_close(back.opacities, g.opacities[order], rtol=0, atol=0.5 / 255 + 1e-6)
    torch.testing.assert_close(back.rgb, g.rgb[order].clamp(0, 1), rtol=0, atol=0.5 / 255 + 1e-6)
    torch.testing.assert_close(quat_to_rotmat(back.quats), quat_to_rotmat(g.quats[order]), rtol=0, atol=0.03)


def test_splat_single_record_byte_layout(tmp_path):
    g = Gaussians.from_rgb(
        means=torch.tensor([[0.25, -1.5, 2.0]]),
        scales=torch.tensor([[0.01, 0.02, 0.03]]),
        opacities=torch.tensor([0.8]),
        rgb=torch.tensor([[1.2, 0.2, -0.1]]),  # clamped to [0, 1]
        quats=torch.tensor([[2.0, -2.0, 0.0, 0.0]]),  # normalised to (0.7071, -0.7071, 0, 0)
    )
    path = tmp_path / "one.splat"
    save_splat(path, g)
    data = path.read_bytes()
    assert len(data) == 32
    px, py, pz, sx, sy, sz, r, gr, b, a, q0, q1, q2, q3 = struct.unpack("<3f3f4B4B", data)
    assert (px, py, pz) == struct.unpack("<3f", struct.pack("<3f", 0.25, -1.5, 2.0))
    assert (sx, sy, sz) == struct.unpack("<3f", struct.pack("<3f", 0.01, 0.02, 0.03))
    assert (r, gr, b, a) == (255, 51, 0, 204)
    s = 1 / math.sqrt(2)
    assert (q0, q1, q2, q3) == (round(s * 128 + 128), round(-s * 128 + 128), 128, 128) == (219, 37, 128, 128)


def test_splat_identity_rotation_saturates_at_255(tmp_path):
    g = Gaussians.from_rgb(torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1), torch.full((1, 3), 0.5))
    save_splat(tmp_path / "id.splat", g)
    assert tuple(tmp_path.joinpath("id.splat").read_bytes()[28:32]) == (255, 128, 128, 128)
    assert tuple(tmp_path.joinpath("id.splat").read_bytes()[24:28]) == (128, 128, 128, 255)


def test_splat_sorted_by_size_times_opacity(tmp_path):
    # size * opacity: 1e-6 * 0.9, 1e-3 * 0.5, 1e-3 * 0.1, 8e-3 * 0.05, 1e-3 * 0.5 (ties with #1, comes after it)
    scales = torch.tensor([[0.01] * 3, [0.1] * 3, [0.1] * 3, [0.2] * 3, [0.1] * 3])
    opacities = torch.tensor([0.9, 0.5, 0.1, 0.05, 0.5])
    means = torch.arange(5, dtype=torch.float32)[:, None].expand(5, 3).clone()
    g = Gaussians.from_rgb(means, scales, opacities, torch.rand(5, 3))
    save_splat(tmp_path / "s.splat", g)
    records = np.frombuffer(tmp_path.joinpath("s.splat").read_bytes(), dtype=np.float32).reshape(5, 8)
    assert records[:, 0].tolist() == [1.0, 4.0, 3.0, 2.0, 0.0]


def test_splat_errors(tmp_path, make_gaussians):
    with pytest.raises(ValueError, match="unbatched"):
        save_splat(tmp_path / "b.splat", make_gaussians(n=3, batch=(2,)))
    bad = tmp_path / "bad.splat"
    bad.write_bytes(b"\0" * 33)
    with pytest.raises(ValueError, match=r"bad\.splat.*multiple of 32"):
        load_splat(bad)


def test_splat_colour_is_the_dc_term(tmp_path):
    f_dc = torch.tensor([[[0.0, 1.0, -1.0]]])
    g = Gaussians(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.ones(1, 3), torch.ones(1), f_dc)
    save_splat(tmp_path / "c.splat", g)
    rgb = tuple(tmp_path.joinpath("c.splat").read_bytes()[24:27])
    expected = tuple(int(math.floor(min(max(0.5 + SH_C0 * v, 0.0), 1.0) * 255 + 0.5)) for v in (0.0, 1.0, -1.0))
    assert rgb == expected == (128, 199, 56)
