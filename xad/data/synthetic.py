"""A deterministic generator of an industrial defect set in the MVTec AD layout.

Categories at 128 px (rendered at 2x and box-downsampled, so edges are anti-aliased); the objects in
an inspection fixture (``tablet``, ``capsule``, ``bottle``, ``screwcap``) are in
:mod:`xad.data.scenes`; they take crack, cut, hole, print and stain, except the bottle, which takes
MVTec AD's bottle defects (broken_large, broken_small, contamination):
- ``hexnut``: a machined steel hex nut on a dark conveyor, varying pose, position, size and light;
  defects crack, cut, hole, print, scratch (painted on the nut's face or edge);
- ``washer``: a flat steel washer on the same conveyor, varying position, size, ring width and
  light; the same five defects (a smooth object without the nut's thread rings);
- ``brick``: crops of the real brick-wall photo that scikit-image ships, tinted terracotta, varying
  crop, flip and light; defects crack, hole, scratch, stain.
Every image has its own seed derived from (seed, category, split, defect, index), so the set is
the same on every machine and any one image can be regenerated alone. Masks are the defect's
coverage at 128 px thresholded at 0.2: exactly the pixels the painter changed noticeably.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from xad.data import defects
from xad.data.scenes import (WORK, Scene, conveyor, smooth_noise, bottle_scene, capsule_scene,
                              screwcap_scene, tablet_scene)
from xad.tensors import to_uint8

SIZE = 128
MASK_LEVEL = 0.2


def _hex_distance(yy: np.ndarray, xx: np.ndarray, apothem: float, theta: float) -> np.ndarray:
    """Signed distance-like field of a regular hexagon (negative inside)."""
    d = np.full(yy.shape, -np.inf, dtype=np.float32)
    for k in range(3):
        a = theta + k * np.pi / 3
        d = np.maximum(d, np.abs(xx * np.cos(a) + yy * np.sin(a)) - apothem)
    return d


def hexnut_scene(rng: np.random.Generator) -> Scene:
    """A steel hex nut with chamfer, thread and brushed face, lit from a random direction."""
    light_angle = rng.uniform(0, 2 * np.pi)
    light = np.array([np.sin(light_angle), np.cos(light_angle)], dtype=np.float32)
    background = conveyor(rng, light)
    centre = WORK / 2 + rng.uniform(-12, 12, size=2)
    radius = rng.uniform(84, 94)  # circumradius at WORK px
    apothem, theta = radius * np.cos(np.pi / 6), rng.uniform(0, np.pi / 3)
    yy, xx = np.mgrid[0:WORK, 0:WORK].astype(np.float32)
    yy, xx = yy - centre[0], xx - centre[1]
    r, phi = np.hypot(yy, xx), np.arctan2(yy, xx)
    body = np.clip(0.5 - _hex_distance(yy, xx, apothem, theta), 0, 1)
    r_hole, r_thread, r_face = 0.40 * radius, 0.50 * radius, 0.97 * apothem
    hole = np.clip(r_hole + 0.5 - r, 0, 1)
    # 1. shading: brushed face, chamfer facets, thread rings, specular highlight
    steel = rng.uniform(0.56, 0.68)
    brushed = 0.035 * smooth_noise(rng, (WORK, WORK), 0.7) * np.abs(np.sin(3 * phi + r / 9))
    facing = np.cos(phi - np.arctan2(light[0], light[1]))
    face = steel + 0.06 * facing * (r / radius) + brushed
    chamfer = np.clip(r - r_face + 0.5, 0, 1)
    face = face * (1 - chamfer) + (steel - 0.1 + 0.16 * facing) * chamfer
    thread = np.clip(r_thread + 0.5 - r, 0, 1)
    rings = 0.30 + 0.12 * np.sin(r * 1.6) + 0.10 * facing
    face = face * (1 - thread) + rings * thread
    spot = light * radius * 0.45  # highlight toward the light (relative to the centre)
    face += 0.12 * np.exp(-((yy - spot[0]) ** 2 + (xx - spot[1]) ** 2) / (2 * (radius * 0.3) ** 2))
    warm = np.array([1.02, 1.0, 0.95], dtype=np.float32) * rng.uniform(0.98, 1.02, 3)
    # 2. the shadow on the belt, then the nut over it; the hole shows the shadowed belt
    shadow = ndimage.gaussian_filter(ndimage.shift(body, light * -7, order=1), 5)
    belt = background * (1 - 0.45 * shadow)[..., None]
    nut = np.clip(face[..., None] * warm, 0, 1)
    solid = body * (1 - hole)
    image = belt * (1 - solid[..., None]) + nut * solid[..., None]
    image *= rng.uniform(0.88, 1.12)
    support = np.clip(body - thread, 0, 1)  # the face and chamfer, not the thread
    outline = _hex_outline(centre, apothem, theta, radius)
    return Scene(np.clip(image, 0, 1).astype(np.float32), support.astype(np.float32), belt, outline)


def _hex_outline(centre: np.ndarray, apothem: float, theta: float, radius: float) -> np.ndarray:
    """Points on the hexagon's sides (not corners) with inward normals: (P, 4)."""
    rows = []
    for k in range(6):
        a = theta + k * np.pi / 3
        n = np.array([np.sin(a), np.cos(a)])
        side = np.array([-n[1], n[0]])
        for s in np.linspace(-0.6, 0.6, 7) * radius / 2:
            p = centre + n * apothem + side * s
            rows.append([p[0], p[1], -n[0], -n[1]])
    return np.asarray(rows, dtype=np.float32)


def washer_scene(rng: np.random.Generator) -> Scene:
    """A flat steel washer (a ring with chamfered edges and faint lapping marks) on the conveyor,
    varying position, size, ring width and light: a smooth object, as the VAE-GAN's paper data."""
    light_angle = rng.uniform(0, 2 * np.pi)
    light = np.array([np.sin(light_angle), np.cos(light_angle)], dtype=np.float32)
    background = conveyor(rng, light)
    centre = WORK / 2 + rng.uniform(-12, 12, size=2)
    r_out = rng.uniform(86, 96)
    r_in = r_out * rng.uniform(0.34, 0.40)
    yy, xx = np.mgrid[0:WORK, 0:WORK].astype(np.float32)
    yy, xx = yy - centre[0], xx - centre[1]
    r, phi = np.hypot(yy, xx), np.arctan2(yy, xx)
    ring = np.clip(r_out + 0.5 - r, 0, 1) * np.clip(r - r_in + 0.5, 0, 1)
    facing = np.cos(phi - np.arctan2(light[0], light[1]))
    steel = rng.uniform(0.58, 0.70)
    lapping = 0.012 * smooth_noise(rng, (WORK, WORK), 1.2) + 0.01 * np.sin(r * 0.9 + rng.uniform(0, 6))
    face = steel + 0.05 * facing * (r - r_in) / (r_out - r_in) + lapping
    bevel = 6.0  # chamfer width at WORK px, outer and inner edge
    outer = np.clip((r - (r_out - bevel)) / bevel, 0, 1)
    inner = np.clip(((r_in + bevel) - r) / bevel, 0, 1)
    face = face + 0.14 * facing * outer - 0.14 * facing * inner - 0.05 * (outer + inner)
    spot = light * (r_in + r_out) * 0.5
    face += 0.10 * np.exp(-((yy - spot[0]) ** 2 + (xx - spot[1]) ** 2) / (2 * (r_out * 0.28) ** 2))
    tint = np.array([1.0, 1.0, 1.02], dtype=np.float32) * rng.uniform(0.98, 1.02, 3)
    body = np.clip(r_out + 0.5 - r, 0, 1)
    shadow = ndimage.gaussian_filter(ndimage.shift(body, light * -6, order=1), 5)
    belt = background * (1 - 0.45 * shadow)[..., None]
    metal = np.clip(face[..., None] * tint, 0, 1)
    image = belt * (1 - ring[..., None]) + metal * ring[..., None]
    image *= rng.uniform(0.9, 1.1)
    support = (np.clip(r_out + 0.5 - r, 0, 1) * np.clip(r - r_in - bevel, 0, 1)).astype(np.float32)
    angles = np.linspace(0, 2 * np.pi, 42, endpoint=False)
    outline = np.stack([centre[0] + r_out * np.sin(angles), centre[1] + r_out * np.cos(angles),
                        -np.sin(angles), -np.cos(angles)], 1).astype(np.float32)
    return Scene(np.clip(image, 0, 1).astype(np.float32), support, belt, outline)



def brick_scene(rng: np.random.Generator) -> Scene:
    """A terracotta-tinted crop of scikit-image's brick photo, random crop, flip and light."""
    photo = _brick_photo()
    crop = int(rng.integers(220, 300))
    y0, x0 = rng.integers(0, 512 - crop, size=2)
    patch = photo[y0: y0 + crop, x0: x0 + crop]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = np.asarray(Image.fromarray((patch * 255).astype(np.uint8)).resize(
        (WORK, WORK), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    tint = np.array([1.18, 0.78, 0.62], dtype=np.float32) * rng.uniform(0.97, 1.03, 3)
    mortar = np.clip((patch - 0.55) * 3, 0, 1)[..., None]  # the bright joints stay greyish
    rgb = patch[..., None] * (tint * (1 - mortar) + np.array([1.0, 0.97, 0.92]) * mortar)
    yy, xx = np.mgrid[0:WORK, 0:WORK].astype(np.float32) / WORK - 0.5
    a = rng.uniform(0, 2 * np.pi)
    rgb *= (rng.uniform(0.9, 1.1) + 0.08 * (yy * np.sin(a) + xx * np.cos(a)))[..., None]
    rgb = np.clip(rgb, 0, 1).astype(np.float32)
    support = np.zeros((WORK, WORK), np.float32)
    support[20:-20, 20:-20] = 1.0
    return Scene(rgb, support, rgb)


_PHOTO: dict[str, np.ndarray] = {}


def _brick_photo() -> np.ndarray:
    if "brick" not in _PHOTO:
        import skimage.data

        _PHOTO["brick"] = skimage.data.brick().astype(np.float32) / 255.0
    return _PHOTO["brick"]


@dataclass(frozen=True)
class CategorySpec:
    scene: object  # callable (rng) -> Scene
    defects: tuple[str, ...]
    description: str
    per_defect: int = 10  # test images per defect type


CATEGORIES: dict[str, CategorySpec] = {
    "hexnut": CategorySpec(hexnut_scene, ("crack", "cut", "hole", "print", "scratch"),
                           "machined steel hex nut on a conveyor (object)"),
    "washer": CategorySpec(washer_scene, ("crack", "cut", "hole", "print", "scratch"),
                           "flat steel washer on a conveyor (object)"),
    "tablet": CategorySpec(tablet_scene, ("crack", "cut", "hole", "print", "stain"),
                           "white pharmaceutical tablet with a score line on a tray (object)"),
    "capsule": CategorySpec(capsule_scene, ("crack", "cut", "hole", "print", "stain"),
                            "two-tone gelatin capsule on a tray (object)"),
    "bottle": CategorySpec(bottle_scene, ("broken_large", "broken_small", "contamination"),
                           "clear glass bottle seen from above on a tray, MVTec AD's bottle defects (object)",
                           per_defect=20),  # MVTec AD's bottle: 20-22 per type
    "screwcap": CategorySpec(screwcap_scene, ("crack", "cut", "hole", "print", "stain"),
                             "yellow moulded plastic screw cap seen from above on a tray (object)"),
    "brick": CategorySpec(brick_scene, ("crack", "hole", "scratch", "stain"),
                          "terracotta brick wall from scikit-image's photo (texture)"),
}


def _paint(name: str, scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if name in ("cut", "broken_large", "broken_small"):
        row = scene.outline[rng.integers(len(scene.outline))]
        return getattr(defects, name)(scene.image, scene.support, rng, edge_point=row[:2],
                                      inward=row[2:], background=scene.background)
    painter = {"print": defects.print_mark}.get(name) or getattr(defects, name)
    return painter(scene.image, scene.support, rng)


def image_seed(seed: int, category: str, split: str, defect: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of the others and of generation order."""
    key = zlib.crc32(f"{category}/{split}/{defect}".encode())
    return np.random.default_rng(np.random.SeedSequence([seed, key, index]))


def render(category: str, split: str, defect: str, index: int, seed: int = 0,
           size: int = SIZE) -> tuple[np.ndarray, np.ndarray | None]:
    """One image: (size, size, 3) uint8 and its bool mask (None for good images)."""
    spec = CATEGORIES[category]
    rng = image_seed(seed, category, split, defect, index)
    scene = spec.scene(rng)
    image, alpha = scene.image, None
    if defect != "good":
        image, alpha = _paint(defect, scene, rng)
    small = _downsample(image, size)
    small = small + rng.normal(0, 0.006, small.shape).astype(np.float32)  # sensor noise
    out = to_uint8(small)
    mask = None if alpha is None else _downsample(alpha[..., None], size)[..., 0] >= MASK_LEVEL
    return out, mask


def _downsample(a: np.ndarray, size: int) -> np.ndarray:
    f = a.shape[0] // size
    return a.reshape(size, f, size, f, a.shape[2]).mean(axis=(1, 3))


def generate(out_root: str | Path, categories: tuple[str, ...] = tuple(CATEGORIES), n_train: int = 200,
             n_test_good: int = 20, n_per_defect: int | None = None, seed: int = 0,
             progress: bool = False) -> Path:
    """Write the set in MVTec layout under ``out_root``; returns ``out_root``. ``n_per_defect``: test
    images per defect type (default: the category's ``per_defect``)."""
    from tqdm import tqdm

    root = Path(out_root)
    jobs = []
    for cat in categories:
        jobs += [(cat, "train", "good", i) for i in range(n_train)]
        jobs += [(cat, "test", "good", i) for i in range(n_test_good)]
        spec = CATEGORIES[cat]
        jobs += [(cat, "test", d, i) for d in spec.defects for i in range(n_per_defect or spec.per_defect)]
    for cat, split, defect, i in tqdm(jobs, desc="generating", disable=not progress):
        image, mask = render(cat, split, defect, i, seed)
        folder = root / cat / split / defect
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png", optimize=True)
        if mask is not None:
            gt = root / cat / "ground_truth" / defect
            gt.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(gt / f"{i:03d}_mask.png", optimize=True)
    return root
