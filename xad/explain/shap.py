"""SHAP partition explanations (S3): ``shap.PartitionExplainer`` with an image masker whose
background is the reconstruction x' (masked pixels take x' values), as the reference does.

Fast path: with an :class:`~xad.explain.reconstruction.ErrorFunction`, the masker hands the
explainer each boolean mask instead of a masked float64 image (shap copies every masked image
twice and stacks a batch of them), and the function composes the images in torch from the masks,
chunk by chunk, right before the model sees them. The explainer, its partition tree and its
evaluations are shap's own: the attributions equal the plain path's."""

from __future__ import annotations

import functools
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

    masked = getattr(f, "masked", None)
    if masked is not None:
        masker = _mask_passing_masker()(x_rec.astype(np.float64), x.shape)
        explainer = shap.PartitionExplainer(lambda m: masked(x, x_rec, m), masker)
    else:
        masker = shap.maskers.Image(x_rec.astype(np.float64), x.shape)
        explainer = shap.PartitionExplainer(lambda b: f(np.asarray(b, dtype=np.float32)), masker)
    out = explainer(x[None].astype(np.float64), max_evals=max_evals, batch_size=batch_size,
                    silent=True)
    values = np.asarray(out.values[0], dtype=np.float32)  # (H, W, 3)
    base = float(np.ravel(out.base_values)[0])
    return ShapResult(values, values[..., 0].copy(), base)


@functools.cache
def _mask_passing_masker() -> type:
    """shap's Image masker (the same partition tree) whose output is the keep mask itself; built on
    first use, as shap is imported lazily."""
    import shap

    class MaskPassingImage(shap.maskers.Image):
        immutable_outputs = True  # every call returns a fresh array: shap need not deep-copy it

        def __call__(self, mask, x):  # noqa: ANN001, ANN204, ARG002 - shap's masker signature
            if mask is None:
                mask = np.zeros(int(np.prod(self.input_shape)), dtype=bool)
            return (np.array(mask, dtype=bool).reshape(1, -1),)

    return MaskPassingImage
