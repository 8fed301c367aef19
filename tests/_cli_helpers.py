"""Helpers for tests that drive the ``facelift`` CLI in-process."""

from __future__ import annotations

from pathlib import Path

from facelift.cli.main import main


def run_cli(argv: list[str]) -> int:
    """Run the CLI in-process; the exit code whether it returns or raises SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1


def listing(folder: Path) -> list[str]:
    """Everything under ``folder``, hidden entries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
