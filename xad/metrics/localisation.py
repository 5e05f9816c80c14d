"""Optimal-threshold IoU (Rashid et al., sec. 3.4): for an attribution map and a non-empty
ground-truth mask, the threshold theta* over the map that maximises the Jaccard index of
{attribution >= theta} with the mask. An exact sweep over every distinct value, vectorised:
sort once, then cumulative sums give |pred| and |pred ∩ GT| at every threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IoUCurve:
    """max_iou: J*; theta: theta* (the largest threshold reaching J*); thresholds: (T,) distinct
    attribution values, descending; ious: (T,) the Jaccard index at each."""

    max_iou: float
    theta: float
    thresholds: np.ndarray
    ious: np.ndarray


def optimal_iou(attribution: np.ndarray, mask: np.ndarray) -> IoUCurve | None:
    """J* and theta* for attribution (H, W) float and mask (H, W) bool; None if the mask is empty
    (IoU is not defined there, which is not the same as 0)."""
    gt = np.asarray(mask, dtype=bool).ravel()
    if not gt.any():
        return None
    a = np.asarray(attribution, dtype=np.float64).ravel()
    if a.shape != gt.shape:
        raise ValueError(f"attribution {np.shape(attribution)} and mask {np.shape(mask)} differ")
    order = np.argsort(-a, kind="stable")
    a_sorted, g_sorted = a[order], gt[order]
    last = np.r_[a_sorted[1:] != a_sorted[:-1], True]  # last pixel of each run of equal values
    inter = np.cumsum(g_sorted)[last]
    n_pred = (np.arange(1, a.size + 1))[last]
    ious = inter / (n_pred + gt.sum() - inter)
    best = int(np.argmax(ious))
    return IoUCurve(float(ious[best]), float(a_sorted[last][best]), a_sorted[last], ious)


def iou_overlay(pred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference's overlay (H, W, 3) uint8: R = 255 (1 - GT), G = B = 255 (1 - pred)."""
    r = 255 * (1 - mask.astype(np.uint8))
    gb = 255 * (1 - pred.astype(np.uint8))
    return np.stack([r, gb, gb], axis=-1).astype(np.uint8)
