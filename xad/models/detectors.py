"""Semantic anomaly detectors with scores bounded to [0, 1], as the counterfactual generator of
Liznerski et al. requires (their sec. 5 and the same author's outlier-exposure code):

- ``bce``: a classifier normal (0) vs outlier exposure (1); score = sigmoid(logit);
- ``hsc``: hypersphere classifier with OE; d = sqrt(||f(x)||^2 + 1) - 1, score = 1 - exp(-d);
  loss d for normal images and -log(score) for OE;
- ``dsvdd``: one-class Deep SVDD (no OE, bias-free network, centre c fixed from the initial
  features); ||f(x) - c||^2 is unbounded, so xad bounds it as 1 - exp(-||f(x) - c||^2 / s) with
  s set after training so that the median normal training image scores 0.1 (xad's choice; the
  page and the cards say so).

All three share one small CNN body for 32 px RGB images in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xad.tensors import to_tensor
from xad.weights import register

KINDS = ("bce", "hsc", "dsvdd")
#: The score the median normal training image gets under xad's bounding of DSVDD.
DSVDD_MEDIAN_SCORE = 0.1


@dataclass(frozen=True)
class DetectorConfig:
    kind: str = "bce"
    image_size: int = 32
    channels: tuple[int, ...] = (16, 32, 64)
    feature_dim: int = 32
    dsvdd_scale: float = 1.0  # s in 1 - exp(-d / s); set by training

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


PRESETS = {
    "cpu": DetectorConfig(),
    "tiny": DetectorConfig(channels=(4, 8), feature_dim=8),
}


@register
class Detector(nn.Module):
    """phi: (B, 3, H, W) in [0, 1] -> (B,) anomaly scores in [0, 1]."""

    Config = DetectorConfig

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        bias = config.kind != "dsvdd"  # DSVDD must not have biases (they allow a trivial solution)
        layers, prev = [], 3
        for ch in config.channels:
            layers += [nn.Conv2d(prev, ch, 3, padding=1, bias=False),
                       nn.BatchNorm2d(ch, affine=bias), nn.LeakyReLU(0.1), nn.MaxPool2d(2)]
            prev = ch
        self.body = nn.Sequential(*layers)
        side = config.image_size // 2 ** len(config.channels)
        self.features_out = nn.Linear(prev * side * side, config.feature_dim, bias=bias)
        self.head = nn.Linear(config.feature_dim, 1) if config.kind == "bce" else None
        self.register_buffer("center", torch.zeros(config.feature_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x * 2 - 1).flatten(1)
        f = self.features_out(h)
        return F.leaky_relu(f, 0.1) if self.config.kind == "bce" else f

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """HSC's d or DSVDD's squared distance to the centre, (B,)."""
        f = self.features(x)
        if self.config.kind == "hsc":
            return torch.sqrt((f ** 2).sum(1) + 1) - 1
        return ((f - self.center) ** 2).sum(1)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """BCE's logit, (B,)."""
        return self.head(self.features(x)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "bce":
            return torch.sigmoid(self.logit(x))
        return 1 - torch.exp(-self.scaled_distance(x))

    def scaled_distance(self, x: torch.Tensor) -> torch.Tensor:
        """HSC's d, or DSVDD's squared distance divided by the scale s: score = 1 - exp(-this)."""
        d = self.distance(x)
        return d / self.config.dsvdd_scale if self.config.kind == "dsvdd" else d

    def log_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log score, log(1 - score)) computed without saturating: from the logit for BCE
        (-softplus(-l), -softplus(l)) and from the distance for HSC and DSVDD (log(1 - e^-d), -d).
        Gradients through these stay alive where the score itself is flat at 0 or 1."""
        if self.config.kind == "bce":
            logit = self.logit(x).float()
            return -F.softplus(-logit), -F.softplus(logit)
        d = self.scaled_distance(x).float().clamp_min(1e-6)
        return torch.log(-torch.expm1(-d)), -d

    def loss(self, x: torch.Tensor, is_oe: torch.Tensor) -> torch.Tensor:
        """Training loss on a batch; is_oe: (B,) bool (all False for DSVDD)."""
        kind = self.config.kind
        if kind == "bce":
            return F.binary_cross_entropy_with_logits(self.logit(x), is_oe.float())
        d = self.distance(x)
        if kind == "dsvdd":
            return d.mean()
        # HSC: d for normal, -log(1 - exp(-d)) for OE (stable: log(-expm1(-d)))
        oe_term = -torch.log(-torch.expm1(-d.clamp_min(1e-6)))
        return torch.where(is_oe, oe_term, d).mean()


def dsvdd_scale_for(median_distance: float) -> float:
    """s such that a normal image at the median training distance scores DSVDD_MEDIAN_SCORE."""
    return float(median_distance) / -math.log(1 - DSVDD_MEDIAN_SCORE)


def bounding_note(kind: str) -> str:
    """How this detector's score is bounded to [0, 1], for the UI and cards."""
    if kind == "bce":
        return "BCE with outlier exposure: score = sigmoid(logit)."
    if kind == "hsc":
        return "HSC with outlier exposure: d = sqrt(||f(x)||^2 + 1) - 1, score = 1 - exp(-d)."
    return ("DSVDD (one-class): ||f(x) - c||^2 is unbounded; xad bounds it as 1 - exp(-d / s), "
            f"with s chosen so that the median normal training image scores {DSVDD_MEDIAN_SCORE} "
            "(xad's choice, not the paper's).")


@torch.inference_mode()
def score_images(model: torch.nn.Module, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """phi(x), the detector's score, for (N, H, W, 3) images (uint8 or float in [0, 1]) ->
    (N,) float64; the model is put in eval mode."""
    model.eval()
    out = [model(to_tensor(images[i: i + batch_size])).double().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)
