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


# Localisation beside max-IoU (pure functions of an attribution or anomaly map and a mask). Positive
# values are evidence for the anomaly: an explanation's negative values (pixels whose showing lowers
# the error) count as no relevance, as early Quantus filtered them for mass accuracy.

def _flat(attribution: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    gt = np.asarray(mask, dtype=bool)
    a = np.asarray(attribution, dtype=np.float64)
    if a.shape != gt.shape:
        raise ValueError(f"attribution {a.shape} and mask {gt.shape} differ")
    if not gt.any():
        return None
    return a.ravel(), gt.ravel()


def rank_accuracy(attribution: np.ndarray, mask: np.ndarray) -> float | None:
    """Relevance rank accuracy (Arras et al., Quantus): of the K = |GT| highest-ranked pixels, the
    fraction inside GT. Ties are broken by raster order (first pixel first). None if GT is empty."""
    flat = _flat(attribution, mask)
    if flat is None:
        return None
    a, gt = flat
    top = np.argsort(-a, kind="stable")[: int(gt.sum())]
    return float(gt[top].mean())


def mass_accuracy(attribution: np.ndarray, mask: np.ndarray) -> float | None:
    """Relevance mass accuracy (Arras et al., Quantus): the share of the positive relevance that
    falls inside GT, sum(a+ in GT) / sum(a+); 0 when nothing is positive. None if GT is empty."""
    flat = _flat(attribution, mask)
    if flat is None:
        return None
    a, gt = flat
    pos = np.clip(a, 0, None)
    total = pos.sum()
    return float(pos[gt].sum() / total) if total > 0 else 0.0


def pointing_game(attribution: np.ndarray, mask: np.ndarray) -> bool | None:
    """Pointing game (Zhang et al., as Quantus without tolerance): a hit when a pixel of maximal
    attribution lies inside GT (any of them, when several share the maximum). None if GT is empty."""
    flat = _flat(attribution, mask)
    if flat is None:
        return None
    a, gt = flat
    return bool(gt[a == a.max()].any())


def pixel_auroc(scores: np.ndarray, mask: np.ndarray) -> float | None:
    """Area under the ROC of the pixels' scores against the mask (ties count half: the
    Mann-Whitney statistic). None unless the mask has both classes."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    gt = np.asarray(mask, dtype=bool).ravel()
    if s.shape != gt.shape:
        raise ValueError(f"scores {np.shape(scores)} and mask {np.shape(mask)} differ")
    n_pos, n_neg = int(gt.sum()), int((~gt).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    ranks = np.empty(len(s))
    starts = np.r_[0, np.flatnonzero(sorted_s[1:] != sorted_s[:-1]) + 1]
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # average 1-based ranks
    return float((ranks[gt].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pro_curve(scores: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-region-overlap curve (Bergmann et al., MVTec AD): for every threshold t over the
    scores, FPR = share of GT-negative pixels with score >= t and PRO = the mean over the masks'
    connected regions (8-connected, per image) of the share of the region's pixels with
    score >= t. scores, masks: (H, W) or (N, H, W). Returns (fpr, pro) from (0, 0), thresholds
    descending; None without a region or without a negative pixel."""
    from scipy.ndimage import label

    s = np.asarray(scores, dtype=np.float64)
    gt = np.asarray(masks, dtype=bool)
    if s.shape != gt.shape:
        raise ValueError(f"scores {s.shape} and masks {gt.shape} differ")
    s, gt = s.reshape(-1, *s.shape[-2:]), gt.reshape(-1, *gt.shape[-2:])
    regions = np.zeros(gt.shape, dtype=np.int64)
    count = 0
    for i, m in enumerate(gt):
        lab, n = label(m, structure=np.ones((3, 3), dtype=int))
        regions[i] = np.where(lab > 0, lab + count, 0)
        count += n
    n_neg = int((~gt).sum())
    if count == 0 or n_neg == 0:
        return None
    flat, reg = s.ravel(), regions.ravel()
    sizes = np.bincount(reg, minlength=count + 1).astype(np.float64)
    weight = np.where(reg > 0, 1.0 / (sizes[reg] * count), 0.0)  # each region weighs 1 / count
    order = np.argsort(-flat, kind="stable")
    last = np.r_[flat[order][1:] != flat[order][:-1], True]  # the last pixel of each tie
    fpr = np.cumsum(reg[order] == 0)[last] / n_neg
    pro = np.cumsum(weight[order])[last]
    return np.r_[0.0, fpr], np.r_[0.0, pro]


def aupro(scores: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float | None:
    """Area under the PRO curve for FPR in [0, fpr_limit], divided by fpr_limit (the MVTec AD
    convention, limit 0.3; 1 is perfect); the curve is linearly interpolated at the limit."""
    curve = pro_curve(scores, masks)
    if curve is None:
        return None
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must be in (0, 1], not {fpr_limit}")
    fpr, pro = curve
    k = int(np.searchsorted(fpr, fpr_limit, side="right"))  # fpr[:k] <= limit
    if k < len(fpr):
        t = (fpr_limit - fpr[k - 1]) / (fpr[k] - fpr[k - 1])
        fpr, pro = np.r_[fpr[:k], fpr_limit], np.r_[pro[:k], pro[k - 1] + t * (pro[k] - pro[k - 1])]
    return float(np.trapezoid(pro, fpr) / fpr_limit)


#: The localisation columns of results.csv, per explanation and for the detector's own map.
EXPLANATION_METRICS = ("rank", "mass", "pointing")
MAP_METRICS = ("iou", "rank", "mass", "pointing", "pixel_auroc", "aupro")


def localisation(attribution: np.ndarray, mask: np.ndarray | None, anomaly_map: bool = False) -> dict:
    """The per-sample localisation numbers of one map against one mask (None where undefined):
    rank / mass accuracy and the pointing game, and for a detector's anomaly map also max-IoU,
    pixel AUROC and AUPRO at FPR 0.3."""
    names = MAP_METRICS if anomaly_map else EXPLANATION_METRICS
    if mask is None or not np.asarray(mask).any():
        return dict.fromkeys(names)
    out = {"rank": rank_accuracy(attribution, mask), "mass": mass_accuracy(attribution, mask),
           "pointing": float(pointing_game(attribution, mask))}  # 1.0 hit, 0.0 miss
    if anomaly_map:
        curve = optimal_iou(attribution, mask)
        out |= {"iou": curve.max_iou if curve else None, "pixel_auroc": pixel_auroc(attribution, mask),
                "aupro": aupro(attribution, mask)}
    return {k: out[k] for k in names}
