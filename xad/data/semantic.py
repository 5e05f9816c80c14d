"""Semantic anomaly-detection setups (Liznerski et al., sec. 5): classification data turned into
normal-vs-anomalous benchmarks, plus outlier exposure (OE) that is available offline.

A setup is named by a string in the one setting syntax (:mod:`xad.data.settings`):

- ``mnist-normal:<d>``: MNIST, digit ``d`` normal, the nine others anomalous (one vs rest; Fig. 4);
- ``cmnist-normal:one+red``: coloured MNIST, normal = the digit one (any colour) or any red digit,
  the rest anomalous (multiple normal classes; the paper's Fig. 9 setting);
- ``cifar10-normal:<c>``: CIFAR-10, class ``c`` (name or id) normal, the rest anomalous.

The older ``mnist:<d>`` / ``cmnist:one+red`` / ``cifar10:<c>`` (what shipped weights store) read
the class as normal.

All images are returned as ``uint8 (N, 32, 32, 3)`` RGB (MNIST padded by 2 px and repeated over
three channels), so detectors and generators see one format.

OE never uses the ground-truth anomaly classes: for digits it is half letters rendered with the
font that Pillow ships and half random pen scribbles (random affine, stroke width, an elastic
distortion and, for coloured data, colour); for natural images, random crops of the photos that
scikit-image and scikit-learn ship.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xad.data import digits
from xad.data.embedded import DATA_DIR
from xad.data.settings import parse
from xad.data.transforms import DataError
from xad.tensors import to_uint8

SIZE = 32
#: Letters used as OE for digit data; I, l, O, o are left out (they are drawn like 1 and 0).
OE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz"


@dataclass(frozen=True)
class SemanticData:
    """One setup's arrays. x_*: (N, 32, 32, 3) uint8; anomalous_test: (M,) bool; labels_test: (M,)
    a short description per test image (e.g. "7 green"); normal_train: the training images that
    are normal (what a detector and a generator train on)."""

    setup: str
    description: str
    normal_train: np.ndarray
    x_test: np.ndarray
    anomalous_test: np.ndarray
    labels_test: np.ndarray
    oe_kind: str  # "letters" | "letters-coloured" | "photos"

    @property
    def normal_test(self) -> np.ndarray:
        return self.x_test[~self.anomalous_test]

    @property
    def anomalies_test(self) -> np.ndarray:
        return self.x_test[self.anomalous_test]


def pad_rgb(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 28, 28, 3) uint8 -> (N, 32, 32, 3), zero-padded by 2 px."""
    if x.ndim == 3:
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.shape[1:3] == (SIZE, SIZE):
        return x
    p = (SIZE - x.shape[1]) // 2
    return np.pad(x, ((0, 0), (p, SIZE - x.shape[1] - p), (p, SIZE - x.shape[2] - p), (0, 0)))


@lru_cache(maxsize=4)
def _mnist(path: str) -> digits.ImageSplits:
    return digits.load_mnist(path)


def default_mnist_path() -> Path:
    return DATA_DIR / "mnist" / "mnist.npz"


def _legacy(setup: str) -> str:
    """The ``<dataset>:<arg>`` form the functions below dispatch on; one-vs-rest setups only."""
    s = parse(setup, legacy="normal", warn=False)
    if s.role != "normal" or (s.dataset == "mnist" and len(s.classes) != 1):
        raise DataError(f"{setup}: a setup names its normal class, e.g. mnist-normal:7")
    return s.legacy


def describe(setup: str) -> str:
    """A sentence for the UI and cards."""
    kind, _, arg = _legacy(setup).partition(":")
    if kind == "mnist":
        return f"MNIST, digit {arg} normal, the other nine digits anomalous (one vs rest)"
    if kind == "cmnist":
        return ("Coloured MNIST, normal = the digit one in any colour or any red digit; "
                "other digits in green or blue are anomalous")
    if kind == "cifar10":
        return f"CIFAR-10, class '{arg}' normal, the other nine classes anomalous"
    raise DataError(f"unknown setup {setup!r} (use mnist:<digit>, cmnist:one+red or cifar10:<class>)")


def normal_routes(setup: str, predictions: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Which images a classifier of the dataset's labels puts in a normal class of ``setup``, per
    way of being normal: {"digit 7": ...} for mnist:7; {"digit 1": ..., "red": ...} for
    cmnist:one+red. predictions: one (N,) array per head (digit; digit and colour) of the setup's
    feature extractor. An image is judged normal where any route is True."""
    kind, _, arg = _legacy(setup).partition(":")
    if kind == "mnist":
        return {f"digit {arg}": predictions[0] == int(arg)}
    if kind == "cmnist" and len(predictions) >= 2:
        return {"digit 1": predictions[0] == 1, "red": predictions[1] == list(digits.COLOURS).index("red")}
    raise DataError(f"{setup}: no classifier-based normality rule for this setup")


def load_setup(setup: str, path: str | Path | None = None, seed: int = 0) -> SemanticData:
    """The arrays of ``setup``; ``path``: the MNIST npz/IDX folder or the CIFAR-10 folder
    (default: the embedded MNIST). Coloured MNIST's colours come from ``seed``."""
    text = describe(setup)
    kind, _, arg = _legacy(setup).partition(":")
    if kind in ("mnist", "cmnist"):
        m = _mnist(str(path or default_mnist_path()))
        if kind == "mnist":
            if arg not in [str(d) for d in range(10)]:
                raise DataError(f"{setup}: the normal digit must be 0..9")
            d = int(arg)
            test_desc = np.array([str(v) for v in m.y_test])
            return SemanticData(setup, text, pad_rgb(m.x_train[m.y_train == d]), pad_rgb(m.x_test),
                                m.y_test != d, test_desc, "letters")
        if arg != "one+red":
            raise DataError(f"{setup}: the coloured MNIST setup is cmnist:one+red")
        cm, c_train, c_test = digits.coloured_mnist(m, seed)
        red = list(digits.COLOURS).index("red")
        normal_train = (cm.y_train == 1) | (c_train == red)
        anomalous = ~((cm.y_test == 1) | (c_test == red))
        names = np.array(list(digits.COLOURS))
        desc = np.array([f"{y} {names[c]}" for y, c in zip(cm.y_test, c_test)])
        return SemanticData(setup, text, pad_rgb(cm.x_train[normal_train]), pad_rgb(cm.x_test),
                            anomalous, desc, "letters-coloured")
    if kind == "cifar10":
        if path is None:
            raise DataError("CIFAR-10 is not embedded: give the cifar-10-batches-py folder")
        c = digits.load_cifar10(path)
        cls = int(arg) if arg.isdigit() else (c.class_names.index(arg) if arg in c.class_names else -1)
        if not 0 <= cls < 10:
            raise DataError(f"{setup}: unknown CIFAR-10 class (use 0..9 or {', '.join(c.class_names)})")
        desc = np.array([c.class_names[v] for v in c.y_test])
        return SemanticData(setup, text, c.x_train[c.y_train == cls], c.x_test, c.y_test != cls,
                            desc, "photos")
    raise DataError(text)


def _elastic(g: np.ndarray, rng: np.random.Generator, strength: float = 6.0, smooth: float = 8.0) -> np.ndarray:
    """Elastic distortion (Simard et al.) of a 2-D image: a smoothed random displacement field."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    h, w = g.shape
    dy = gaussian_filter(rng.uniform(-1, 1, (h, w)), smooth) * strength * smooth
    dx = gaussian_filter(rng.uniform(-1, 1, (h, w)), smooth) * strength * smooth
    yy, xx = np.mgrid[:h, :w]
    return map_coordinates(g, [yy + dy, xx + dx], order=1, mode="constant")


def _colour(rng: np.random.Generator, coloured: bool) -> np.ndarray:
    if not coloured:
        return np.ones(3)
    hue = rng.uniform(0, 1)
    return np.clip(np.abs((hue * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1)  # HSV, s = v = 1


def _finish(img: Image.Image, rng: np.random.Generator, coloured: bool, size: int) -> np.ndarray:
    """Rotate, shift and distort a large grey drawing, downsample to ``size``, colour it."""
    big = img.size[0]
    img = img.rotate(float(rng.uniform(-25, 25)), resample=Image.Resampling.BILINEAR,
                     translate=tuple(rng.uniform(-0.08, 0.08, 2) * big))
    g = _elastic(np.asarray(img, dtype=np.float32) / 255, rng)
    g = np.asarray(Image.fromarray(np.uint8(np.clip(g, 0, 1) * 255)).resize((size, size), Image.Resampling.BOX),
                   dtype=np.float32) / 255
    return to_uint8(g[..., None] * _colour(rng, coloured))


def letters(n: int, seed: int = 0, coloured: bool = False, size: int = SIZE) -> np.ndarray:
    """``n`` OE images (N, size, size, 3) uint8: a random letter drawn in Pillow's bundled font,
    white (or a random saturated colour) on black, with random size, stroke, rotation, shift and an
    elastic distortion (so the detector cannot tell OE from handwriting by the font's clean lines)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, 3), np.uint8)
    big = size * 4  # draw large, then downsample: smooth strokes like MNIST's
    fonts = {s: ImageFont.load_default(size=s) for s in range(84, 128, 8)}
    for i in range(n):
        img = Image.new("L", (big, big), 0)
        font = fonts[int(rng.choice(list(fonts)))]
        ch = OE_LETTERS[rng.integers(len(OE_LETTERS))]
        ImageDraw.Draw(img).text((big / 2, big / 2), ch, fill=255, font=font, anchor="mm",
                                 stroke_width=int(rng.integers(3, 9)), stroke_fill=255)
        out[i] = _finish(img, rng, coloured, size)
    return out


def scribbles(n: int, seed: int = 0, coloured: bool = False, size: int = SIZE) -> np.ndarray:
    """``n`` OE images: one to three random pen strokes (smooth random polylines of varying width),
    handwriting-like but no digit or letter."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, 3), np.uint8)
    big = size * 4
    for i in range(n):
        img = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            pts = np.cumsum(rng.normal(0, 1, (int(rng.integers(4, 9)), 2)), axis=0)
            pts = pts - pts.mean(0)
            pts = pts / (np.abs(pts).max() + 1e-9) * big * rng.uniform(0.2, 0.35)  # 40-70 % of the frame
            pts = pts + big / 2 + rng.uniform(-big * 0.08, big * 0.08, 2)
            draw.line([tuple(p) for p in pts], fill=255, width=int(rng.integers(9, 18)), joint="curve")
        out[i] = _finish(img, rng, coloured, size)
    return out


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "brick", "grass", "gravel")
    out = []
    for name in names:
        img = np.asarray(getattr(skdata, name)())
        out.append(np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3])
    out += list(load_sample_images().images)
    return tuple(out)


def photo_crops(n: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """``n`` OE images (N, size, size, 3) uint8: random crops (random scale, flips) of the real
    photos shipped in scikit-image and scikit-learn."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    out = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        p = photos[rng.integers(len(photos))]
        side = int(rng.integers(size, min(p.shape[:2]) // 2))
        y, x = rng.integers(0, p.shape[0] - side), rng.integers(0, p.shape[1] - side)
        crop = Image.fromarray(p[y: y + side, x: x + side]).resize((size, size), Image.Resampling.BOX)
        a = np.asarray(crop)
        out[i] = a[:, ::-1] if rng.random() < 0.5 else a
    return out


def two_colour(images: np.ndarray, seed: int = 0, share: float = 0.5,
               normal_colour: tuple[float, float, float] | None = None) -> np.ndarray:
    """Repaint part of the strokes of a random ``share`` of coloured OE ``images`` (N, H, W, 3)
    uint8 in a second colour: the region is smoothed noise above a threshold (specks to halves of
    the image); the second colour is ``normal_colour`` half of the time, else a random hue.

    Why: coloured MNIST has a colour that is normal by itself (red digits). With single-coloured OE
    a detector may learn "some red pixels -> normal", and a counterfactual generator then fools it
    with red specks; OE whose strokes are partly in the normal colour teaches that the whole
    drawing must have it."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    out = images.copy()
    for i in np.flatnonzero(rng.random(len(images)) < share):
        g = images[i].max(-1).astype(np.float32) / 255  # the stroke intensity (colours have max 1)
        field = gaussian_filter(rng.normal(size=g.shape), float(rng.uniform(1.0, 5.0)))
        ink = field[g > 0.2]
        if not len(ink):
            continue
        region = field > np.quantile(ink, float(rng.uniform(0.3, 0.95)))  # 5-70 % of the strokes
        if normal_colour is not None and rng.random() < 0.5:
            c = np.asarray(normal_colour, np.float32)
            c = c / c.max()
        else:
            c = _colour(rng, True)
        out[i][region] = to_uint8(g[region, None] * c)
    return out


#: OE kinds: what a setup uses by default (:func:`load_setup`) and what ``train detector --oe`` offers.
OE_KINDS = {
    "letters": "letters in Pillow's bundled font and pen scribbles (random size, stroke, rotation, shift)",
    "letters-coloured": "letters in Pillow's bundled font and pen scribbles in random colours",
    "letters-two-colour": "letters in Pillow's bundled font and pen scribbles in random colours, half of "
                          "them with part of the strokes in a second colour (half the time red, the "
                          "normal colour)",
    "photos": "random crops of the photos shipped with scikit-image and scikit-learn",
    "blue-anomalies": "the blue anomalies of coloured MNIST's training split (not outliers: a supervised "
                      "classifier of normal vs blue anomalies, the paper's classification-bias experiment, Fig. 10)",
}


def blue_training_anomalies(path: str | Path | None = None, seed: int = 0) -> np.ndarray:
    """Coloured MNIST's training anomalies drawn in blue (neither a one nor red), (N, 32, 32, 3)
    uint8: the only anomalies the supervised classifier of the paper's Fig. 10 sees."""
    m = _mnist(str(path or default_mnist_path()))
    cm, c_train, _ = digits.coloured_mnist(m, seed)
    colours = list(digits.COLOURS)
    blue = (cm.y_train != 1) & (c_train == colours.index("blue"))
    return pad_rgb(cm.x_train[blue])


def anomalies_by_colour(data: SemanticData) -> dict[str, np.ndarray]:
    """Coloured MNIST test anomalies split by colour: {"blue": mask, "green": mask} over x_test."""
    colour = np.array([str(d).split(" ")[-1] for d in data.labels_test])
    return {c: data.anomalous_test & (colour == c) for c in ("blue", "green")}


def outliers(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """OE of ``kind`` (a key of :data:`OE_KINDS`): (N, 32, 32, 3) uint8."""
    if kind == "photos":
        return photo_crops(n, seed)
    if kind in ("letters", "letters-coloured", "letters-two-colour"):  # half letters, half scribbles
        coloured = kind != "letters"
        x = np.concatenate([letters(n - n // 2, seed, coloured), scribbles(n // 2, seed + 7919, coloured)])
        return two_colour(x, seed + 104729, normal_colour=digits.COLOURS["red"]) if kind == "letters-two-colour" else x
    raise ValueError(f"unknown OE kind {kind!r}")
