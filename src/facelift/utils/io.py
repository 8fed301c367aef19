"""Atomic writes: a file is written to a temporary file beside the target, then renamed over it; a folder is
filled in a hidden staging folder, then renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_dir", "default_mode", "staged_output_dir",
]  # fmt: skip


def _current_umask() -> int:
    # Linux reports the umask in /proc; reading it there avoids the set-and-restore below, during which
    # another thread's new files would get mode 0666/0777.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def default_mode(directory: bool = False) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask (mkstemp uses 0600).

    Example:
        >>> oct(default_mode())  # doctest: +SKIP
        '0o644'
    """
    return (0o777 if directory else 0o666) & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched, so readers never see a
    half-written file. The result keeps the mode of the file it replaces, else the umask default.
    ``suffix`` defaults to the target's suffix (some writers pick the format from it).

    Raises:
        FileNotFoundError: the target's directory does not exist.
        IsADirectoryError: the target is a folder.

    Example:
        >>> with atomic_path("out.txt") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("done")
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (path.suffix if suffix is None else suffix), dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (fsynced before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check that ``path`` can become a result folder, before any work is done; returns it made absolute.

    Raises:
        FileExistsError: ``path`` is a file, or a non-empty folder and ``overwrite`` is False.
        FileExistsError / PermissionError: the nearest existing parent is a file or not writable
            (missing parent folders are created when the output is written).
        ValueError: ``path`` is the file-system root, or an existing folder holding the working folder.

    Example:
        >>> check_output_dir("/tmp/facelift-result").name  # doctest: +SKIP
        'facelift-result'
    """
    # abspath (not resolve): "." and "a/.." become real names, and a symlinked target stays a symlink.
    path = Path(os.path.abspath(path))
    if not path.name:
        raise ValueError(f"cannot use {path} as an output folder")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"output {path} exists and is not a folder")
    if path.is_dir():
        if not overwrite and any(path.iterdir()):
            raise FileExistsError(f"output folder {path} is not empty (pass --overwrite to replace it)")
        cwd = Path(os.path.abspath(os.getcwd()))
        if cwd == path or path in cwd.parents:
            raise ValueError(f"refusing to replace {path}: it holds the current working folder")
    # Missing parent folders are created (like mkdir -p); the nearest existing one must be a writable folder.
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise FileExistsError(f"cannot create {path}: {parent} is not a folder")
    # A real write, not os.access: root passes os.access on read-only mounts and pseudo file systems (/proc).
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".facelift-probe.", dir=parent))
    except OSError as err:
        raise PermissionError(f"cannot create {path}: folder {parent} is not writable ({err.strerror or err})") from err
    return path


@contextlib.contextmanager
def staged_output_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder that becomes ``path`` when the block succeeds.

    The staging folder is a hidden sibling of ``path``; on any exception it is removed and ``path`` is left
    as it was. With ``overwrite``, an existing folder is replaced only once the new one is complete.

    Raises:
        FileExistsError: when ``path`` is a file, or a non-empty folder and ``overwrite`` is False.
        FileExistsError / PermissionError: when the nearest existing parent is a file or not writable.
        Missing parent folders are created, and removed again if the block fails.
        ValueError: when ``path`` is the file-system root, or an existing folder holding the working folder.

    Example:
        >>> with staged_output_dir("/tmp/facelift-result", overwrite=True) as tmp:  # doctest: +SKIP
        ...     (tmp / "a.txt").write_text("done")
    """
    path = check_output_dir(path, overwrite=overwrite)
    parent = path.parent
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield staging
        os.chmod(staging, default_mode(directory=True))  # mkdtemp makes it 0700
        if not path.exists():
            os.replace(staging, path)
            return
        # Move the old folder aside first (a rename cannot replace a non-empty folder), and put it back if
        # the new one cannot take its place.
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
        try:
            os.replace(path, old / "previous")
        except BaseException:
            shutil.rmtree(old, ignore_errors=True)
            raise
        try:
            os.replace(staging, path)
        except BaseException:
            os.replace(old / "previous", path)
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders this module created (deepest first) if they are still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()
