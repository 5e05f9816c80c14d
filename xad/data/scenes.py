"""Scenes of xad's synthetic industrial set: the shared pieces and the objects in an inspection
fixture (as MVTec AD's pill, capsule and bottle: position within +-3 px at 256, the light from the
upper left give or take 17 degrees). Conveyor objects and the brick texture are in
:mod:`xad.data.synthetic`, which registers every category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

WORK = 256  # working resolution (2x the output)


@dataclass(frozen=True)
class Scene:
    """A rendered normal scene at WORK px: image (H, W, 3) float32 in [0, 1] plus what painters
    need: ``support`` (H, W) where defects may go, ``background`` (H, W, 3) and the object's
    ``outline`` as (y, x) points with inward normals (object categories only)."""

    image: np.ndarray
    support: np.ndarray
    background: np.ndarray
    outline: np.ndarray | None = None  # (P, 4): y, x, inward_y, inward_x


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), sigma)
    return n / (n.std() + 1e-6)


def conveyor(rng: np.random.Generator, light: np.ndarray) -> np.ndarray:
    """Dark grey conveyor belt with fine grain and a light gradient. (H, W, 3)."""
    yy, xx = np.mgrid[0:WORK, 0:WORK].astype(np.float32) / WORK - 0.5
    base = rng.uniform(0.24, 0.32) + 0.05 * (yy * light[0] + xx * light[1])
    grain = 0.018 * smooth_noise(rng, (WORK, WORK), 0.8) + 0.02 * smooth_noise(rng, (WORK, WORK), 18)
    tint = np.array([0.97, 1.0, 1.05], dtype=np.float32)
    return np.clip((base + grain)[..., None] * tint, 0, 1)


def _fixture(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixture's light (a unit (y, x) vector), its blue-grey tray (H, W, 3) and the object's
    centre (y, x)."""
    light_angle = rng.uniform(-2.6, -2.0)  # from the upper left, give or take 17 degrees
    light = np.array([np.sin(light_angle), np.cos(light_angle)], dtype=np.float32)
    background = conveyor(rng, light) * np.array([0.85, 0.92, 1.05], dtype=np.float32)
    centre = WORK / 2 + rng.uniform(-3, 3, size=2)
    return light, background, centre


def _place(background: np.ndarray, body: np.ndarray, light: np.ndarray, obj: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The object (H, W, 3) over its soft shadow on the tray, under a slightly varying exposure:
    (image, tray with the shadow)."""
    shadow = ndimage.gaussian_filter(ndimage.shift(body, light * -6, order=1), 5)
    tray = background * (1 - 0.5 * shadow)[..., None]
    image = tray * (1 - body[..., None]) + obj * body[..., None]
    image *= rng.uniform(0.96, 1.04)
    return np.clip(image, 0, 1).astype(np.float32), tray


def _polar(centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y, x) relative to the centre, radius and angle on the WORK grid."""
    yy, xx = np.mgrid[0:WORK, 0:WORK].astype(np.float32)
    yy, xx = yy - centre[0], xx - centre[1]
    return yy, xx, np.hypot(yy, xx), np.arctan2(yy, xx)


@dataclass(frozen=True)
class _Disc:
    """A round part in the fixture: light, tray, centre and radius and, on the WORK grid, the (y, x)
    offsets from the centre, the radius ``r``, the part's coverage ``body`` and ``facing`` (the
    cosine of the angle between a point's direction from the centre and the light's)."""

    light: np.ndarray
    background: np.ndarray
    centre: np.ndarray
    radius: float
    yy: np.ndarray
    xx: np.ndarray
    r: np.ndarray
    body: np.ndarray
    facing: np.ndarray


def _disc(rng: np.random.Generator, r_min: float, r_max: float) -> _Disc:
    light, background, centre = _fixture(rng)
    radius = rng.uniform(r_min, r_max)
    yy, xx, r, phi = _polar(centre)
    return _Disc(light, background, centre, radius, yy, xx, r, np.clip(radius + 0.5 - r, 0, 1),
                 np.cos(phi - np.arctan2(light[0], light[1])))


def _circle_outline(centre: np.ndarray, radius: float, n: int) -> np.ndarray:
    """n points on a circle with inward normals: (n, 4)."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.sin(angles), centre[1] + radius * np.cos(angles),
                     -np.sin(angles), -np.cos(angles)], 1).astype(np.float32)


def tablet_scene(rng: np.random.Generator) -> Scene:
    """A round, biconvex white pharmaceutical tablet with a score line in an inspection fixture, as
    MVTec AD's pill: position within +-3 px, score line within +-10 degrees of horizontal, size
    and the light's direction and strength vary a little."""
    d = _disc(rng, 76, 80)
    light, background, centre, radius, yy, xx, r, body, facing = (
        d.light, d.background, d.centre, d.radius, d.yy, d.xx, d.r, d.body, d.facing)
    # 1. a dome lit from one side, a darker rim band, a fine powder grain
    dome = 0.07 * facing * np.clip(r / radius, 0, 1) ** 1.5
    bevel = 7.0
    rim = np.clip((r - (radius - bevel)) / bevel, 0, 1)
    grain = 0.012 * smooth_noise(rng, (WORK, WORK), 0.9)
    shade = rng.uniform(0.80, 0.88) + dome - 0.10 * rim + 0.06 * rim * facing + grain
    # 2. the score line: a groove through the centre, lit on one flank
    theta = np.deg2rad(rng.uniform(-10, 10))
    across = xx * np.sin(theta) - yy * np.cos(theta)
    along = np.abs(xx * np.cos(theta) + yy * np.sin(theta))
    reach = np.clip((radius * 0.86 - along) / 6.0, 0, 1)
    flank = np.sign(np.sin(theta - np.arctan2(light[0], light[1]))) or 1.0
    groove = np.exp(-across ** 2 / (2 * 2.2 ** 2)) * reach
    lit = np.exp(-(across - flank * 3.0) ** 2 / (2 * 1.5 ** 2)) * reach
    shade = shade - 0.16 * groove + 0.05 * lit
    colour = np.array([0.99, 0.97, 0.92], dtype=np.float32) * rng.uniform(0.98, 1.02, 3)
    image, tray = _place(background, body, light, np.clip(shade[..., None] * colour, 0, 1), rng)
    support = body.astype(np.float32)  # face and rim: chips (cuts) start at the edge
    return Scene(image, support, tray, _circle_outline(centre, radius, 36))


def capsule_scene(rng: np.random.Generator) -> Scene:
    """A two-tone hard-gelatin capsule (orange cap to the right, ivory body) in an inspection
    fixture, as MVTec AD's capsule: position within +-3 px, tilt within +-3 degrees, length, width
    and the light's direction and strength vary a little. A glossy cylinder with a seam."""
    light, background, centre = _fixture(rng)
    half_len, rad = rng.uniform(88, 92), rng.uniform(31, 33)
    tilt = np.deg2rad(rng.uniform(-3, 3))
    yy, xx = np.mgrid[0:WORK, 0:WORK].astype(np.float32)
    yy, xx = yy - centre[0], xx - centre[1]
    u = xx * np.cos(tilt) + yy * np.sin(tilt)  # along the capsule
    v = -xx * np.sin(tilt) + yy * np.cos(tilt)  # across it
    core = half_len - rad
    d = np.hypot(np.clip(np.abs(u) - core, 0, None), v) - rad  # a stadium (capsule) field
    body = np.clip(0.5 - d, 0, 1)
    # 1. cylinder shading across v (rounded ends), a specular streak toward the light
    across = np.clip(v / rad, -1, 1)
    normal_v = across * np.where(np.abs(u) > core, 0.6, 1.0)
    light_v = -light[1] * np.sin(tilt) + light[0] * np.cos(tilt)
    shade = 0.78 + 0.12 * normal_v * light_v - 0.18 * across ** 4
    streak = 0.16 * np.exp(-(across + 0.45 * light_v) ** 2 / (2 * 0.12 ** 2)) * np.clip((half_len - 10 - np.abs(u)) / 10, 0, 1)
    shade = shade + streak + 0.01 * smooth_noise(rng, (WORK, WORK), 1.0)
    # 2. the cap covers the right end; a thin seam where it overlaps the body
    seam_at = rng.uniform(0.05, 0.15) * half_len
    cap = np.clip(u - seam_at + 0.5, 0, 1)
    orange = np.array([0.93, 0.45, 0.16], dtype=np.float32) * rng.uniform(0.96, 1.04, 3)
    ivory = np.array([0.95, 0.92, 0.82], dtype=np.float32) * rng.uniform(0.98, 1.02, 3)
    colour = ivory * (1 - cap[..., None]) + orange * cap[..., None]
    seam = np.exp(-(u - seam_at) ** 2 / (2 * 1.2 ** 2))
    shade = shade - 0.12 * seam
    image, tray = _place(background, body, light, np.clip(shade[..., None] * colour, 0, 1), rng)
    support = body.astype(np.float32)
    pu = np.concatenate([np.linspace(-core, core, 20), np.linspace(core, -core, 20)])
    pv = np.concatenate([np.full(20, -rad), np.full(20, rad)])
    py = centre[0] + pu * np.sin(tilt) + pv * np.cos(tilt)
    px = centre[1] + pu * np.cos(tilt) - pv * np.sin(tilt)
    inward = -np.sign(pv)
    outline = np.stack([py, px, inward * np.cos(tilt), -inward * np.sin(tilt)], 1).astype(np.float32)
    return Scene(image, support, tray, outline)


def bottle_scene(rng: np.random.Generator) -> Scene:
    """A clear, faintly green glass bottle seen from above in the fixture, as MVTec AD's bottle: the
    shoulder darkening toward the edge with a highlight arc toward the light, the bright lip, the
    dark mouth. Defects go on the shoulder and lip, not into the mouth."""
    d = _disc(rng, 102, 106)
    r, body, facing, t = d.r, d.body, d.facing, d.r / d.radius
    shade = rng.uniform(0.80, 0.86) - 0.16 * t ** 2
    shade = shade + 0.12 * facing * np.exp(-(t - 0.74) ** 2 / (2 * 0.07 ** 2))
    lip = np.exp(-(t - 0.47) ** 2 / (2 * 0.035 ** 2))
    shade = shade + 0.18 * lip + 0.08 * lip * facing + 0.01 * smooth_noise(rng, (WORK, WORK), 1.0)
    mouth = np.clip(0.38 * d.radius + 0.5 - r, 0, 1)
    glint = d.light * 0.16 * d.radius
    inside = 0.12 + 0.06 * np.exp(-((d.yy - glint[0]) ** 2 + (d.xx - glint[1]) ** 2) / (2 * (0.07 * d.radius) ** 2))
    shade = shade * (1 - mouth) + inside * mouth
    colour = np.array([0.90, 0.97, 0.88], dtype=np.float32) * rng.uniform(0.98, 1.02, 3)
    image, tray = _place(d.background, body, d.light, np.clip(shade[..., None] * colour, 0, 1), rng)
    support = (body * np.clip(r - 0.42 * d.radius, 0, 1)).astype(np.float32)
    return Scene(image, support, tray, _circle_outline(d.centre, d.radius, 40))


def screwcap_scene(rng: np.random.Generator) -> Scene:
    """A yellow moulded plastic screw cap seen from above in the fixture: a flat top with a faint
    dome, a moulded ring groove, the injection gate at the centre and a rounded rim band lit on
    the light's side."""
    d = _disc(rng, 82, 86)
    r, body, facing, t = d.r, d.body, d.facing, d.r / d.radius
    rim = np.clip((t - 0.86) / 0.14, 0, 1)
    shade = rng.uniform(0.80, 0.86) + 0.04 * facing * t - 0.14 * rim + 0.16 * rim * facing
    groove = np.exp(-(t - 0.72) ** 2 / (2 * 0.012 ** 2))
    lit = np.exp(-(t - 0.72 - 0.025) ** 2 / (2 * 0.01 ** 2)) * np.clip(facing, 0, 1)
    gate = np.exp(-r ** 2 / (2 * 4.0 ** 2))
    shade = shade - 0.12 * groove + 0.08 * lit - 0.10 * gate + 0.01 * smooth_noise(rng, (WORK, WORK), 1.0)
    colour = np.array([0.98, 0.84, 0.40], dtype=np.float32) * rng.uniform(0.97, 1.03, 3)
    image, tray = _place(d.background, body, d.light, np.clip(shade[..., None] * colour, 0, 1), rng)
    return Scene(image, body.astype(np.float32), tray, _circle_outline(d.centre, d.radius, 40))
