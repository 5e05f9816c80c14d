"""SHAP partition explanations (S3): ``shap.PartitionExplainer`` with an image masker whose
background is the reconstruction x' (masked pixels take x' values), as the reference does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ShapResult:
    """values: (H, W, 3) SHAP values; attribution: (H, W) channel 0, as the reference uses;
    base_value: f of the fully masked image (x' everywhere)."""

    values: np.ndarray
    attribution: np.ndarray
    base_value: float


def explain(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, x_rec: np.ndarray,
            max_evals: int = 5000, batch_size: int = 200) -> ShapResult:
    """Explain f at x (H, W, 3) with the partition explainer; f: (B, H, W, 3) -> (B,)."""
    import shap

    masker = shap.maskers.Image(x_rec.astype(np.float64), x.shape)
    explainer = shap.PartitionExplainer(lambda b: f(np.asarray(b, dtype=np.float32)), masker)
    out = explainer(x[None].astype(np.float64), max_evals=max_evals, batch_size=batch_size,
                    silent=True)
    values = np.asarray(out.values[0], dtype=np.float32)  # (H, W, 3)
    base = float(np.ravel(out.base_values)[0])
    return ShapResult(values, values[..., 0].copy(), base)
