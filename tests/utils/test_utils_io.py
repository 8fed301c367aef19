"""Atomic writes: all or nothing, no temporary files left behind, sensible permissions."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from facelift.utils.io import atomic_path, atomic_write_bytes, atomic_write_text, default_mode


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@pytest.fixture
def umask_027():
    """Run the test under umask 027, so that 'umask default' differs from both 0644 and mkstemp's 0600."""
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def test_atomic_write_bytes_and_text_leave_only_the_target(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01\x02")
    atomic_write_text(tmp_path / "b.txt", "héllo\n")
    atomic_write_bytes(tmp_path / "a.bin", memoryview(b"new"))  # replace an existing file
    assert (tmp_path / "a.bin").read_bytes() == b"new"
    assert (tmp_path / "b.txt").read_bytes() == "héllo\n".encode("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt"]


def test_atomic_path_temporary_file_sits_beside_the_target_with_its_suffix(tmp_path):
    with atomic_path(tmp_path / "image.png") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".image.png.") and tmp.suffix == ".png"
        assert tmp != tmp_path / "image.png"
        tmp.write_bytes(b"x")
        assert not (tmp_path / "image.png").exists()  # nothing visible until the block ends
    with atomic_path(tmp_path / "image.png", suffix=".raw") as tmp:
        assert tmp.suffix == ".raw"
        tmp.write_bytes(b"y")
    assert (tmp_path / "image.png").read_bytes() == b"y"
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]


def test_atomic_path_relative_target_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic_write_text("plain.txt", "ok")
    assert (tmp_path / "plain.txt").read_text() == "ok"
    assert [p.name for p in tmp_path.iterdir()] == ["plain.txt"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_inside_the_block_keeps_the_old_file_and_removes_the_temporary(tmp_path, exc):
    target = tmp_path / "data.txt"
    target.write_text("old contents")
    with pytest.raises(type(exc)):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise exc
    assert target.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]


def test_failure_without_an_old_file_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "new.txt") as tmp:
            tmp.write_text("partial")
            raise ValueError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_raises_a_clear_error(tmp_path):
    target = tmp_path / "missing" / "out.txt"
    with pytest.raises(FileNotFoundError, match=r"does not exist") as info:
        atomic_write_text(target, "x")
    assert str(tmp_path / "missing") in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_target_that_is_a_folder_raises_and_leaves_no_temporary(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="folder"):
        atomic_write_bytes(tmp_path / "folder", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_new_file_gets_the_umask_default_not_0600(tmp_path, umask_027):
    atomic_write_text(tmp_path / "new.txt", "x")
    assert _mode(tmp_path / "new.txt") == 0o640
    assert default_mode() == 0o640 and default_mode(directory=True) == 0o750


def test_new_file_mode_matches_a_plain_open(tmp_path):
    atomic_write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~_umask()


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_replaced_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    os.chmod(target, mode)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == mode


def test_default_mode_does_not_disturb_the_umask(umask_027):
    for _ in range(3):
        default_mode()
    assert _umask() == 0o027


def test_concurrent_writes_each_land_whole(tmp_path):
    # Writers in several threads: every file complete, no temporary left, none with a wrong mode.
    expected = 0o666 & ~_umask()

    def write(i: int) -> None:
        for j in range(20):
            atomic_write_bytes(tmp_path / f"f{i}.bin", bytes([i]) * (100 + j))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"f{i}.bin" for i in range(4)]
    for i in range(4):
        assert (tmp_path / f"f{i}.bin").read_bytes() == bytes([i]) * 119
        assert _mode(tmp_path / f"f{i}.bin") == expected
