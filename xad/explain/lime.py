"""LIME for reconstruction errors, numerically the same as ``lime.lime_image`` but vectorised.

Same sampling (``RandomState(seed)``: one draw for the segmentation seed as lime makes when none
is given, then Bernoulli(0.5) masks with the first row all ones), same perturbation (hidden
segments take the reconstruction's pixels), same cosine distances, kernel sqrt(exp(-d^2 / w^2))
with w = 0.25, and the same weighted Ridge(alpha=1) fit. What is faster: perturbed images are made
with one gather per batch instead of a deep copy and a Python loop per sample, each distinct mask
is evaluated once, and with an :class:`~xad.explain.reconstruction.ErrorFunction` the perturbed
images are composed chunk by chunk in torch right before the model sees them (never as a float
array of all n images). ``explain_reference`` calls lime itself: the reference mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import pairwise_distances

KERNEL_WIDTH = 0.25


@dataclass(frozen=True)
class LimeResult:
    """coefficients: (k,) per segment; intercept; attribution: (H, W) each pixel's segment weight;
    masks: (n, k) the sampled on/off vectors; scores: (n,) f of each perturbed image."""

    coefficients: np.ndarray
    intercept: float
    attribution: np.ndarray
    masks: np.ndarray
    scores: np.ndarray


def sample_masks(n_segments: int, num_samples: int, seed: int) -> np.ndarray:
    """LIME's masks (num_samples, k) in {0, 1}; row 0 keeps everything."""
    rs = np.random.RandomState(seed)
    rs.randint(0, high=1000)  # lime draws a segmentation seed first when none is passed
    data = rs.randint(0, 2, num_samples * n_segments).reshape(num_samples, n_segments)
    data[0, :] = 1
    return data


def perturb(x: np.ndarray, hidden_values: np.ndarray, segments: np.ndarray,
            masks: np.ndarray) -> np.ndarray:
    """Images (B, H, W, C): segment s shows x where masks[:, s] is 1, else ``hidden_values``."""
    keep = masks.astype(bool)[:, segments][..., None]  # (B, H, W, 1); bool before the gather
    return np.where(keep, x[None], hidden_values[None])


def explain(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, x_rec: np.ndarray,
            segments: np.ndarray, num_samples: int = 5000, seed: int = 1234,
            batch_size: int = 200, progress: Callable[[float], None] | None = None) -> LimeResult:
    """Explain f at x. f: (B, H, W, 3) -> (B,); x, x_rec: (H, W, 3); segments: (H, W) 0..k-1."""
    k = int(segments.max()) + 1
    masks = sample_masks(k, num_samples, seed)
    unique, inverse = np.unique(masks, axis=0, return_inverse=True)  # each distinct mask once
    values = np.empty(len(unique))
    masked = getattr(f, "masked", None)  # an ErrorFunction composes the images itself, in torch
    for i in range(0, len(unique), batch_size):
        m = unique[i: i + batch_size]
        values[i: i + batch_size] = (masked(x, x_rec, m.astype(bool)[:, segments]) if masked
                                     else f(perturb(x, x_rec, segments, m)))
        if progress:
            progress(min(1.0, (i + batch_size) / len(unique)))
    scores = values[inverse.ravel()]
    distances = pairwise_distances(masks, masks[:1], metric="cosine").ravel()
    weights = np.sqrt(np.exp(-(distances ** 2) / KERNEL_WIDTH ** 2))
    model = Ridge(alpha=1.0, fit_intercept=True).fit(masks, scores, sample_weight=weights)
    coef = model.coef_.astype(np.float64)
    return LimeResult(coef, float(model.intercept_), coef[segments].astype(np.float32), masks, scores)


def explain_reference(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, x_rec: np.ndarray,
                      segments: np.ndarray, num_samples: int = 5000, seed: int = 1234,
                      batch_size: int = 200) -> LimeResult:
    """The same explanation through ``lime.lime_image`` itself (the reference mode; slow)."""
    import contextlib
    import io

    from lime.lime_image import LimeImageExplainer

    scores: list[np.ndarray] = []

    def classifier(batch: np.ndarray) -> np.ndarray:
        scores.append(f(batch))
        return scores[-1][:, None]

    with contextlib.redirect_stderr(io.StringIO()):  # lime prints a tqdm bar of its own
        e = LimeImageExplainer(random_state=seed).explain_instance(
            x.astype(np.float64), classifier, labels=(0,), top_labels=None,
            hide_color=x_rec.astype(np.float64), num_features=100000, num_samples=num_samples,
            batch_size=batch_size, segmentation_fn=lambda _: segments)
    coef = np.zeros(int(segments.max()) + 1)
    for s, c in e.local_exp[0]:
        coef[s] = c
    return LimeResult(coef, float(e.intercept[0]), coef[segments].astype(np.float32),
                      sample_masks(len(coef), num_samples, seed), np.concatenate(scores))
