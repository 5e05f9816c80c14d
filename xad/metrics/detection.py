"""Image-level detection: anomaly maps and scores, the optimal threshold tau*, confusion, AUROC.

Following Rashid et al.: m = |gs(x) - gs(x')| with gs the per-pixel max over channels, the score
alpha = max(m), and tau* = argmax sqrt(TPR * (1 - FPR)) over candidate thresholds (the scores
themselves) for the rule "alpha > delta"; tau* = delta* + 1e-5 as in the reference code, so an
image is called anomalous when alpha >= tau*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

TAU_EPS = 1e-5


def anomaly_map(x: np.ndarray, x_rec: np.ndarray, mode: str = "gray_max") -> np.ndarray:
    """Per-pixel anomaly map. x, x_rec: (..., H, W, 3) float in [0, 1] -> (..., H, W).

    mode "gray_max": |max_c x - max_c x'| (the paper's gs); "channel_max": max_c |x - x'|.
    """
    if mode == "gray_max":
        return np.abs(x.max(axis=-1) - x_rec.max(axis=-1))
    if mode == "channel_max":
        return np.abs(x - x_rec).max(axis=-1)
    raise ValueError(f"mode must be 'gray_max' or 'channel_max', got {mode!r}")


def anomaly_score(maps: np.ndarray) -> np.ndarray:
    """alpha = max of the map: (N, H, W) -> (N,)."""
    return maps.reshape(len(maps), -1).max(axis=1)


def tau_star(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold maximising sqrt(TPR * (1 - FPR)); labels: 1 anomalous, 0 good. (N,) each."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("tau* needs both good and anomalous samples")
    deltas = np.unique(scores)  # candidate thresholds: the scores themselves
    above = scores[None, :] > deltas[:, None]  # (T, N): predicted anomalous for each delta
    tpr = (above & labels).sum(1) / labels.sum()
    fpr = (above & ~labels).sum(1) / (~labels).sum()
    best = int(np.argmax(np.sqrt(tpr * (1 - fpr))))  # first maximum: the lowest such delta
    return float(deltas[best] + TAU_EPS)


@dataclass(frozen=True)
class DetectionResult:
    """Confusion counts at threshold ``tau`` and the threshold-free AUROC."""

    tau: float
    n_good: int
    good_correct: int
    n_anomalous: int
    anomalous_correct: int
    auroc: float

    @property
    def accuracy(self) -> float:
        return (self.good_correct + self.anomalous_correct) / max(1, self.n_good + self.n_anomalous)

    def describe(self) -> str:
        """In the paper's words: "40 good (37 correct, 3 misclassified) and 70 anomalous (...)"."""
        return (f"{self.n_good} good ({self.good_correct} correct, "
                f"{self.n_good - self.good_correct} misclassified) and {self.n_anomalous} anomalous "
                f"({self.anomalous_correct} correct, {self.n_anomalous - self.anomalous_correct} "
                f"misclassified): accuracy {100 * self.accuracy:.0f} % at tau* = {self.tau:.3f}")


def predicted_anomalous(scores: np.ndarray | float, tau: float) -> np.ndarray:
    """The verdict rule, the one place it lives: anomalous when the score reaches tau (alpha >= tau)."""
    return np.asarray(scores) >= tau


def evaluate(scores: np.ndarray, labels: np.ndarray, tau: float | None = None) -> DetectionResult:
    """Confusion and AUROC; ``tau`` defaults to tau* fitted on these same labels (the paper's way)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    tau = tau_star(scores, labels) if tau is None else float(tau)
    pred = predicted_anomalous(scores, tau)
    return DetectionResult(tau, int((~labels).sum()), int((~pred & ~labels).sum()),
                           int(labels.sum()), int((pred & labels).sum()),
                           float(roc_auc_score(labels, scores)))


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the ROC curve (sklearn)."""
    return roc_curve(np.asarray(labels).astype(int), np.asarray(scores, float))


@dataclass(frozen=True)
class RocCurve:
    """The ROC curve (fpr, tpr: (T,) from sklearn) and its operating point at threshold ``tau``."""

    fpr: np.ndarray
    tpr: np.ndarray
    tau: float
    fpr_at_tau: float
    tpr_at_tau: float


def roc_at(scores: np.ndarray, labels: np.ndarray, tau: float) -> RocCurve:
    """The ROC of (N,) scores against (N,) labels (1 anomalous) and the point the rule
    alpha >= tau picks on it."""
    fpr, tpr, _ = roc(scores, labels)
    pred, labels = predicted_anomalous(scores, tau), np.asarray(labels).astype(bool)
    return RocCurve(fpr, tpr, float(tau), float((pred & ~labels).sum() / max(1, (~labels).sum())),
                    float((pred & labels).sum() / max(1, labels.sum())))


def auroc_by_group(scores: np.ndarray, labels: np.ndarray, groups: list[str]) -> dict[str, float]:
    """AUROC of each anomalous group (defect type) against all good samples: {group: auroc}."""
    scores, labels, groups = np.asarray(scores, float), np.asarray(labels).astype(bool), np.asarray(groups)
    good = ~labels
    return {g: float(roc_auc_score(np.r_[np.zeros(good.sum()), np.ones((groups == g).sum())],
                                   np.r_[scores[good], scores[groups == g]]))
            for g in dict.fromkeys(groups[labels])}


@dataclass(frozen=True)
class ThresholdStats:
    """Confusion counts and rates at one threshold ``tau`` (the what-if of a chosen threshold).
    precision and F1 are 0 when nothing is called anomalous."""

    tau: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def recall(self) -> float:  # TPR
        return self.tp / max(1, self.tp + self.fn)

    @property
    def precision(self) -> float:
        return self.tp / max(1, self.tp + self.fp)

    @property
    def f1(self) -> float:
        return 2 * self.tp / max(1, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / max(1, self.tp + self.fp + self.tn + self.fn)

    @property
    def gmean(self) -> float:
        """sqrt(TPR (1 - FPR)): what tau* maximises in the paper."""
        return float(np.sqrt(self.recall * self.tn / max(1, self.tn + self.fp)))


def threshold_stats(scores: np.ndarray, labels: np.ndarray, tau: float) -> ThresholdStats:
    """Counts at ``tau`` under the verdict rule :func:`predicted_anomalous`; labels 1 anomalous."""
    pred, labels = predicted_anomalous(np.asarray(scores, float), tau), np.asarray(labels).astype(bool)
    return ThresholdStats(float(tau), int((pred & labels).sum()), int((pred & ~labels).sum()),
                          int((~pred & ~labels).sum()), int((~pred & labels).sum()))


def f1_optimal_tau(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (one of the scores) with the highest F1; the lowest such on ties."""
    candidates = np.unique(np.asarray(scores, float))
    f1 = [threshold_stats(scores, labels, t).f1 for t in candidates]
    return float(candidates[int(np.argmax(f1))])
