"""One anomaly explained: its counterfactual for every concept at a target score alpha, the
"increasing impact" strip from alpha = 1 to 0, and a fixed gallery of test anomalies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xad.counterfactual.bundle import Bundle, generate, generate_matched, psi
from xad.data import semantic
from xad.data.transforms import DataError, resize_image
from xad.models.detectors import score_images
from xad.tensors import to_float


def change_map(x: np.ndarray, x_bar: np.ndarray) -> np.ndarray:
    """|x - x_bar| as the per-pixel channel maximum, (H, W) in [0, 1]."""
    return np.abs(to_float(x) - x_bar).max(axis=-1)


def prepare(image: np.ndarray) -> np.ndarray:
    """Any RGB uint8 image (e.g. an upload, already converted to RGB) -> (32, 32, 3) uint8."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError("expected an RGB uint8 image (H, W, 3)")
    return image if image.shape[:2] == (32, 32) else resize_image(image, 32)


@dataclass(frozen=True)
class Explanation:
    """One anomaly explained at one alpha: its score; per concept k (0-based) the CE, the score
    the detector gives it and the change map."""

    image: np.ndarray
    score: float
    alpha: float
    counterfactuals: np.ndarray  # (K, 32, 32, 3) float in [0, 1]
    ce_scores: np.ndarray  # (K,)
    changes: np.ndarray  # (K, 32, 32)
    # DiffEdit backend only: psi's mask, its plain edit towards the normal class and that edit's score
    edit_mask: np.ndarray | None = None
    edit: np.ndarray | None = None
    edit_score: float | None = None
    edit_change: np.ndarray | None = None  # |x - psi(x)|
    # "alpha matched" (xad's extension, :func:`generate_matched`): G's alpha input per concept
    alpha_inputs: np.ndarray | None = None


def explain(b: Bundle, image: np.ndarray, alpha: float = 0.0, match: bool = False) -> Explanation:
    """The counterfactual of ``image`` for every concept at target score ``alpha``: G(x, alpha, k)
    (the paper), or with ``match`` the CE whose detector score is alpha (G's alpha input searched,
    :func:`generate_matched`; an extension)."""
    x = prepare(image)
    xs = np.repeat(x[None], b.concepts, 0)
    extra: dict = {}
    if match:
        ce, extra["alpha_inputs"], ce_scores = generate_matched(b, xs, alpha, np.arange(b.concepts))
    else:
        ce = generate(b, xs, alpha, np.arange(b.concepts))
        ce_scores = score_images(b.detector, ce)
    if b.backend == "diffedit":
        _, mask, edit = psi(b, x[None])
        extra |= {"edit_mask": mask[0], "edit": edit[0], "edit_score": float(score_images(b.detector, edit)[0]),
                 "edit_change": change_map(x, edit[0])}
    return Explanation(x, float(score_images(b.detector, x[None])[0]), float(alpha), ce, ce_scores,
                       np.stack([change_map(x, c) for c in ce]), **extra)


def alpha_sequence(b: Bundle, image: np.ndarray, k: int, alphas: np.ndarray | None = None,
                   match: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CEs of concept k for alpha from 1 to 0 (the "increasing impact" strip): (alphas, images,
    reached scores); ``match`` as in :func:`explain`."""
    alphas = np.linspace(1, 0, 6) if alphas is None else np.asarray(alphas, np.float32)
    xs = np.repeat(prepare(image)[None], len(alphas), 0)
    if match:
        ce, _, reached = generate_matched(b, xs, alphas, k)
        return alphas, ce, reached
    ce = generate(b, xs, alphas, k)
    return alphas, ce, score_images(b.detector, ce)


def anomaly_gallery(b: Bundle, n: int = 24, data_path: str | None = None, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A fixed gallery of ``n`` test anomalies of the bundle's setup: (images, descriptions)."""
    data = semantic.load_setup(b.setup, data_path or b.data_path)
    idx = np.flatnonzero(data.anomalous_test)
    pick = np.sort(np.random.default_rng(seed).choice(idx, size=min(n, len(idx)), replace=False))
    return data.x_test[pick], data.labels_test[pick]
