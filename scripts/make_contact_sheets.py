"""Regenerate the contact sheets of the synthetic engine under ``docs/images/``.

Usage::

    python scripts/make_contact_sheets.py objects|heads|all [--out-dir docs/images]

Each sheet is a function ``<name>_sheet(path)`` registered in :data:`SHEETS` with its default file name;
:func:`render_strips` renders any list of ``[1, K]`` primitive tables into one row of views per subject.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import torch
from einops import rearrange

from facelift.cameras.cameras import Cameras
from facelift.cameras.orbits import orbit_cameras
from facelift.rendering.media import image_grid, save_image
from facelift.synthetic.heads import head_scene
from facelift.synthetic.objects import object_scene
from facelift.synthetic.primitives import PrimitiveTable
from facelift.synthetic.render import Lighting, SynthSettings, render_scene

REPO = Path(__file__).resolve().parents[1]
RESOLUTION = 128
SETTINGS = SynthSettings(supersample=2)


def render_strips(tables: list[PrimitiveTable], cameras: Cameras, lightings: list[Lighting], settings: SynthSettings = SETTINGS) -> torch.Tensor:
    """Each subject seen from every camera, composited on white: ``[S, 3, H, V*W]``.

    Args:
        tables: ``S`` tables ``[1, K]``.
        cameras: ``[V]`` cameras shared by all subjects.
        lightings: ``S`` one-subject lightings.
    """
    strips = []
    for table, light in zip(tables, lightings):
        rgba = render_scene(table, cameras.reshape(1, -1), light, settings).rgba[0]  # [V, 4, H, W]
        rgb = rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])
        strips.append(rearrange(rgb, "v c h w -> c h (v w)"))
    return torch.stack(strips)


def _lighting(index: int, seed: int) -> Lighting:
    """Ambient for the even subjects, a random (possibly ambient-only) environment for the odd ones."""
    if index % 2 == 0:
        return Lighting.ambient(1)
    return Lighting.random(1, torch.Generator().manual_seed(seed * 7919 + index), ambient_only_prob=0.0)


def objects_sheet(path: Path, count: int = 24, per_row: int = 4) -> None:
    """``count`` procedural objects (ids 0..count-1) from azimuths 0, 90 and 200 at elevation 20."""
    cameras = orbit_cameras(torch.tensor([0.0, 90.0, 200.0]), 20.0, width=RESOLUTION)
    tables = [object_scene(i)[0] for i in range(count)]
    strips = render_strips(tables, cameras, [_lighting(i, seed=1) for i in range(count)])
    save_image(path, image_grid(strips, rows=-(-count // per_row), pad=6))


def heads_sheet(path: Path, count: int = 24, per_row: int = 4) -> None:
    """``count`` procedural heads (identity i, variant 7i mod 50) from the front, front-right, right and back."""
    cameras = orbit_cameras(torch.tensor([0.0, 45.0, 90.0, 180.0]), 5.0, width=RESOLUTION)
    tables = [head_scene(i, (7 * i) % 50)[0] for i in range(count)]
    strips = render_strips(tables, cameras, [_lighting(i, seed=2) for i in range(count)])
    save_image(path, image_grid(strips, rows=-(-count // per_row), pad=6))


SHEETS: dict[str, tuple[Callable[[Path], None], str]] = {
    "objects": (objects_sheet, "synth_objects.png"),
    "heads": (heads_sheet, "synth_heads.png"),
}
"""Sheet name -> (function writing the sheet to a path, default file name under ``--out-dir``)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sheet", choices=[*SHEETS, "all"], help="which contact sheet to regenerate")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args(argv)
    names = list(SHEETS) if args.sheet == "all" else [args.sheet]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        fn, filename = SHEETS[name]
        start = time.perf_counter()
        out = args.out_dir / filename
        fn(out)
        print(f"{name}: wrote {out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
