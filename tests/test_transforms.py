"""Image conversion edge cases, uploads and contours."""

import io

import numpy as np
import pytest
from PIL import Image

from xad.data.transforms import (DataError, decode_image_bytes, mask_contour, overlay_contour,
                                 to_rgb_uint8)


def test_to_rgb_handles_every_layout() -> None:
    assert to_rgb_uint8(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert to_rgb_uint8(np.ones((4, 5, 1), np.float32))[0, 0, 0] == 255
    gray_alpha = np.dstack([np.full((2, 2), 255, np.uint8), np.full((2, 2), 0, np.uint8)])
    assert to_rgb_uint8(gray_alpha).max() == 0  # fully transparent -> composited on black
    assert to_rgb_uint8(np.full((2, 2), 32768, np.uint16))[0, 0, 0] == 128
    with pytest.raises(DataError, match="not an image array"):
        to_rgb_uint8(np.zeros((2, 2, 7), np.uint8))


def test_decode_upload_refuses_non_images() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(buf, format="PNG")
    assert decode_image_bytes(buf.getvalue()).shape == (3, 3, 3)
    with pytest.raises(DataError, match="report.pdf: not a readable image"):
        decode_image_bytes(b"%PDF-1.4 not an image", "report.pdf")


def test_contour_is_the_inner_boundary() -> None:
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    c = mask_contour(mask)
    assert c.sum() == 12 and not c[2, 2] and c[1, 1]
    out = overlay_contour(np.zeros((6, 6, 3), np.uint8), mask)
    assert (out[1, 1] == (255, 40, 40)).all() and out[2, 2].sum() == 0
    assert overlay_contour(np.zeros((6, 6, 3), np.uint8), None).sum() == 0
