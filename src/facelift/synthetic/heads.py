"""Procedural human heads: identity (face shape) x appearance (hair, skin, expression, clothes, pose).

Everything is deterministic in ``(identity_id, variant_id)``: the identity's continuous shape parameters
come from a generator seeded by the identity id alone, the appearance from one seeded by both. Heads are
built from analytic primitives (``primitives.py``) in the reference world frame: z up, the face toward
-y, the head centred near the origin so that the reference cameras (radius 2.7, FOV 50) frame head and
shoulders like the authors' renders.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from facelift.synthetic.primitives import (
    Kind,
    Mask,
    Op,
    Pattern,
    PrimitiveBuilder,
    PrimitiveTable,
    euler_rotation,
    seeded_generator,
)

__all__ = [
    "HAIRSTYLES",
    "EXPRESSIONS",
    "GARMENTS",
    "HeadIdentity",
    "HeadAppearance",
    "sample_identity",
    "sample_appearance",
    "build_head",
    "head_scene",
]

HAIRSTYLES = ("bald", "buzz", "short", "long_straight", "bob", "ponytail", "bun", "curly")
EXPRESSIONS = ("neutral", "smile", "open_mouth", "frown", "raised_brows", "closed_eyes")
GARMENTS = ("tshirt", "collared_shirt", "hoodie", "turtleneck")
CLOTH_PATTERNS = (Pattern.SOLID, Pattern.STRIPES, Pattern.CHECKER, Pattern.DOTS, Pattern.NOISE)

# Skin tones from very light to very dark (sRGB-ish albedo), interpolated continuously.
_SKIN = torch.tensor(
    [
        [0.96, 0.80, 0.69],
        [0.92, 0.72, 0.58],
        [0.84, 0.62, 0.47],
        [0.72, 0.50, 0.36],
        [0.56, 0.37, 0.25],
        [0.40, 0.26, 0.17],
        [0.27, 0.17, 0.11],
    ]
)
_HAIR = torch.tensor(
    [
        [0.06, 0.05, 0.05],  # black
        [0.20, 0.12, 0.07],  # dark brown
        [0.40, 0.26, 0.14],  # brown
        [0.70, 0.52, 0.30],  # dark blond
        [0.88, 0.76, 0.50],  # blond
        [0.55, 0.22, 0.10],  # auburn / red
        [0.75, 0.75, 0.74],  # grey
        [0.30, 0.30, 0.60],  # dyed blue
    ]
)
_IRIS = torch.tensor([[0.35, 0.22, 0.12], [0.20, 0.12, 0.06], [0.30, 0.45, 0.65], [0.35, 0.50, 0.30], [0.50, 0.45, 0.30]])


@dataclass(frozen=True)
class HeadIdentity:
    """Continuous face-shape parameters (each in [0, 1], mapped to shapes in :func:`build_head`)."""

    cranium_width: float
    cranium_depth: float
    cranium_height: float
    forehead: float
    brow_ridge: float
    cheekbones: float
    jaw_width: float
    chin: float
    nose_length: float
    nose_width: float
    nose_bridge: float
    ears: float
    lips: float
    eye_spacing: float
    eye_size: float
    neck: float
    iris: int
    """Index into the iris colour palette."""


@dataclass(frozen=True)
class HeadAppearance:
    """A variant of an identity."""

    hairstyle: str
    hair_colour: tuple[float, float, float]
    skin_tone: float
    """0 (very light) .. 1 (very dark)."""
    expression: str
    garment: str
    cloth_pattern: int
    cloth_colour: tuple[float, float, float]
    cloth_colour2: tuple[float, float, float]
    facial_hair: str
    """none, stubble, moustache or beard."""
    glasses: bool
    yaw: float
    pitch: float
    roll: float
    """Head pose in degrees (each within about +-15)."""


def sample_identity(identity_id: int) -> HeadIdentity:
    """Deterministic identity for an id (any non-negative integer)."""
    g = seeded_generator(identity_id, 1)
    u = torch.rand(16, generator=g).tolist()
    iris = int(torch.randint(len(_IRIS), (1,), generator=g))
    return HeadIdentity(*u, iris=iris)


def sample_appearance(identity_id: int, variant_id: int) -> HeadAppearance:
    """Deterministic appearance variant ``variant_id`` of an identity."""
    g = seeded_generator(identity_id, variant_id, 2)
    r = lambda: float(torch.rand(1, generator=g))  # noqa: E731
    pick = lambda seq: seq[int(torch.randint(len(seq), (1,), generator=g))]  # noqa: E731
    hair = _HAIR[int(torch.randint(len(_HAIR), (1,), generator=g))] * (0.85 + 0.3 * r())
    cloth = torch.rand(3, generator=g) * 0.8 + 0.1
    cloth2 = torch.rand(3, generator=g) * 0.8 + 0.1
    facial = pick(("none", "none", "none", "stubble", "moustache", "beard"))
    return HeadAppearance(
        hairstyle=pick(HAIRSTYLES),
        hair_colour=tuple(hair.clamp(0, 1).tolist()),
        skin_tone=r(),
        expression=pick(EXPRESSIONS),
        garment=pick(GARMENTS),
        cloth_pattern=pick(CLOTH_PATTERNS),
        cloth_colour=tuple(cloth.tolist()),
        cloth_colour2=tuple(cloth2.tolist()),
        facial_hair=facial,
        glasses=r() < 0.2,
        yaw=(r() * 2 - 1) * 15,
        pitch=(r() * 2 - 1) * 12,
        roll=(r() * 2 - 1) * 8,
    )


def _skin_colour(tone: float) -> tuple[float, float, float]:
    x = min(max(tone, 0.0), 1.0) * (len(_SKIN) - 1)
    i = min(int(x), len(_SKIN) - 2)
    return tuple((_SKIN[i] + (_SKIN[i + 1] - _SKIN[i]) * (x - i)).tolist())


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def build_head(identity: HeadIdentity, appearance: HeadAppearance) -> PrimitiveBuilder:
    """Assemble the primitives of one head; returns the builder (``.build()`` gives the table)."""
    idn, app = identity, appearance
    b = PrimitiveBuilder()
    skin = _skin_colour(app.skin_tone)
    skin_dark = tuple(c * 0.8 for c in skin)
    hair = app.hair_colour
    hair_hi = tuple(min(1.0, c * 1.5 + 0.05) for c in hair)
    skin_kw = dict(colour=skin, pattern=Pattern.SKIN, pattern_scale=1.0, subsurface=0.7, roughness=0.55, specular=0.25)
    hair_kw = dict(colour=hair, colour2=hair_hi, pattern=Pattern.HAIR, pattern_scale=1.0, roughness=0.35, specular=0.5)
    cloth_kw = dict(colour=app.cloth_colour, colour2=app.cloth_colour2, pattern=app.cloth_pattern, pattern_scale=1.5, roughness=0.8, specular=0.05)

    # --- torso and clothing (not posed with the head) -------------------------------------------------
    shoulder_w = _lerp(0.72, 0.88, idn.neck)
    b.add(Kind.SPHERE, centre=(0, 0.08, -1.08), size=(shoulder_w, 0.4, 0.36), **cloth_kw)
    neck_r = _lerp(0.17, 0.22, idn.neck)
    b.add(Kind.CYLINDER, centre=(0, 0.06, -0.68), size=(neck_r, neck_r * 0.95, 0.3), **skin_kw)
    if app.garment == "turtleneck":
        b.add(Kind.CYLINDER, centre=(0, 0.06, -0.8), size=(neck_r * 1.2, neck_r * 1.15, 0.22), **cloth_kw)
    elif app.garment == "collared_shirt":
        for side in (-1, 1):
            b.add(Kind.BOX, centre=(side * neck_r * 0.9, -0.08, -0.82), size=(0.09, 0.012, 0.07), rotation=(side * 0.5, 0.4, side * 0.5), **cloth_kw)
    elif app.garment == "hoodie":
        b.add(Kind.SPHERE, centre=(0, 0.2, -0.78), size=(0.36, 0.2, 0.2), **cloth_kw)
        for side in (-1, 1):
            b.add(Kind.CYLINDER, centre=(side * 0.1, -0.33, -0.98), size=(0.008, 0.008, 0.12), colour=(0.9, 0.9, 0.9))
    else:  # t-shirt: a round collar line
        b.add(Kind.CYLINDER, centre=(0, 0.06, -0.86), size=(neck_r * 1.12, neck_r * 1.1, 0.04), **cloth_kw)

    # --- head, posed about the top of the neck ---------------------------------------------------------
    b.set_pose(euler_rotation(math.radians(app.yaw), math.radians(app.pitch), math.radians(app.roll)), pivot=(0.0, 0.05, -0.45))
    rx = _lerp(0.47, 0.55, idn.cranium_width)
    ry = _lerp(0.56, 0.64, idn.cranium_depth)
    rz = _lerp(0.62, 0.72, idn.cranium_height)
    hc = (0.0, 0.02, 0.12)
    brow_h = 0.2 + (0.06 if app.expression == "raised_brows" else 0.0) - (0.02 if app.expression == "frown" else 0.0)
    brow_tilt = -0.25 if app.expression == "frown" else (0.1 if app.expression == "raised_brows" else 0.0)
    stubble = {"stubble": 0.8, "beard": 0.5, "moustache": 0.3}.get(app.facial_hair, 0.0)
    brows = tuple(c * 0.7 for c in hair) if app.hairstyle != "bald" else tuple(c * 0.5 for c in skin)
    face_params = (*brows, brow_h, _lerp(0.018, 0.03, idn.brow_ridge), stubble, 0.5 * (1 - app.skin_tone), brow_tilt)
    b.add(Kind.SPHERE, centre=hc, size=(rx, ry, rz), face=1, face_params=face_params, **skin_kw)
    # Forehead, brow ridge, cheekbones, jaw and chin shape the silhouette.
    b.add(Kind.SPHERE, centre=(0, -0.2, 0.3), size=(rx * 0.8, 0.38, _lerp(0.3, 0.4, idn.forehead)), **skin_kw)
    b.add(Kind.SPHERE, centre=(0, -0.5, 0.25), size=(0.36, 0.08, _lerp(0.03, 0.07, idn.brow_ridge)), **skin_kw)
    for side in (-1, 1):
        b.add(Kind.SPHERE, centre=(side * _lerp(0.22, 0.27, idn.cheekbones), -0.42, 0.0), size=(0.12, 0.12, 0.1), **skin_kw)
    jaw_w = _lerp(0.3, 0.44, idn.jaw_width)
    b.add(Kind.SPHERE, centre=(0, -0.18, -0.22), size=(jaw_w, 0.42, 0.3), **skin_kw)
    chin_w = _lerp(0.1, 0.18, idn.chin)
    b.add(Kind.SPHERE, centre=(0, -0.45, _lerp(-0.42, -0.48, idn.chin)), size=(chin_w, 0.12, 0.1), **skin_kw)
    # Nose: bridge and tip.
    nose_len = _lerp(0.1, 0.17, idn.nose_length)
    nose_w = _lerp(0.05, 0.09, idn.nose_width)
    b.add(Kind.SPHERE, centre=(0, -0.58, 0.12), size=(0.045, _lerp(0.05, 0.08, idn.nose_bridge), 0.14), **skin_kw)
    b.add(Kind.SPHERE, centre=(0, -0.58 - nose_len * 0.5, 0.0), size=(nose_w, 0.07, 0.065), **skin_kw)
    for side in (-1, 1):  # nostrils
        b.add(Kind.SPHERE, centre=(side * nose_w * 0.55, -0.6 - nose_len * 0.45, -0.035), size=(0.018, 0.02, 0.012), colour=tuple(c * 0.35 for c in skin), op=Op.SUBTRACT)
    # Ears.
    ear = _lerp(0.12, 0.17, idn.ears)
    for side in (-1, 1):
        b.add(Kind.SPHERE, centre=(side * (rx - 0.01), 0.02, 0.07), size=(0.035, 0.08, ear), rotation=(side * 0.3, 0.0, 0.0), **skin_kw)
    # Eyes in carved sockets, with lids.
    spacing = _lerp(0.15, 0.21, idn.eye_spacing)
    eye_r = _lerp(0.055, 0.07, idn.eye_size)
    lid_closed = app.expression == "closed_eyes"
    for side in (-1, 1):
        ex = side * spacing
        b.add(Kind.SPHERE, centre=(ex, -0.53, 0.14), size=(eye_r * 1.25, 0.1, eye_r * 0.95), colour=skin_dark, op=Op.SUBTRACT)
        b.add(Kind.SPHERE, centre=(ex, -0.5, 0.14), size=(eye_r, eye_r, eye_r), colour=(0.95, 0.94, 0.92), colour2=tuple(_IRIS[idn.iris].tolist()), pattern=Pattern.IRIS, roughness=0.1, specular=0.8)
        lid_z = 0.14 + (0.0 if lid_closed else eye_r * 0.75)
        b.add(Kind.SPHERE, centre=(ex, -0.5, lid_z), size=(eye_r * 1.12, eye_r * 1.08, eye_r * (1.02 if lid_closed else 0.45)), **skin_kw)
    # Mouth and lips.
    lip_c = (min(1.0, skin[0] * 0.95 + 0.12), skin[1] * 0.62, skin[2] * 0.62)
    lip_w = _lerp(0.11, 0.16, idn.lips) * (1.15 if app.expression == "smile" else 1.0)
    corner = {"smile": 0.25, "frown": -0.2}.get(app.expression, 0.0)
    mouth_z = -0.24
    open_mouth = app.expression in ("open_mouth",)
    if open_mouth or app.expression == "smile":
        depth = 0.05 if open_mouth else 0.018
        b.add(Kind.SPHERE, centre=(0, -0.56, mouth_z - depth * 0.3), size=(lip_w * 0.85, 0.12, depth), colour=(0.25, 0.05, 0.06), op=Op.SUBTRACT)
        b.add(Kind.BOX, centre=(0, -0.5, mouth_z + 0.01), size=(lip_w * 0.65, 0.03, 0.018), colour=(0.95, 0.94, 0.88), roughness=0.2, specular=0.5)
    for side in (-1, 1):
        rot = (0.0, 0.0, side * corner)
        b.add(Kind.SPHERE, centre=(side * lip_w * 0.45, -0.57, mouth_z + 0.025 + abs(corner) * 0.02), size=(lip_w * 0.58, 0.05, 0.028), rotation=rot, colour=lip_c, roughness=0.35, specular=0.4, subsurface=0.5)
        low = mouth_z - (0.06 if open_mouth else 0.025)
        b.add(Kind.SPHERE, centre=(side * lip_w * 0.42, -0.56, low), size=(lip_w * 0.56, 0.05, 0.032), rotation=rot, colour=lip_c, roughness=0.35, specular=0.4, subsurface=0.5)
    # Facial hair volumes.
    if app.facial_hair == "moustache":
        b.add(Kind.SPHERE, centre=(0, -0.6, mouth_z + 0.065), size=(lip_w * 0.95, 0.05, 0.028), **hair_kw)
    elif app.facial_hair == "beard":  # a solid chin-and-jaw volume below the mouth, with a moustache
        b.add(Kind.SPHERE, centre=(0, -0.36, mouth_z - 0.2), size=(jaw_w * 0.92, 0.24, 0.17), **hair_kw)
        b.add(Kind.SPHERE, centre=(0, -0.6, mouth_z + 0.06), size=(lip_w * 0.9, 0.045, 0.025), **hair_kw)
    # Scalp hair.
    _add_hair(b, app.hairstyle, hc, (rx, ry, rz), hair_kw)
    if app.glasses:
        frame = dict(colour=(0.08, 0.08, 0.1), roughness=0.3, specular=0.6)
        for side, grp in ((-1, 1), (1, 2)):
            c = (side * spacing, -0.63, 0.14)
            b.add(Kind.CYLINDER, centre=c, size=(0.085, 0.075, 0.006), rotation=(0.0, math.pi / 2, 0.0), group=grp, **frame)
            b.add(Kind.CYLINDER, centre=(c[0], c[1] - 0.01, c[2]), size=(0.075, 0.065, 0.03), rotation=(0.0, math.pi / 2, 0.0), group=grp, op=Op.SUBTRACT, colour=(0.0, 0.0, 0.0))
            b.add(Kind.BOX, centre=(side * (rx + 0.01), -0.3, 0.15), size=(0.006, 0.32, 0.008), **frame)
        b.add(Kind.BOX, centre=(0, -0.64, 0.15), size=(spacing - 0.08, 0.006, 0.006), **frame)
    return b


def _add_hair(b: PrimitiveBuilder, style: str, hc, radii, hair_kw: dict) -> None:
    rx, ry, rz = radii
    if style == "bald":
        return
    if style == "buzz":
        b.add(Kind.SPHERE, centre=(hc[0], hc[1] + 0.01, hc[2] + 0.01), size=(rx * 1.015, ry * 1.015, rz * 1.015), mask=Mask.HAIRLINE, mask_params=(0.55, 0.15, -0.35, 0.02), **{**hair_kw, "pattern": Pattern.NOISE, "colour2": tuple(c * 0.7 for c in hair_kw["colour"])})
        return
    if style == "curly":
        volume = (rx * 1.3, ry * 1.2, rz * 1.12)
        b.add(Kind.SPHERE, centre=(0, 0.14, hc[2] + 0.12), size=volume, mask=Mask.HAIRLINE, mask_params=(0.66, -0.1, -0.55, 0.05), **{**hair_kw, "pattern": Pattern.NOISE, "pattern_scale": 3.0})
        return
    shell = (rx * 1.07, ry * 1.06, rz * 1.05)
    front = {"short": 0.5, "long_straight": 0.45, "bob": 0.42, "ponytail": 0.5, "bun": 0.5}[style]
    side = {"short": 0.05, "long_straight": -0.35, "bob": -0.45, "ponytail": 0.1, "bun": 0.1}[style]
    back = {"short": -0.4, "long_straight": -0.9, "bob": -0.7, "ponytail": -0.3, "bun": -0.3}[style]
    b.add(Kind.SPHERE, centre=(hc[0], hc[1] + 0.03, hc[2] + 0.03), size=shell, mask=Mask.HAIRLINE, mask_params=(front, side, back, 0.03), **hair_kw)
    if style == "long_straight":
        b.add(Kind.BOX, centre=(0, 0.22, -0.4), size=(rx * 0.98, 0.3, 0.5), rotation=(0.0, -0.1, 0.0), **hair_kw)
        b.add(Kind.SPHERE, centre=(0, 0.22, -0.85), size=(rx * 0.98, 0.3, 0.15), **hair_kw)
    elif style == "bob":  # a fuller outer layer reaching the jaw at the sides and back
        b.add(Kind.SPHERE, centre=(hc[0], hc[1] + 0.05, hc[2] - 0.02), size=(rx * 1.16, ry * 1.1, rz * 1.08), mask=Mask.HAIRLINE, mask_params=(0.5, -0.62, -0.75, 0.02), **hair_kw)
    elif style == "ponytail":
        b.add(Kind.SPHERE, centre=(0, ry + 0.14, hc[2] - 0.22), size=(0.11, 0.14, 0.42), rotation=(0.0, -0.4, 0.0), **hair_kw)
        b.add(Kind.CYLINDER, centre=(0, ry + 0.02, hc[2] + 0.14), size=(0.05, 0.05, 0.03), rotation=(0.0, 1.2, 0.0), colour=(0.7, 0.1, 0.2))
    elif style == "bun":
        b.add(Kind.SPHERE, centre=(0, ry * 0.75, hc[2] + rz * 0.8), size=(0.21, 0.19, 0.18), **hair_kw)


def head_scene(identity_id: int, variant_id: int, device: torch.device | str = "cpu") -> tuple[PrimitiveTable, dict]:
    """The ``[1, K]`` primitive table of one subject and its generating parameters (for manifests)."""
    identity = sample_identity(identity_id)
    appearance = sample_appearance(identity_id, variant_id)
    table = build_head(identity, appearance).build(device=device)
    params = {"identity_id": identity_id, "variant_id": variant_id, "identity": asdict(identity), "appearance": asdict(appearance)}
    return table, params
