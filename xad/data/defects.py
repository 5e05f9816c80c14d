"""Defect painters for the synthetic industrial set.

Each painter takes an RGB canvas ``img`` (H, W, 3) float32 in [0, 1] at the working resolution, a
``support`` (H, W) float32 in [0, 1] where the defect may appear, and a numpy Generator; it returns
the painted canvas and the defect's coverage ``alpha`` (H, W) float32 in [0, 1], from which the
exact ground-truth mask is derived. Geometry is drawn with anti-aliased distance fields.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

Painted = tuple[np.ndarray, np.ndarray]


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]].astype(np.float32)
    return yy, xx


def polyline_distance(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Distance (H, W) from every pixel to a polyline ``points`` (P, 2) given as (y, x)."""
    yy, xx = _grid(shape)
    best = np.full(shape, np.inf, dtype=np.float32)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        dy, dx = y1 - y0, x1 - x0
        t = ((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-6)
        t = np.clip(t, 0.0, 1.0)
        best = np.minimum(best, np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx)))
    return best


def stroke(points: np.ndarray, shape: tuple[int, int], width: float) -> np.ndarray:
    """Anti-aliased coverage (H, W) of a polyline drawn ``width`` pixels wide."""
    d = polyline_distance(points, shape)
    return np.clip(width / 2.0 + 0.5 - d, 0.0, 1.0).astype(np.float32)


def pick_point(support: np.ndarray, rng: np.random.Generator, margin: int = 0) -> np.ndarray:
    """A random (y, x) where ``support`` > 0.99, at least ``margin`` px inside it."""
    region = support > 0.99
    if margin:
        region = ndimage.binary_erosion(region, iterations=margin)
    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        raise ValueError("defect support is empty")
    i = rng.integers(len(ys))
    return np.array([ys[i], xs[i]], dtype=np.float32)


def _curve(start: np.ndarray, rng: np.random.Generator, length: float, bend: float) -> np.ndarray:
    """A gently bent curve (P, 2) from ``start``: a quadratic Bezier of the given length."""
    angle = rng.uniform(0, 2 * np.pi)
    d = np.array([np.sin(angle), np.cos(angle)])
    end = start + d * length
    mid = (start + end) / 2 + np.array([-d[1], d[0]]) * rng.uniform(-bend, bend) * length
    t = np.linspace(0, 1, 24)[:, None]
    return ((1 - t) ** 2) * start + 2 * (1 - t) * t * mid + (t ** 2) * end


def _random_walk(start: np.ndarray, rng: np.random.Generator, steps: int, step: float) -> np.ndarray:
    """A jagged crack path (steps+1, 2): a persistent random walk."""
    angle = rng.uniform(0, 2 * np.pi)
    pts = [start]
    for _ in range(steps):
        angle += rng.normal(0, 0.45)
        pts.append(pts[-1] + step * rng.uniform(0.6, 1.4) * np.array([np.sin(angle), np.cos(angle)]))
    return np.asarray(pts, dtype=np.float32)


def scratch(img: np.ndarray, support: np.ndarray, rng: np.random.Generator) -> Painted:
    """A thin bright (or dark) scratch, 1-1.5 px wide at 128 px, with uneven pressure."""
    shape = support.shape
    pts = _curve(pick_point(support, rng, margin=6), rng, rng.uniform(0.18, 0.34) * shape[0], 0.25)
    alpha = stroke(pts, shape, rng.uniform(2.0, 3.0)) * support
    pressure = ndimage.gaussian_filter(rng.uniform(0.5, 1.0, shape).astype(np.float32), 6)
    alpha *= np.clip(pressure / pressure.max(), 0.4, 1.0)
    sign = 1.0 if rng.random() < 0.7 else -1.0
    delta = sign * rng.uniform(0.16, 0.26)
    out = img + (delta * alpha)[..., None]
    return np.clip(out, 0, 1), alpha


def crack(img: np.ndarray, support: np.ndarray, rng: np.random.Generator) -> Painted:
    """A dark, jagged, branching crack with a faint lit edge."""
    shape = support.shape
    main = _random_walk(pick_point(support, rng, margin=8), rng, int(rng.integers(9, 15)), 4.5)
    alpha = stroke(main, shape, rng.uniform(2.0, 3.2))
    for _ in range(int(rng.integers(1, 3))):
        branch = _random_walk(main[rng.integers(2, len(main) - 1)], rng, int(rng.integers(3, 7)), 4.0)
        alpha = np.maximum(alpha, stroke(branch, shape, 1.8))
    alpha *= support
    edge = np.clip(ndimage.shift(alpha, (1.5, 1.5), order=1) - alpha, 0, 1)
    darken = rng.uniform(0.35, 0.55)
    out = img * (1 - alpha * (1 - darken))[..., None] + (0.08 * edge)[..., None]
    return np.clip(out, 0, 1), np.maximum(alpha, edge * 0.5)


def hole(img: np.ndarray, support: np.ndarray, rng: np.random.Generator) -> Painted:
    """A small pit: a dark interior with a shaded rim (lit on one side)."""
    shape = support.shape
    c = pick_point(support, rng, margin=14)
    r = rng.uniform(4.5, 8.0)
    yy, xx = _grid(shape)
    d = np.hypot(yy - c[0], xx - c[1])
    inside = np.clip(r + 0.5 - d, 0, 1)
    rim = np.clip(1.0 - np.abs(d - r - 1.2) / 1.6, 0, 1)
    light = np.cos(np.arctan2(yy - c[0], xx - c[1]) - rng.uniform(0, 2 * np.pi))
    depth = 0.28 + 0.3 * np.clip(d / r, 0, 1)  # darkest in the centre
    out = img * (1 - inside * (1 - depth))[..., None] + (0.12 * rim * light)[..., None]
    alpha = np.maximum(inside, rim * 0.6) * support
    out = img + (out - img) * support[..., None]
    return np.clip(out, 0, 1), alpha


def _blob(shape: tuple[int, int], centre: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A soft irregular blob (H, W) in [0, 1]: a thresholded smooth random field."""
    yy, xx = _grid(shape)
    d = np.hypot(yy - centre[0], xx - centre[1]) / radius
    field = ndimage.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), radius / 3)
    field /= field.std() + 1e-6
    level = 1.0 - d + 0.35 * field
    return np.clip(level * 4.0, 0, 1).astype(np.float32)


def stain(img: np.ndarray, support: np.ndarray, rng: np.random.Generator) -> Painted:
    """A darker, slightly tinted oil/water stain with soft edges."""
    shape = support.shape
    alpha = _blob(shape, pick_point(support, rng, margin=16), rng.uniform(10, 20), rng) * support
    tint = np.array([rng.uniform(0.55, 0.75), rng.uniform(0.5, 0.7), rng.uniform(0.4, 0.6)])
    strength = rng.uniform(0.45, 0.65)
    out = img * (1 - strength * alpha[..., None]) + img * tint * strength * alpha[..., None] * 0.5
    return np.clip(out, 0, 1), (alpha > 0.15).astype(np.float32) * alpha


def print_mark(img: np.ndarray, support: np.ndarray, rng: np.random.Generator) -> Painted:
    """Ink print: a few marker characters (Pillow's bundled font), rotated, semi-opaque."""
    shape = support.shape
    text = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVXYZ0123456789"), size=int(rng.integers(2, 4))))
    font = ImageFont.load_default(size=int(rng.integers(15, 22)))
    layer = Image.new("L", (shape[1], shape[0]), 0)
    centre = pick_point(support, rng, margin=18)
    ImageDraw.Draw(layer).text((float(centre[1]), float(centre[0])), text, fill=255, font=font,
                               anchor="mm", stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
    layer = layer.rotate(float(rng.uniform(-60, 60)), resample=Image.Resampling.BILINEAR,
                         center=(float(centre[1]), float(centre[0])))
    alpha = np.asarray(layer, dtype=np.float32) / 255.0 * support
    inks = np.array([[0.15, 0.2, 0.6], [0.6, 0.12, 0.12], [0.1, 0.1, 0.12]], dtype=np.float32)
    ink = inks[rng.integers(len(inks))]
    opacity = rng.uniform(0.45, 0.7)
    out = img * (1 - opacity * alpha[..., None]) + ink * opacity * alpha[..., None]
    return np.clip(out, 0, 1), alpha


def cut(img: np.ndarray, support: np.ndarray, rng: np.random.Generator, *,
        edge_point: np.ndarray, inward: np.ndarray, background: np.ndarray) -> Painted:
    """A notch cut into an object's edge: a wedge where the background shows through.

    edge_point: (y, x) on the object's outline; inward: unit vector into the object;
    background: what lies behind the object (H, W, 3).
    """
    shape = support.shape
    depth, half = rng.uniform(9, 16), rng.uniform(5, 10)
    side = np.array([-inward[1], inward[0]])
    tip = edge_point + inward * depth + side * rng.uniform(-3, 3)
    a, b = edge_point + side * half - inward * 6, edge_point - side * half - inward * 6
    poly = Image.new("L", (shape[1] * 4, shape[0] * 4), 0)  # 4x supersampled polygon
    ImageDraw.Draw(poly).polygon([(float(p[1]) * 4, float(p[0]) * 4) for p in (a, tip, b)], fill=255)
    wedge = np.asarray(poly.resize((shape[1], shape[0]), Image.Resampling.BOX), np.float32) / 255
    alpha = wedge * support
    rim = np.clip(ndimage.gaussian_filter(alpha, 1.0) - alpha, 0, 1) * support
    out = img * (1 - alpha[..., None]) + background * alpha[..., None]
    out *= (1 - 0.5 * rim)[..., None]
    return np.clip(out, 0, 1), np.maximum(alpha, rim)


def _break(img: np.ndarray, support: np.ndarray, rng: np.random.Generator, edge_point: np.ndarray,
           inward: np.ndarray, background: np.ndarray, depth: float, half: float) -> Painted:
    """A piece broken out of an object's edge: the background shows through behind a jagged
    fracture line, whose glass-like edge catches the light."""
    shape = support.shape
    side = np.array([-inward[1], inward[0]])
    t = np.linspace(0.0, 1.0, 9)[1:-1, None]
    along = (1 - 2 * t) * half * (1 + rng.uniform(-0.15, 0.15, t.shape))
    reach = depth * np.sin(np.pi * t) ** 0.6 * rng.uniform(0.7, 1.1, t.shape)
    fracture = edge_point + side * along + inward * reach
    a, b = edge_point + side * half - inward * 6, edge_point - side * half - inward * 6
    poly = Image.new("L", (shape[1] * 4, shape[0] * 4), 0)  # 4x supersampled polygon
    ImageDraw.Draw(poly).polygon([(float(p[1]) * 4, float(p[0]) * 4) for p in (a, *fracture, b)], fill=255)
    gone = np.asarray(poly.resize((shape[1], shape[0]), Image.Resampling.BOX), np.float32) / 255
    gone *= support
    edge = np.clip(2 * np.clip(ndimage.gaussian_filter(gone, 1.2) - gone, 0, 1) * support, 0, 1)
    out = img * (1 - gone[..., None]) + background * gone[..., None]
    out = out + (rng.uniform(0.15, 0.25) * edge)[..., None]
    return np.clip(out, 0, 1), np.maximum(gone, edge)


def broken_large(img: np.ndarray, support: np.ndarray, rng: np.random.Generator, *,
                 edge_point: np.ndarray, inward: np.ndarray, background: np.ndarray) -> Painted:
    """A large piece broken out of the rim (MVTec AD's bottle ``broken_large``)."""
    return _break(img, support, rng, edge_point, inward, background,
                  depth=rng.uniform(18, 28), half=rng.uniform(16, 24))


def broken_small(img: np.ndarray, support: np.ndarray, rng: np.random.Generator, *,
                 edge_point: np.ndarray, inward: np.ndarray, background: np.ndarray) -> Painted:
    """A small chip broken out of the rim (MVTec AD's bottle ``broken_small``)."""
    return _break(img, support, rng, edge_point, inward, background,
                  depth=rng.uniform(7, 11), half=rng.uniform(6, 9))


def contamination(img: np.ndarray, support: np.ndarray, rng: np.random.Generator) -> Painted:
    """Foreign matter on the part (MVTec AD's bottle ``contamination``): one to three dark grey-brown
    particles of dirt and, sometimes, a fibre, nearly opaque."""
    shape = support.shape
    centre = pick_point(support, rng, margin=14)
    alpha = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        at = centre + rng.uniform(-10, 10, 2)
        alpha = np.maximum(alpha, _blob(shape, at, rng.uniform(3.0, 6.0), rng))
    if rng.random() < 0.5:
        alpha = np.maximum(alpha, stroke(_curve(centre, rng, rng.uniform(18, 32), 0.4), shape, 2.0))
    alpha *= support
    dirt = np.array([rng.uniform(0.22, 0.3), rng.uniform(0.18, 0.25), rng.uniform(0.14, 0.2)], np.float32)
    opacity = rng.uniform(0.75, 0.9)
    out = img * (1 - opacity * alpha[..., None]) + dirt * opacity * alpha[..., None]
    return np.clip(out, 0, 1), alpha
