"""The one place that converts images between numpy and torch and between uint8 and float.

Images at xad's API are numpy (N, H, W, 3) (or one (H, W, 3)), uint8 in [0, 255] or float in
[0, 1]; models see torch (N, 3, H, W) float32 in [0, 1]. Every module converts through these four
functions, so rounding and channel order are the same everywhere.
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 or float in [0, 1] -> (N, 3, H, W) float32 in [0, 1] (a permuted
    view: no copy for float32 input unless the array is read-only)."""
    x = torch.from_numpy(np.require(images, requirements=("C", "W")))  # copies only if read-only
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(0, 3, 1, 2)


def to_images(tensor: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) tensor (any float dtype, any device) -> (N, H, W, 3) float32 numpy."""
    return tensor.detach().float().cpu().permute(0, 2, 3, 1).numpy()


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 in [0, 255] -> float32 in [0, 1] (divided by 255); float -> float32 unchanged.
    Any shape."""
    a = np.asarray(images)
    return a.astype(np.float32) / 255 if a.dtype == np.uint8 else a.astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8: round to nearest (``np.rint``) of 255 x, clipped to [0, 255];
    uint8 is returned unchanged. Any shape."""
    a = np.asarray(images)
    if a.dtype == np.uint8:
        return a
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
