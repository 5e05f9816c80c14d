"""Metrics of counterfactual explanations (Liznerski et al., sec. 5.2), small pure functions.

- AuROC of the detector's scores, normal test images vs counterfactuals (alpha = 0): about 0.5
  means the detector cannot tell the CEs from normal images;
- FID between two sets of feature vectors, and the normalised FID_N = FID(CEs, normal) /
  FID(anomalies, normal) in %;
- accuracy of the concept classifier on counterfactuals;
- minimality: mean squared error and SSIM between each anomaly and its counterfactual;
- calibration: how far the detector's score of G(x, alpha, k) lands from the target alpha;
- concept routes: which way of being normal each CE takes (e.g. "red" or "digit 1").
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from sklearn.metrics import roc_auc_score


def auroc_normal_vs_ce(scores_normal: np.ndarray, scores_ce: np.ndarray) -> float:
    """AuROC with the CEs as the positive class; 0.5 = indistinguishable from normal images."""
    s = np.concatenate([scores_normal, scores_ce]).astype(np.float64)
    y = np.r_[np.zeros(len(scores_normal)), np.ones(len(scores_ce))]
    return float(roc_auc_score(y, s))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # a singular product is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(ca @ cb)
    if not np.isfinite(covmean).all():  # nearly singular: the standard jitter
        eps = 1e-6 * np.eye(len(ca))
        covmean = linalg.sqrtm((ca + eps) @ (cb + eps))
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean))


def fid_normalised(feat_ce: np.ndarray, feat_normal: np.ndarray, feat_anomalies: np.ndarray) -> float:
    """FID_N in %: FID(CEs, normal) / FID(anomalies, normal) x 100."""
    return 100.0 * fid(feat_ce, feat_normal) / fid(feat_anomalies, feat_normal)


def concept_accuracy(logits: np.ndarray, concepts: np.ndarray) -> float:
    """Share of counterfactuals whose concept the classifier R names correctly. logits: (N, K)."""
    return float((np.argmax(logits, axis=1) == np.asarray(concepts)).mean())


def mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image mean squared error of (N, H, W, C) images in [0, 1] -> (N,)."""
    return ((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).reshape(len(a), -1).mean(1)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image SSIM (scikit-image, channel axis last, data range 1) of (N, H, W, C) in [0, 1]."""
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(x, y, channel_axis=-1, data_range=1.0)
                     for x, y in zip(np.asarray(a, np.float64), np.asarray(b, np.float64))])


def target_error(scores: np.ndarray, alpha: float | np.ndarray) -> float:
    """Mean |phi(G(x, alpha, k)) - alpha| over the CEs: 0 = every CE gets exactly the asked score."""
    return float(np.mean(np.abs(np.asarray(scores, np.float64) - np.asarray(alpha, np.float64))))


def route_shares(routes: dict[str, np.ndarray]) -> dict[str, float]:
    """Shares of images taking each way of being normal: with two routes a and b (boolean arrays,
    e.g. {"red": ..., "digit 1": ...}) the four exclusive cells "a only", "b only", "both",
    "neither" (summing to 1); with one route "a" and "neither"."""
    names = list(routes)
    if not names or len(names) > 2:
        raise ValueError("route_shares takes one or two routes")
    r = [np.asarray(routes[n], bool) for n in names]
    if len(r) == 1:
        return {names[0]: float(r[0].mean()), "neither": float((~r[0]).mean())}
    a, b = r
    return {f"{names[0]} only": float((a & ~b).mean()), f"{names[1]} only": float((~a & b).mean()),
            "both": float((a & b).mean()), "neither": float((~a & ~b).mean())}
