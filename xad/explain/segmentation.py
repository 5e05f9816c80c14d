"""Superpixels for LIME, as the reference does: quickshift with max_dist bisected to hit k segments.

Quickshift runs with the published notebook's parameters (:data:`QUICKSHIFT`): kernel_size 2,
ratio 0.95, sigma 0.05, rng 1234 and skimage's default ``convert2lab=True`` (the image is
clustered in Lab colour space, where max_dist on [0, 100] spans the L axis).

- S1 segments the blend 0.5 x + 0.5 x' (no knowledge of the defect: the fair setup);
- S2 segments 0.33 x + 0.33 x' + 0.34 GT with GT on the 0-255 scale, so the mask's boundary
  dominates and becomes a segment boundary (the ground truth is exposed: an upper bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.segmentation import quickshift

#: The notebook's quickshift parameters (max_dist is bisected; rng is the seed). Recorded in run.json.
QUICKSHIFT = {"kernel_size": 2, "ratio": 0.95, "sigma": 0.05, "convert2lab": True}
#: The bisection: max_dist on [0, 100], at most 40 steps, until exactly k segments.
BISECTION = {"max_dist_low": 0.0, "max_dist_high": 100.0, "max_steps": 40}


def parameters(k: int, seed: int) -> dict:
    """Everything that fixes the segments, for run.json."""
    return {"method": "quickshift", **QUICKSHIFT, "rng": seed, "segments": k, **BISECTION}


@dataclass(frozen=True)
class Segmentation:
    """labels: (H, W) int32 in 0..n-1; max_dist: the value that gave them; n: segment count."""

    labels: np.ndarray
    max_dist: float

    @property
    def n(self) -> int:
        return int(self.labels.max()) + 1


class QuickshiftTree:
    """Quickshift's forest computed once; ``labels(max_dist)`` cuts it for any max_dist.

    Quickshift links every pixel to its nearest higher-density neighbour independently of
    max_dist, which only cuts links longer than itself. So the bisection for k segments needs
    one quickshift and then cheap cuts; each cut equals ``skimage.segmentation.quickshift`` with
    that max_dist exactly (tested), at a fraction of the cost.
    """

    def __init__(self, image: np.ndarray, seed: int = 1234) -> None:
        _, parent, dist = quickshift(image.astype(np.float64), max_dist=np.inf, rng=seed,
                                     return_tree=True, **QUICKSHIFT)
        self.parent = np.asarray(parent).ravel()  # (H*W,) index of each pixel's parent
        self.dist = np.asarray(dist).ravel()  # (H*W,) distance to it
        self.shape = image.shape[:2]

    def labels(self, max_dist: float) -> np.ndarray:
        """Segment labels (H, W) int32 in 0..n-1, as quickshift(max_dist=max_dist) gives."""
        p = self.parent.copy()
        far = self.dist > max_dist
        p[far] = np.flatnonzero(far)
        while not np.array_equal(q := p[p], p):  # flatten the forest: every pixel -> its root
            p = q
        return np.unique(p, return_inverse=True)[1].reshape(self.shape).astype(np.int32)


def quickshift_k(image: np.ndarray, k: int = 100, seed: int = 1234, max_steps: int = 40) -> Segmentation:
    """Quickshift of ``image`` (H, W, C) float with max_dist bisected on [0, 100] for ``k`` segments.

    Stops at exactly k (as the reference) or after ``max_steps``, returning the closest count seen.
    """
    tree = QuickshiftTree(image, seed)
    lo, hi = 0.0, 100.0
    best: Segmentation | None = None
    for _ in range(max_steps):
        mid = (lo + hi) / 2
        seg = Segmentation(tree.labels(mid), mid)
        if best is None or abs(seg.n - k) < abs(best.n - k):
            best = seg
        if seg.n == k:
            break
        lo, hi = (mid, hi) if seg.n > k else (lo, mid)  # more segments -> larger max_dist
    return best


def quickshift_k_reference(image: np.ndarray, k: int = 100, seed: int = 1234,
                           max_steps: int = 40) -> Segmentation:
    """The reference's bisection: a full ``skimage`` quickshift at every step (slow; same result)."""
    lo, hi, seg = 0.0, 100.0, None
    best: Segmentation | None = None
    for _ in range(max_steps):
        mid = (lo + hi) / 2
        labels = quickshift(image.astype(np.float64), max_dist=mid, rng=seed, **QUICKSHIFT)
        seg = Segmentation(labels.astype(np.int32), mid)
        if best is None or abs(seg.n - k) < abs(best.n - k):
            best = seg
        if seg.n == k:
            break
        lo, hi = (mid, hi) if seg.n > k else (lo, mid)
    return best


def s1_image(x: np.ndarray, x_rec: np.ndarray) -> np.ndarray:
    """What S1 segments: 0.5 x + 0.5 x'. x, x_rec: (H, W, 3) float in [0, 1]."""
    return 0.5 * x + 0.5 * x_rec


def s2_image(x: np.ndarray, x_rec: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """What S2 segments: 0.33 x + 0.33 x' + 0.34 GT, GT = mask * 255 (zero for good images)."""
    gt = np.zeros(x.shape[:2]) if mask is None else mask.astype(np.float64) * 255.0
    return 0.33 * x + 0.33 * x_rec + 0.34 * gt[..., None]


def segments_for(setup: str, x: np.ndarray, x_rec: np.ndarray, mask: np.ndarray | None,
                 k: int = 100, seed: int = 1234, reference: bool = False) -> Segmentation:
    """Segments of setup "S1" or "S2" for one image (``reference``: the slow original bisection)."""
    segment = quickshift_k_reference if reference else quickshift_k
    if setup == "S1":
        return segment(s1_image(x, x_rec), k, seed)
    if setup == "S2":
        return segment(s2_image(x, x_rec, mask), k, seed)
    raise ValueError(f"segments exist for S1 and S2, not {setup!r}")
