"""ShapBPT (setup S4): Owen values over a data-aware Binary Partition Tree of the image.

The method of the 2024 paper's authors' later work (package ``shap-bpt``, MIT licence), not part of
the 2024 paper: the audit runs it beside S1-S3 with the same explained function and the same hidden
values (masked pixels take the reconstruction x'), and scores it with the same max-IoU.
``shap_bpt.Explainer`` is called as published: it builds the BPT from the image to explain (uint8,
Lab colour space, its own defaults) and asks f for batches of boolean keep masks (N, H, W). With an
:class:`~xad.explain.reconstruction.ErrorFunction` those masks go straight to
:meth:`~xad.explain.reconstruction.ErrorFunction.masked` (images composed in torch, chunk by
chunk); any other f gets the perturbed images built in numpy. Both give the same values.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xad.tensors import to_uint8  # the image the tree is built from

#: ShapBPT's own default batch: the order in which the tree is refined depends on it.
BATCH_SIZE = 64


@dataclass(frozen=True)
class BptResult:
    """attribution: (H, W) Owen values; evaluations: how many masks f was asked for."""

    attribution: np.ndarray
    evaluations: int



def masked_function(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                    x_rec: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """ShapBPT's f_masked: keep masks (N, H, W) bool -> (N, 1) f of where(keep, x, x_rec)."""
    masked = getattr(f, "masked", None)
    if masked is not None:
        return lambda keep: np.asarray(masked(x, x_rec, keep))[:, None]
    return lambda keep: np.asarray(f(np.where(np.asarray(keep)[..., None], x, x_rec)))[:, None]


def explain(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, x_rec: np.ndarray,
            max_evals: int = 5000, batch_size: int = BATCH_SIZE, method: str = "BPT") -> BptResult:
    """Explain f at x (H, W, 3) float in [0, 1]: the Owen values of ShapBPT ("BPT") or of its
    axis-aligned partition ("AA"); f: (B, H, W, 3) -> (B,); x_rec: the hidden values."""
    import shap_bpt

    if method not in ("BPT", "AA"):
        raise ValueError(f"method must be 'BPT' or 'AA', not {method!r}")
    if max_evals < 2:
        raise ValueError(f"max_evals must be at least 2, not {max_evals}")
    calls = [0]
    fm = masked_function(f, x, x_rec)

    def counted(keep: np.ndarray) -> np.ndarray:
        calls[0] += len(keep)
        return fm(keep)

    explainer = shap_bpt.Explainer(counted, to_uint8(x), num_explained_classes=1)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints on unknown methods / terminals
        values = explainer.explain_instance(max_evals, method=method, batch_size=batch_size)
    return BptResult(np.asarray(values[0], dtype=np.float32), calls[0])
