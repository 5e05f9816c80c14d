"""Image and mask conversion: any readable image -> uint8 RGB (H, W, 3); masks -> bool (H, W).

Grayscale, grayscale+alpha, RGBA, palette, 16-bit and float images are converted; anything that is
not an image is refused with a :class:`DataError` naming the file.
"""

from __future__ import annotations

import re

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from skimage.color import rgba2rgb
from skimage.util import img_as_float32

from xad.tensors import to_uint8


class DataError(ValueError):
    """A dataset folder or file that xad cannot use. The message names the offending path."""


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Convert an image array to uint8 RGB.

    array: (H, W), (H, W, 1), (H, W, 2) gray+alpha, (H, W, 3) or (H, W, 4) RGBA; dtype uint8,
    uint16 (full 16-bit range), bool, or float in [0, 1]. Alpha is composited on black, as a
    detector sees pixels, not transparency. Returns (H, W, 3) uint8.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise DataError(f"not an image array: shape {a.shape}")
    a = _to_unit_float(a)
    if a.shape[2] == 2:  # gray + alpha -> RGBA
        a = np.concatenate([np.repeat(a[..., :1], 3, axis=2), a[..., 1:]], axis=2)
    if a.shape[2] == 4:  # composite the alpha channel on black
        a = rgba2rgb(a, background=(0, 0, 0)).astype(np.float32)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return to_uint8(a)


def _to_unit_float(a: np.ndarray) -> np.ndarray:
    """Scale any supported dtype to float32 in [0, 1]: bool, uint8 and uint16 by
    ``skimage.util.img_as_float32`` (full range), other integers (PIL's int32 16-bit mode) by 255 or
    65535, floats clipped."""
    if a.dtype in (np.bool_, np.uint8, np.uint16):
        return img_as_float32(a)
    if np.issubdtype(a.dtype, np.integer):  # e.g. int32 from PIL mode "I" (16-bit PNG)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return np.clip(a.astype(np.float32) / top, 0.0, 1.0)
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(a.astype(np.float32), 0.0, 1.0)
    raise DataError(f"unsupported image dtype {a.dtype}")


#: The largest image xad decodes (pixels): a 31 KB PNG can claim 16000 x 16000 px and take GBs.
MAX_PIXELS = 40_000_000


def _open_checked(source, name: str) -> Image.Image:  # noqa: ANN001 - a path or a file object
    """Open and decode an image, refusing decompression bombs before any pixel is decoded."""
    try:
        img = Image.open(source)
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise DataError(f"{name}: image is {w} x {h} px ({w * h / 1e6:.0f} Mpx), over xad's limit of "
                            f"{MAX_PIXELS / 1e6:.0f} Mpx (a decompression bomb?)")
        img.load()
    except Image.DecompressionBombError as exc:  # PIL refuses it at open: over 2x its own limit
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} Mpx" if found else "too large"
        raise DataError(f"{name}: image is {size}, over xad's limit of {MAX_PIXELS / 1e6:.0f} Mpx "
                        "(a decompression bomb?)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{name}: not a readable image ({exc.__class__.__name__})") from exc
    return img


def _open(path: Path) -> Image.Image:
    return _open_checked(path, str(path))


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif img.mode == "1":
        img = img.convert("L")
    return np.asarray(img)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); raises DataError naming the file otherwise."""
    path = Path(path)
    try:
        return to_rgb_uint8(_pil_to_array(_open(path)))
    except DataError as exc:
        if str(path) in str(exc):
            raise
        raise DataError(f"{path}: {exc}") from exc


def read_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask as bool (H, W): any non-zero pixel (of any channel) is defect."""
    path = Path(path)
    a = _pil_to_array(_open(path))
    if a.ndim == 3:
        a = a[..., :3].max(axis=2) if a.shape[2] >= 3 else a[..., 0]
    return a > 0


def decode_image_bytes(data: bytes, name: str = "upload") -> np.ndarray:
    """Decode an uploaded file's bytes as uint8 RGB; DataError naming ``name`` if it is no image."""
    import io

    return to_rgb_uint8(_pil_to_array(_open_checked(io.BytesIO(data), name)))


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB (H, W, 3) to (size, size) or (h, w) with Lanczos filtering (PIL's
    ``Resampling.LANCZOS``, antialiased when shrinking)."""
    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS))


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a bool mask (H, W) with nearest neighbour, as the reference does."""
    h, w = (size, size) if isinstance(size, int) else size
    if mask.shape == (h, w):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.resize((w, h), Image.Resampling.NEAREST)) > 127


#: How a non-square image becomes the model's square input (masks follow the same geometry).
#: stretch: resize both sides to the size (aspect ratio lost; the paper's resize, MVTec is square);
#: pad: scale the longer side to the size and pad the shorter one symmetrically with black;
#: crop: centre-crop the largest square, then resize (the ends of long images are lost).
GEOMETRIES = ("stretch", "pad", "crop")


def square_geometry(array: np.ndarray, geometry: str) -> np.ndarray:
    """Make (H, W[, C]) square before resizing: unchanged (stretch), centre-cropped (crop) or padded
    with zeros / False (pad). The same call on an image and its mask keeps them aligned."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    h, w = array.shape[:2]
    if geometry == "stretch" or h == w:
        return array
    if geometry == "crop":
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        return array[y0: y0 + side, x0: x0 + side]
    side = max(h, w)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out = np.zeros((side, side, *array.shape[2:]), dtype=array.dtype)
    out[y0: y0 + h, x0: x0 + w] = array
    return out


def mask_contour(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boundary pixels of a bool mask (H, W) -> bool (H, W), ``thickness`` pixels wide (inner):
    ``skimage.segmentation.find_boundaries`` (4-connected) peeled ``thickness`` times; pixels on
    the image's edge count as boundary (the mask is padded with background first)."""
    from skimage.segmentation import find_boundaries

    m = np.pad(np.asarray(mask, bool), 1)
    out = np.zeros_like(m)
    for _ in range(thickness):
        ring = find_boundaries(m, mode="inner")
        out |= ring
        m &= ~ring
    return out[1:-1, 1:-1]


def overlay_contour(
    image: np.ndarray, mask: np.ndarray | None, color: tuple[int, int, int] = (255, 40, 40),
    thickness: int = 1,
) -> np.ndarray:
    """Draw the contour of ``mask`` on uint8 RGB ``image`` (H, W, 3); returns a copy."""
    out = image.copy()
    if mask is None or not mask.any():
        return out
    if mask.shape != image.shape[:2]:
        mask = resize_mask(mask, image.shape[:2])
    out[mask_contour(mask, thickness)] = color
    return out
