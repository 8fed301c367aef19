"""Synthetic training data: subjects -> multi-view RGBA, depth, normals and cameras, on disk or on the fly.

Subjects are addressed by ``(kind, split, index)`` (:class:`SubjectId`):

- heads, ``train``: index ``i`` in ``0..9999`` is identity ``i // 50``, variant ``i % 50`` (200 identities x
  50 appearance variants);
- heads, ``test``: index ``i`` in ``0..39`` is identity ``100000 + i``, variant 0 (identities never used in
  training);
- objects, ``train``: index ``i`` is object ``i`` (``0..999999``); objects, ``test``: object
  ``10_000_000 + i`` (``0..999``).

Everything about a subject is a pure function of its id: the scene, the input azimuth, the lighting (25%
ambient-only) and the random cameras each come from their own generator seeded by the id, so a subject
renders the same pixels on disk, on the fly and across runs.

On-disk layout (one folder per subject, the authors' layout plus depth, normals and parameters)::

    <out_root>/<split>/manifest.jsonl           one JSON line per subject (rebuilt after each generate)
    <out_root>/<split>/head_000123/
        images/cam_000.png .. cam_{V-1}.png     RGBA (straight alpha, RGB 0 where alpha is 0); cam_000..005
                                                are the six FaceLift views in the reference order
                                                (front, front_right, right, back, left, front_left), then
                                                the random views
        opencv_cameras.json                     {"id": "head_000123", "frames": [{w, h, fx, fy, cx, cy,
                                                w2c, "file_path": "images/cam_000.png"}, ...]}
        depth.npz                               "depth": float16 [V, H, W], camera-frame z, 0 = background
        normals.npz                             "normals": float16 [V, 3, H, W], world-space unit normals
                                                (both sampled at pixel centres, x + 0.5)
        params.json                             ids, scene parameters, lighting, render settings, version

A subject folder is written into a hidden staging folder and renamed into place, so it exists complete
or not at all.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from facelift.cameras.cameras import Cameras
from facelift.cameras.io import read_opencv_cameras, write_opencv_cameras
from facelift.cameras.orbits import FACELIFT_VIEW_NAMES, REFERENCE_FOV_DEG, REFERENCE_RADIUS, facelift_views, random_cameras, view_azimuths
from facelift.pipeline.export import staged_output_dir
from facelift.rendering.media import image_grid, save_image
from facelift.synthetic.primitives import PrimitiveTable
from facelift.synthetic.render import Lighting, SynthSettings, render_scene
from facelift.utils.io import atomic_write_text

__all__ = [
    "GENERATOR_VERSION", "SubjectId", "SubjectRender", "GenerateSummary", "split_size", "subject_views", "render_subject",
    "write_subject", "load_subject", "generate", "preview_sheet", "SyntheticStream", "SyntheticFolderDataset",
]  # fmt: skip

logger = logging.getLogger(__name__)

SubjectKind = Literal["heads", "objects"]
Split = Literal["train", "test"]
Background = Literal["random", "white", "black", "gray"]
Mode = Literal["reconstructor", "diffusion"]

GENERATOR_VERSION = "facelift-synth/2"
"""Written into every params.json and manifest line; bump when a change alters the pixels of an id."""

HEAD_TRAIN_IDENTITIES = 200
HEAD_VARIANTS = 50
HEAD_TEST_IDENTITY_BASE = 100_000
HEAD_TEST_SUBJECTS = 40
OBJECT_TRAIN_SUBJECTS = 1_000_000
OBJECT_TEST_ID_BASE = 10_000_000
OBJECT_TEST_SUBJECTS = 1_000

_SPLIT_SIZES = {
    ("heads", "train"): HEAD_TRAIN_IDENTITIES * HEAD_VARIANTS,
    ("heads", "test"): HEAD_TEST_SUBJECTS,
    ("objects", "train"): OBJECT_TRAIN_SUBJECTS,
    ("objects", "test"): OBJECT_TEST_SUBJECTS,
}
_FOLDER_PREFIX = {"heads": "head", "objects": "object"}
_BACKGROUNDS = {"white": 1.0, "black": 0.0, "gray": 0.5}
_NUM_FIXED = len(FACELIFT_VIEW_NAMES)

# Purposes of the per-subject generators: independent streams, so adding views never moves the lighting.
_AZIMUTH, _LIGHTING, _CAMERAS, _SHADOWS = 1, 2, 3, 4


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (an LCG step per value; stable across Python runs, unlike ``hash``)."""
    seed = 0x5EED_F00D
    for v in values:
        seed = (seed * 6364136223846793005 + int(v) + 1442695040888963407) % (2**63 - 1)
    return seed


def _rng(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(_mix(*values))


def split_size(kind: SubjectKind, split: Split) -> int:
    """Number of subjects in a split (valid indices are ``0 .. size - 1``).

    Example:
        >>> split_size("heads", "train"), split_size("heads", "test")
        (10000, 40)
    """
    try:
        return _SPLIT_SIZES[(kind, split)]
    except KeyError:
        raise ValueError(f"unknown kind/split {kind!r}/{split!r} (kinds: heads, objects; splits: train, test)") from None


@dataclass(frozen=True)
class SubjectId:
    """One subject of a split.

    Example:
        >>> s = SubjectId("heads", "train", 123)
        >>> s.name, s.ids
        ('head_000123', {'identity_id': 2, 'variant_id': 23})
    """

    kind: SubjectKind
    split: Split
    index: int

    def __post_init__(self) -> None:
        size = split_size(self.kind, self.split)
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index < size:
            raise ValueError(f"{self.kind} {self.split} index must be in 0..{size - 1}, got {self.index!r}")

    @property
    def ids(self) -> dict[str, int]:
        """Generator ids: ``identity_id``/``variant_id`` for heads, ``object_id`` for objects."""
        if self.kind == "heads":
            if self.split == "train":
                return {"identity_id": self.index // HEAD_VARIANTS, "variant_id": self.index % HEAD_VARIANTS}
            return {"identity_id": HEAD_TEST_IDENTITY_BASE + self.index, "variant_id": 0}
        return {"object_id": self.index if self.split == "train" else OBJECT_TEST_ID_BASE + self.index}

    @property
    def name(self) -> str:
        """Folder name, e.g. ``head_000123`` (the index within its split)."""
        return f"{_FOLDER_PREFIX[self.kind]}_{self.index:06d}"

    @property
    def seed(self) -> int:
        """Seed of everything random about the subject besides its scene (derived from the ids only)."""
        return _mix(1 if self.kind == "heads" else 2, *self.ids.values())

    def scene(self, device: torch.device | str = "cpu") -> tuple[PrimitiveTable, dict]:
        """The subject's ``[1, K]`` primitive table and its generating parameters."""
        if self.kind == "heads":
            from facelift.synthetic.heads import head_scene

            return head_scene(self.ids["identity_id"], self.ids["variant_id"], device=device)
        try:
            from facelift.synthetic.objects import object_scene
        except ImportError as err:
            raise ImportError(f"synthetic objects are unavailable ({err})") from err
        return object_scene(self.ids["object_id"], device=device)

    def input_azimuth(self, random_azimuth: bool) -> float:
        """Azimuth of the input (front) view in degrees: 0, or uniform in [0, 360) from the subject seed."""
        u = float(torch.rand(1, generator=_rng(self.seed, _AZIMUTH)))
        return 360.0 * u if random_azimuth else 0.0

    def lighting(self) -> Lighting:
        """The subject's ``[1]`` lighting: random environment and key light, ambient-only with p = 0.25."""
        return Lighting.random(1, _rng(self.seed, _LIGHTING), ambient_only_prob=0.25)


@dataclass
class SubjectRender:
    """Rendered views of one subject (all tensors on one device).

    Attributes:
        subject: the subject's id.
        rgba: ``[V, 4, H, W]`` colour in [0, 1] with straight (not premultiplied) alpha.
        depth: ``[V, 1, H, W]`` camera-frame z of the surface, 0 on the background.
        normals: ``[V, 3, H, W]`` world-space unit normals, 0 on the background.
        cameras: ``[V]`` cameras.
        view_names: ``V`` names (``front`` .. ``front_left``, then ``random_000`` ..).
        params: generating parameters (JSON-serialisable; written as ``params.json``).
    """

    subject: SubjectId
    rgba: Float[Tensor, "V 4 H W"]
    depth: Float[Tensor, "V 1 H W"]
    normals: Float[Tensor, "V 3 H W"]
    cameras: Cameras
    view_names: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.subject.name


def subject_views(
    input_azimuth_deg: float = 0.0,
    num_random: int = 32,
    resolution: int = 256,
    generator: torch.Generator | None = None,
    *,
    fixed_views: Sequence[str] = FACELIFT_VIEW_NAMES,
    device: torch.device | str | None = None,
) -> tuple[Cameras, list[str]]:
    """The fixed views around the input azimuth (by default the six FaceLift views in the reference order;
    any names of :data:`~facelift.cameras.VIEW_AZIMUTHS`, e.g. the eight of the view-count ablation) then
    ``num_random`` random views.

    Random views look at the origin from radius 2.7 with a 50-degree field of view, uniform over the
    spherical band of elevations -30..60 degrees (:func:`~facelift.cameras.random_cameras`; the first ``k``
    random views do not depend on ``num_random``).

    Returns:
        ``(cameras [F + num_random], names)`` for ``F`` fixed views.

    Example:
        >>> cams, names = subject_views(0.0, 2, 64, torch.Generator().manual_seed(0))
        >>> cams.batch_shape, names[0], names[-1]
        (torch.Size([8]), 'front', 'random_001')
    """
    if isinstance(num_random, bool) or not isinstance(num_random, int) or num_random < 0:
        raise ValueError(f"num_random must be a non-negative integer, got {num_random!r}")
    fixed = facelift_views(float(input_azimuth_deg), resolution=resolution, view_names=fixed_views, device=device)
    rand = random_cameras(
        num_random, generator=generator, radius_range=(REFERENCE_RADIUS, REFERENCE_RADIUS), fov_deg=REFERENCE_FOV_DEG,
        resolution=resolution, device=fixed.device,
    )  # fmt: skip
    names = [*fixed_views, *(f"random_{i:03d}" for i in range(num_random))]
    return Cameras.cat([fixed, rand]), names


def _lighting_params(light: Lighting) -> dict[str, Any]:
    out: dict[str, Any] = {"ambient_only": bool((light.key_colour[0].abs().sum() == 0).item())}
    for key in ("sky", "horizon", "ground", "key_dir", "key_colour", "softness"):
        out[key] = getattr(light, key)[0].tolist()
    return out


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
    return resolution


@torch.no_grad()
def render_subject(
    kind: SubjectKind,
    index: int,
    split: Split = "train",
    *,
    resolution: int = 256,
    num_random: int = 32,
    supersample: int = 2,
    random_azimuth: bool = False,
    views: Sequence[int] | None = None,
    shadows: bool = True,
    fixed_views: Sequence[str] = FACELIFT_VIEW_NAMES,
    device: torch.device | str = "cpu",
) -> SubjectRender:
    """Render one subject from its fixed views (the six FaceLift views) and ``num_random`` random views.

    Args:
        kind: ``heads`` or ``objects``.
        index: subject index within the split (see the module docstring).
        split: ``train`` or ``test``.
        resolution: square image size in pixels (>= 8).
        num_random: random views after the fixed ones.
        supersample: samples per pixel along each axis (anti-aliasing; depth and normals take one sample).
        random_azimuth: rotate the fixed views to a random input azimuth (from the subject seed); else 0.
        views: render only these view indices (into the ``F + num_random`` views), in this order.
        shadows: trace shadow rays toward the key light.
        fixed_views: names of the fixed views (:data:`~facelift.cameras.VIEW_AZIMUTHS`); the random views do
            not depend on them.
        device: where to render; the result stays there.

    Returns:
        :class:`SubjectRender` with ``V = F + num_random`` views (or ``len(views)``), ``F = len(fixed_views)``.

    Example:
        >>> r = render_subject("heads", 0, resolution=32, num_random=2, supersample=1)
        >>> r.rgba.shape, r.name
        (torch.Size([8, 4, 32, 32]), 'head_000000')
    """
    subject = SubjectId(kind, split, index)
    resolution = _check_resolution(resolution)
    azimuth = subject.input_azimuth(random_azimuth)
    cameras, names = subject_views(azimuth, num_random, resolution, _rng(subject.seed, _CAMERAS), fixed_views=fixed_views)
    if views is not None:
        views = [int(v) for v in views]
        if not views or any(not 0 <= v < len(names) for v in views):
            raise ValueError(f"views must be a non-empty list of indices in 0..{len(names) - 1}, got {views}")
        cameras, names = cameras[torch.tensor(views)], [names[v] for v in views]
    table, scene_params = subject.scene(device)
    lighting = subject.lighting()
    settings = SynthSettings(supersample=supersample, shadows=shadows, seed=_mix(subject.seed, _SHADOWS) % 2**31)
    out = render_scene(table, cameras.to(device).reshape(1, -1), lighting, settings)
    params = {
        "name": subject.name,
        "kind": kind,
        "split": split,
        "index": index,
        "ids": subject.ids,
        "scene": scene_params,
        "lighting": _lighting_params(lighting),
        "input_azimuth_deg": azimuth,
        "random_azimuth": bool(random_azimuth),
        "resolution": resolution,
        "num_random": num_random,
        "supersample": supersample,
        # The renderer takes depth and normals from one sample per pixel, sample s // 2 of s along each
        # axis: at (x + offset, y + offset) with this offset, not at the pixel centre when s is even.
        "depth_pixel_offset": 0.5,  # depth and normals are sampled at pixel centres
        "shadows": bool(shadows),
        "view_names": names,
        "generator_version": GENERATOR_VERSION,
    }
    return SubjectRender(subject, out.rgba[0], out.depth[0], out.normals[0], cameras.to(device), names, params)


def _image_path(i: int) -> str:
    return f"images/cam_{i:03d}.png"


def write_subject(out_root: str | os.PathLike, render: SubjectRender, *, overwrite: bool = False) -> Path:
    """Write a rendered subject to ``out_root/<split>/<name>/`` (layout in the module docstring).

    The folder is assembled in a hidden staging folder beside it and renamed into place; on any error
    nothing is left behind.

    Raises:
        FileExistsError: the subject folder exists and ``overwrite`` is False.

    Example:
        >>> write_subject("data/synthetic", render_subject("heads", 0))  # doctest: +SKIP
        PosixPath('data/synthetic/train/head_000000')
    """
    folder = Path(out_root) / render.subject.split / render.name
    folder.parent.mkdir(parents=True, exist_ok=True)
    rgba = render.rgba.detach().float().cpu()
    num = rgba.shape[0]
    paths = [_image_path(i) for i in range(num)]
    with staged_output_dir(folder, overwrite=overwrite) as staging:
        (staging / "images").mkdir()
        for path, image in zip(paths, rgba):
            save_image(staging / path, image)
        write_opencv_cameras(staging / "opencv_cameras.json", render.cameras.to("cpu"), paths, id=render.name)
        depth = render.depth.detach().cpu()[:, 0].numpy().astype(np.float16)  # [V, H, W]
        np.savez_compressed(staging / "depth.npz", depth=depth)
        normals = render.normals.detach().cpu().numpy().astype(np.float16)  # [V, 3, H, W]
        np.savez_compressed(staging / "normals.npz", normals=normals)
        atomic_write_text(staging / "params.json", json.dumps(render.params, indent=1) + "\n")
    return folder


def _fixed_views_of(view_names: Sequence[str]) -> list[str]:
    """The fixed (named, not random) views among a subject's ``view_names``, in order."""
    return [n for n in view_names if not str(n).startswith("random_")]


def _check_fixed_views(fixed_views: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(n) for n in fixed_views)
    view_azimuths(names)  # raises on unknown, repeated or no names
    return names


def _read_params(folder: Path) -> dict[str, Any]:
    path = folder / "params.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{folder} is not a synthetic subject folder (no params.json)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def load_subject(
    folder: str | os.PathLike,
    *,
    views: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
) -> SubjectRender:
    """Read a subject folder written by :func:`write_subject`.

    Args:
        folder: the subject folder (``.../<split>/<name>``).
        views: read only these view indices, in this order (all by default).
        device: device of the returned tensors.

    Returns:
        :class:`SubjectRender` (float32; depth and normals carry the file's float16 precision).

    Example:
        >>> load_subject("data/synthetic/train/head_000000", views=[0, 3]).rgba.shape  # doctest: +SKIP
        torch.Size([2, 4, 256, 256])
    """
    folder = Path(folder)
    params = _read_params(folder)
    cameras, file_paths, _ = read_opencv_cameras(folder / "opencv_cameras.json")
    num = cameras.batch_shape[0]
    names = list(params.get("view_names") or [f"view_{i:03d}" for i in range(num)])
    index = list(range(num)) if views is None else [int(v) for v in views]
    if not index or any(not 0 <= v < num for v in index):
        raise ValueError(f"{folder}: views must be indices in 0..{num - 1}, got {index}")
    images = []
    for v in index:
        with Image.open(folder / file_paths[v]) as im:
            images.append(np.asarray(im.convert("RGBA")))
    rgba = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0  # [V, 4, H, W]
    with np.load(folder / "depth.npz") as data:
        depth = torch.from_numpy(data["depth"][index].astype(np.float32))[:, None]  # [V, 1, H, W]
    with np.load(folder / "normals.npz") as data:
        normals = torch.from_numpy(data["normals"][index].astype(np.float32))  # [V, 3, H, W]
    subject = SubjectId(params["kind"], params["split"], int(params["index"]))
    sel = torch.tensor(index)
    return SubjectRender(
        subject, rgba.to(device), depth.to(device), normals.to(device), cameras[sel].to(device), [names[v] for v in index], params
    )


# ---- batch generation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate` did."""

    out_dir: Path
    """``out_root/<split>``."""
    rendered: int
    """Subjects rendered by this call."""
    skipped: int
    """Subjects of the requested range that already existed."""
    manifest: Path
    """The rebuilt ``manifest.jsonl``."""
    seconds: float


_SETTING_KEYS = ("resolution", "num_random", "supersample", "random_azimuth", "generator_version")


def _subject_folders(split_dir: Path) -> list[Path]:
    """Complete subject folders (staging folders are hidden, so never listed)."""
    if not split_dir.is_dir():
        return []
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "params.json").is_file())


def _write_manifest(split_dir: Path) -> Path:
    lines = []
    for folder in _subject_folders(split_dir):
        params = _read_params(folder)
        entry = {key: params.get(key) for key in ("name", "kind", "split", "index", "ids", "generator_version")}
        entry["params"] = params
        lines.append(json.dumps(entry, separators=(",", ":")))
    path = split_dir / "manifest.jsonl"
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def _init_worker() -> None:
    torch.set_num_threads(1)


def _render_and_write(out_root: str, kind: str, split: str, index: int, options: dict[str, Any]) -> str:
    render = render_subject(kind, index, split, **options)
    return write_subject(out_root, render).name


def generate(
    kind: SubjectKind,
    out_root: str | os.PathLike,
    count: int,
    split: Split = "train",
    resolution: int = 256,
    num_random: int = 32,
    start: int = 0,
    workers: int = 1,
    progress: bool = True,
    *,
    supersample: int = 2,
    random_azimuth: bool = False,
    fixed_views: Sequence[str] = FACELIFT_VIEW_NAMES,
    device: torch.device | str = "cpu",
) -> GenerateSummary:
    """Render subjects ``start .. start + count - 1`` of a split to ``out_root/<split>/``, resumably.

    Each subject gets its ``fixed_views`` (the six FaceLift views by default) and ``num_random`` random views.
    Subjects whose folder already exists are skipped (their ``params.json`` must match the requested
    settings). ``workers > 1`` renders in that many spawned processes with one torch thread each. At the
    end, even after an error, ``manifest.jsonl`` is rebuilt atomically from every subject folder's
    ``params.json``.

    Raises:
        ValueError: bad arguments, an index range outside the split, or existing subjects rendered with
            other settings.
        OSError: the output folder cannot be created or written.

    Example:
        >>> generate("heads", "data/synthetic", 100, workers=8).rendered  # doctest: +SKIP
        100
    """
    for name, value, low in (("count", count, 1), ("num_random", num_random, 0), ("start", start, 0), ("workers", workers, 1), ("supersample", supersample, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    resolution = _check_resolution(resolution)
    fixed_views = _check_fixed_views(fixed_views)
    size = split_size(kind, split)
    if start + count > size:
        raise ValueError(f"subjects {start}..{start + count - 1} exceed the {kind} {split} split (0..{size - 1})")
    began = time.perf_counter()
    split_dir = Path(out_root) / split
    try:
        split_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create output folder {split_dir}: {err.strerror or err}") from err
    if not os.access(split_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {split_dir} is not writable")

    options = {"resolution": resolution, "num_random": num_random, "supersample": supersample, "random_azimuth": random_azimuth, "device": str(device)}
    wanted = {**options, "generator_version": GENERATOR_VERSION}
    options["fixed_views"] = list(fixed_views)
    todo, skipped = [], 0
    for index in range(start, start + count):
        folder = split_dir / SubjectId(kind, split, index).name
        if (folder / "params.json").is_file():
            params = _read_params(folder)
            diff = [f"{k}={params.get(k)!r}" for k in _SETTING_KEYS if params.get(k) != wanted[k]]
            rendered_fixed = _fixed_views_of(params.get("view_names") or [])
            if rendered_fixed != list(fixed_views):
                diff.append(f"fixed views={rendered_fixed!r}")
            if diff:
                raise ValueError(
                    f"{folder} was rendered with other settings ({', '.join(diff)}); "
                    "use another output folder or the same settings"
                )
            skipped += 1
        else:
            if folder.exists():
                raise ValueError(f"{folder} exists but is not a complete subject (no params.json); remove it to re-render")
            todo.append(index)
    stale = [p.name for p in split_dir.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")]
    if stale:
        logger.warning("%s holds %d staging folder(s) from interrupted runs (.*.partial); safe to delete when no generate is running", split_dir, len(stale))

    from tqdm.auto import tqdm

    bar = tqdm(total=count, initial=skipped, desc=f"{kind}/{split}", unit="subject", disable=not progress, dynamic_ncols=True)
    rendered = 0
    try:
        if workers == 1 or len(todo) <= 1:
            for index in todo:
                _render_and_write(str(out_root), kind, split, index, options)
                rendered += 1
                bar.update(1)
        else:
            import multiprocessing

            # spawn: fork after torch has started its thread pools can deadlock, and CUDA needs it.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_init_worker) as pool:
                pending = {pool.submit(_render_and_write, str(out_root), kind, split, i, options) for i in todo}
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()
                            rendered += 1
                            bar.update(1)
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
    finally:
        bar.close()
        manifest = _write_manifest(split_dir)
    seconds = time.perf_counter() - began
    logger.info("%s/%s: rendered %d, skipped %d subjects in %.1f s -> %s", kind, split, rendered, skipped, seconds, split_dir)
    return GenerateSummary(split_dir, rendered, skipped, manifest, seconds)


@torch.no_grad()
def preview_sheet(
    kind: SubjectKind = "heads",
    count: int = 24,
    resolution: int = 128,
    split: Split = "train",
    *,
    supersample: int = 2,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """A contact sheet: ``count`` subjects (rows, spread over the split) x 4 views (front, front_right,
    right, back) on white; the first half of the rows in ambient light, the rest under their own random
    key light (never ambient-only).

    Returns:
        ``[H', W', 3]`` uint8 image.

    Example:
        >>> preview_sheet(count=2, resolution=32, supersample=1).shape
        (66, 134, 3)
    """
    size = split_size(kind, split)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= size:
        raise ValueError(f"count must be in 1..{size} for {kind} {split}, got {count!r}")
    resolution = _check_resolution(resolution)
    cameras = facelift_views(0.0, resolution=resolution, device=device)[:4].reshape(1, 4)
    tiles = []
    for row in range(count):
        subject = SubjectId(kind, split, row * size // count)
        table, _ = subject.scene(device)
        if row < count // 2:
            light = Lighting.ambient(1)
        else:
            light = Lighting.random(1, _rng(subject.seed, _LIGHTING), ambient_only_prob=0.0)
        out = render_scene(table, cameras, light, SynthSettings(supersample=supersample, seed=0))
        rgba = out.rgba[0]
        tiles.append(rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:]))  # [4, 3, H, W] on white
    return image_grid(torch.cat(tiles).cpu(), rows=count, pad=2)


# ---- training samples --------------------------------------------------------------------------------


def _background(background: Background, generator: torch.Generator) -> float:
    choice = int(torch.randint(3, (1,), generator=generator))  # always drawn: the stream stays aligned
    if background == "random":
        return list(_BACKGROUNDS.values())[choice]
    return _BACKGROUNDS[background]


def _check_sampling(mode: Mode, num_views: int | None, background: Background | None, num_fixed: int = _NUM_FIXED) -> tuple[int, Background]:
    if mode not in ("reconstructor", "diffusion"):
        raise ValueError(f"mode must be 'reconstructor' or 'diffusion', got {mode!r}")
    if num_views is None:
        num_views = 8 if mode == "reconstructor" else num_fixed
    if mode == "diffusion" and num_views != num_fixed:
        raise ValueError(f"diffusion samples are the {num_fixed} fixed views, got num_views={num_views}")
    if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
        raise ValueError(f"num_views must be a positive integer, got {num_views!r}")
    if background is None:
        background = "white" if mode == "reconstructor" else "random"
    if background not in ("random", *_BACKGROUNDS):
        raise ValueError(f"background must be random, white, black or gray, got {background!r}")
    return num_views, background


def _choose_views(
    mode: Mode, num_views: int, total: int, generator: torch.Generator, fixed: Sequence[int], keep_fixed: bool = False
) -> list[int]:
    """Diffusion: the ``fixed`` view indices; reconstructor: ``num_views`` of the ``total`` at random, or with
    ``keep_fixed`` the ``fixed`` ones first (in order), then others at random."""
    if mode == "diffusion":
        return list(fixed)
    if num_views > total:
        raise ValueError(f"cannot sample {num_views} views from {total}")
    if keep_fixed:
        if num_views < len(fixed):
            raise ValueError(f"keep_fixed needs num_views >= the {len(fixed)} fixed views, got {num_views}")
        taken = set(fixed)
        rest = [i for i in torch.randperm(total, generator=generator).tolist() if i not in taken]
        return [*fixed, *rest[: num_views - len(fixed)]]
    return torch.randperm(total, generator=generator)[:num_views].tolist()


def _make_item(render: SubjectRender, background: float) -> dict[str, Any]:
    rgba = render.rgba
    alpha = rgba[:, 3:4]
    images = rgba[:, :3] * alpha + background * (1 - alpha)  # straight alpha over a flat colour
    return {
        "images": images,  # [V, 3, H, W]
        "alpha": alpha,  # [V, 1, H, W]
        "c2w": render.cameras.c2w,  # [V, 4, 4]
        "K": render.cameras.K,  # [V, 3, 3]
        "depth": render.depth,  # [V, 1, H, W]
        "background": torch.full((3,), background, device=rgba.device),
        "subject": render.name,
    }


class SyntheticStream(torch.utils.data.IterableDataset):
    """Training samples rendered on the fly.

    Each item is a dict: ``images [V, 3, H, W]`` composited over the sample's background, ``alpha [V, 1, H,
    W]``, ``c2w [V, 4, 4]``, ``K [V, 3, 3]``, ``depth [V, 1, H, W]`` (float32, on ``device``),
    ``background [3]`` and ``subject`` (folder name). A subject's views, lighting and pixels are those
    :func:`render_subject` would write to disk (at this ``supersample``).

    Modes: ``reconstructor`` samples ``num_views`` (default 8) distinct views, in random order, among the
    fixed and ``num_random`` random views; ``diffusion`` gives exactly the fixed views in order (the six
    FaceLift views by default; view 0 is the condition).

    Subjects are split across DataLoader workers (worker ``w`` of ``n`` takes ``subjects[w::n]``) and visited
    in a fresh seeded permutation each epoch; the stream is deterministic for a given ``seed``, worker id and
    worker count. Rendering on CUDA inside DataLoader workers needs ``multiprocessing_context="spawn"``.

    Args:
        kind: ``heads`` or ``objects``.
        split: ``train`` or ``test``.
        resolution: square image size.
        num_views: views per sample (None: 8 for the reconstructor, 6 for diffusion).
        mode: ``reconstructor`` or ``diffusion``.
        num_random: random views per subject to sample from (reconstructor mode).
        background: ``random`` (white, black or gray per sample, as the reference trains the diffusion
            model), ``white``, ``black`` or ``gray``; None: white for the reconstructor (its renders use a
            white background), random for diffusion.
        supersample: anti-aliasing samples per pixel along each axis.
        random_azimuth: rotate the fixed views to the subject's random input azimuth.
        fixed_views: names of the fixed views (:data:`~facelift.cameras.VIEW_AZIMUTHS`; default the six).
        keep_fixed: reconstructor mode: every sample holds the fixed views first (in order), then
            ``num_views - F`` random others (as the pipeline feeds the reconstructor the fixed views).
        subjects: subject indices to draw from (default: the whole split).
        epochs: passes over the subjects (None: endless).
        seed: seeds subject order, view choice and backgrounds.
        device: where samples are rendered and returned.
        shard: split the subjects across DataLoader workers (False: the stream ignores the worker it runs in and
            yields the same items in every one, as needed when a map-style dataset renders one subject with it).

    Example:
        >>> stream = SyntheticStream("heads", resolution=32, num_random=2, supersample=1)
        >>> next(iter(stream))["images"].shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(
        self,
        kind: SubjectKind = "heads",
        split: Split = "train",
        *,
        resolution: int = 256,
        num_views: int | None = None,
        mode: Mode = "reconstructor",
        num_random: int = 32,
        background: Background | None = None,
        supersample: int = 1,
        random_azimuth: bool = False,
        fixed_views: Sequence[str] = FACELIFT_VIEW_NAMES,
        keep_fixed: bool = False,
        subjects: Sequence[int] | None = None,
        epochs: int | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        shard: bool = True,
    ) -> None:
        super().__init__()
        size = split_size(kind, split)
        fixed_views = _check_fixed_views(fixed_views)
        self.num_views, self.background = _check_sampling(mode, num_views, background, len(fixed_views))
        if mode == "reconstructor" and self.num_views > len(fixed_views) + num_random:
            raise ValueError(f"num_views={self.num_views} exceeds the {len(fixed_views)} + {num_random} views per subject")
        self.subjects = range(size) if subjects is None else [int(i) for i in subjects]
        if len(self.subjects) == 0 or any(not 0 <= i < size for i in self.subjects):
            raise ValueError(f"subjects must be a non-empty list of indices in 0..{size - 1}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be >= 1 or None, got {epochs}")
        self.kind, self.split, self.mode, self.epochs, self.seed = kind, split, mode, epochs, int(seed)
        self.shard, self.keep_fixed = bool(shard), bool(keep_fixed)
        self.options = {
            "resolution": _check_resolution(resolution), "num_random": 0 if mode == "diffusion" else num_random,
            "supersample": supersample, "random_azimuth": random_azimuth, "fixed_views": fixed_views, "device": device,
        }  # fmt: skip

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info() if self.shard else None
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        pool = self.subjects[worker::workers]
        if len(pool) == 0:
            return
        num_fixed = len(self.options["fixed_views"])
        total = num_fixed + self.options["num_random"]
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            g = _rng(self.seed, worker, workers, epoch)
            for j in torch.randperm(len(pool), generator=g).tolist():
                views = _choose_views(self.mode, self.num_views, total, g, range(num_fixed), self.keep_fixed)
                background = _background(self.background, g)
                render = render_subject(self.kind, pool[j], self.split, views=views, **self.options)
                yield _make_item(render, background)
            epoch += 1


class SyntheticFolderDataset(torch.utils.data.Dataset):
    """Training samples read from subject folders written by :func:`generate` (same items as
    :class:`SyntheticStream`).

    Sample ``i`` of epoch ``e`` draws its views and background from a generator seeded by
    ``(seed, i, e)``; call :meth:`set_epoch` to vary them between epochs.

    Args:
        root: a split folder (``out_root/<split>``) holding subject folders.
        mode, num_views, background: as in :class:`SyntheticStream`.
        fixed_views: diffusion mode (and ``keep_fixed``): the named views each item holds, in this order
            (default the six FaceLift views); every subject must have been rendered with them (``facelift synth
            --fixed-views``).
        keep_fixed: as in :class:`SyntheticStream`.
        seed: seeds view choice and backgrounds.
        device: device of the returned tensors.

    Example:
        >>> ds = SyntheticFolderDataset("data/synthetic/train", mode="diffusion")  # doctest: +SKIP
        >>> ds[0]["images"].shape  # doctest: +SKIP
        torch.Size([6, 3, 256, 256])
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        mode: Mode = "reconstructor",
        num_views: int | None = None,
        background: Background | None = None,
        fixed_views: Sequence[str] = FACELIFT_VIEW_NAMES,
        keep_fixed: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.root = Path(root)
        self.keep_fixed = bool(keep_fixed)
        self.folders = _subject_folders(self.root)
        if not self.folders:
            raise ValueError(f"{self.root} holds no subject folders (expected <split>/<name>/params.json)")
        self.fixed_views = _check_fixed_views(fixed_views)
        self.num_views, self.background = _check_sampling(mode, num_views, background, len(self.fixed_views))
        self.mode, self.seed, self.device, self.epoch = mode, int(seed), device, 0

    def __len__(self) -> int:
        return len(self.folders)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        folder = self.folders[i]
        names = list(_read_params(folder).get("view_names") or [])
        fixed = []
        if self.mode == "diffusion" or self.keep_fixed:
            missing = [n for n in self.fixed_views if n not in names]
            if missing:
                raise ValueError(
                    f"{folder} has no {', '.join(missing)} view (its fixed views: {', '.join(_fixed_views_of(names))}); "
                    f"render the data with: facelift synth heads --fixed-views {' '.join(self.fixed_views)} ..."
                )
            fixed = [names.index(n) for n in self.fixed_views]
        g = _rng(self.seed, i, self.epoch)
        views = _choose_views(self.mode, self.num_views, len(names), g, fixed, self.keep_fixed)
        background = _background(self.background, g)
        return _make_item(load_subject(folder, views=views, device=self.device), background)

